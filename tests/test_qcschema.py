"""``dftad energy --json --schema qcschema``: one QCSchema AtomicResult, validated by qcelemental's
own model, in QCSchema's units (Bohr, Hartree)."""

import contextlib
import io
import json
import sys

import numpy as np
import pytest

import dftad
from dftad import cli
from dftad.constants import BOHR_ANGSTROM

models = pytest.importorskip("qcelemental").models

# water off the origin and not in a symmetry frame: a recentred or reoriented molecule shows
ATOMS = [("O", (0.31, -0.22, 0.13)), ("H", (0.31, 0.54, 0.72)), ("H", (0.25, -0.98, 0.71))]
FAST = ["--basis", "sto-3g", "--xc", "hf"]


@pytest.fixture(scope="module")
def xyz(tmp_path_factory):
    path = tmp_path_factory.mktemp("qcschema") / "water.xyz"
    lines = [f"{s} {x:.6f} {y:.6f} {z:.6f}" for s, (x, y, z) in ATOMS]
    path.write_text(f"{len(ATOMS)}\nwater, Angstrom\n" + "\n".join(lines) + "\n")
    return str(path)


def run(*argv):
    """(exit status, stdout, stderr) of the command run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def qcschema(*argv):
    code, out, err = run(*argv, "--json", "--schema", "qcschema")
    return code, models.AtomicResult.parse_raw(out), err


def test_energy_is_a_valid_atomic_result(xyz):
    code, out, _ = run("energy", xyz, *FAST, "--json")
    assert code == 0
    plain = json.loads(out)
    code, res, _ = qcschema("energy", xyz, *FAST)
    assert code == 0
    assert res.schema_name == "qcschema_output" and res.success and res.error is None
    assert res.driver == "energy" and res.model.method == "hf" and res.model.basis == "sto-3g"
    assert res.provenance.creator == "dftad" and res.provenance.version == dftad.__version__
    assert abs(res.return_result - plain["energy"]) < 1e-12
    p = res.properties
    assert abs(p.return_energy - plain["energy"]) < 1e-12
    assert abs(p.scf_total_energy - plain["energy"]) < 1e-12
    assert p.scf_iterations == plain["iterations"] and p.calcinfo_nbasis == plain["nao"]
    assert (p.calcinfo_natom, p.calcinfo_nalpha, p.calcinfo_nbeta) == (3, 5, 5)
    parts = (p.nuclear_repulsion_energy + p.scf_one_electron_energy
             + p.scf_two_electron_energy)
    assert abs(parts - p.return_energy) < 1e-10
    assert p.scf_xc_energy is None and p.scf_dispersion_correction_energy is None  # HF, no D3

    # the molecule: the input's atoms, Angstrom -> Bohr, neither moved nor turned
    assert list(res.molecule.symbols) == [s for s, _ in ATOMS]
    expected = np.array([xyz for _, xyz in ATOMS]) / BOHR_ANGSTROM
    assert np.abs(res.molecule.geometry - expected).max() < 1e-10
    assert res.molecule.molecular_charge == 0 and res.molecule.molecular_multiplicity == 1


def test_forces_give_the_gradient_in_hartree_per_bohr(xyz):
    code, out, _ = run("energy", xyz, *FAST, "--forces", "--json")
    assert code == 0
    forces = np.array(json.loads(out)["forces"])
    code, res, _ = qcschema("energy", xyz, *FAST, "--forces")
    assert code == 0 and res.success and res.driver == "gradient"
    grad = np.asarray(res.return_result)
    assert grad.shape == (3, 3)
    assert np.abs(grad + forces).max() < 1e-12
    assert np.abs(np.asarray(res.properties.return_gradient) - grad).max() < 1e-12
    # dE/dz of the oxygen by central differences of energies at geometries given in Bohr
    mol = dftad.load(xyz)
    h = 1e-3
    e = []
    for step in (h, -h):
        coords = np.array(mol.coords)
        coords[0, 2] += step
        e.append(float(dftad.run(mol.with_coords(coords, unit="bohr"), "sto-3g", "hf").e_tot))
    assert abs((e[0] - e[1]) / (2 * h) - grad[0, 2]) < 1e-5


def test_open_shell_dft_with_dispersion():
    """UKS PBE-D3(BJ): the method names the dispersion, the multiplicity is 2S+1, and the
    components (XC and D3 included) add up to the total."""
    code, res, _ = qcschema("energy", "hydroxyl_radical", "--basis", "sto-3g", "--xc", "pbe",
                            "--disp", "d3bj", "--grid-level", "1")
    assert code == 0 and res.success
    assert res.model.method == "pbe-d3bj"
    assert res.molecule.molecular_multiplicity == 2
    p = res.properties
    assert (p.calcinfo_nalpha, p.calcinfo_nbeta) == (5, 4)
    assert p.scf_xc_energy < 0 and p.scf_dispersion_correction_energy < 0
    parts = (p.nuclear_repulsion_energy + p.scf_one_electron_energy + p.scf_two_electron_energy
             + p.scf_xc_energy + p.scf_dispersion_correction_energy)
    assert abs(parts - p.return_energy) < 1e-10


def test_not_converged_reports_failure_and_exits_3(xyz):
    code, res, err = qcschema("energy", xyz, *FAST, "--forces", "--max-cycle", "2")
    assert code == 3 and "did not converge" in err
    assert not res.success and res.error.error_type == "convergence_error"
    assert res.driver == "gradient" and np.asarray(res.return_result).size == 0


def test_qcschema_needs_json(xyz):
    code, out, err = run("energy", xyz, *FAST, "--schema", "qcschema")
    assert code == 2 and out == ""
    assert err.startswith("dftad: error:") and "--schema qcschema needs --json" in err


def test_qcschema_without_qcelemental(xyz, monkeypatch):
    monkeypatch.setitem(sys.modules, "qcelemental", None)  # import qcelemental raises
    code, out, err = run("energy", xyz, *FAST, "--json", "--schema", "qcschema")
    assert code == 2 and out == ""
    assert "needs qcelemental" in err and "pip install 'dftad[qcschema]'" in err
