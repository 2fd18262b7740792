"""Geometry optimization with geomeTRIC (``dftad.optimize``, ``dftad optimize``): the same
minimum as PySCF + geomeTRIC from the same start, in no more steps; constraints, the final
Hessian and the command's output and exit codes."""

import json
import pathlib

import numpy as np
import pytest

import dftad
from dftad import cli, geomopt
from dftad.constants import BOHR_ANGSTROM


def _distances_angstrom(coords):
    c = np.asarray(coords)
    return np.linalg.norm(c[:, None] - c[None], axis=-1) * BOHR_ANGSTROM


def _stretched(mol, i, j, r):
    """``mol`` with atom j moved along the i-j bond to r Angstrom from atom i."""
    c = np.array(mol.coords)
    d = c[j] - c[i]
    c[j] = c[i] + d / np.linalg.norm(d) * r / BOHR_ANGSTROM
    return mol.with_coords(c)


def _pyscf_geometric(mol, basis, xc, **kwargs):
    """PySCF + geomeTRIC from the same start and criteria: (energy, coords in Bohr, steps)."""
    from pyscf import dft, gto, scf
    from pyscf.geomopt.geometric_solver import optimize as pyscf_optimize

    pmol = gto.M(atom=mol.to_pyscf_atom(), unit="bohr", basis=basis, charge=mol.charge,
                 spin=mol.spin, verbose=0)
    if xc == "hf":
        mf = scf.UHF(pmol) if mol.spin else scf.RHF(pmol)
    else:
        mf = dft.UKS(pmol) if mol.spin else dft.RKS(pmol)
        mf.xc = xc
    mf.conv_tol = 1e-10
    steps = []
    # raises if geomeTRIC does not converge (assert_convergence)
    pmol_opt = pyscf_optimize(mf, callback=lambda env: steps.append(1), **kwargs)
    mf_opt = mf.__class__(pmol_opt)
    if xc != "hf":
        mf_opt.xc = xc
    return mf_opt.run(conv_tol=1e-10).e_tot, pmol_opt.atom_coords(), len(steps)


@pytest.mark.parametrize("name,basis,start", [
    ("water", "sto-3g", None),
    # a stretched O-H bond (1.5 A instead of 0.96 A): started far from the minimum
    ("water", "sto-3g", (1, 2, 1.5)),
])
def test_same_minimum_as_pyscf_geometric(name, basis, start):
    mol = dftad.load(name)
    if start is not None:
        mol = _stretched(mol, *start)
    opt = dftad.optimize(mol, basis, "hf")
    assert opt.converged
    e_ref, coords_ref, steps_ref = _pyscf_geometric(mol, basis, "hf")
    assert abs(opt.e_tot - e_ref) < 1e-6
    np.testing.assert_allclose(_distances_angstrom(opt.mol.coords),
                               _distances_angstrom(coords_ref), atol=1e-3)
    assert opt.steps <= steps_ref, (opt.steps, steps_ref)
    # what the result says of itself
    fmax, _ = geomopt.force_stats(opt.result.forces)
    assert fmax < 4.5e-4 and opt.trajectory[-1].max_force == pytest.approx(fmax)
    assert [s.step for s in opt.trajectory] == list(range(1, opt.steps + 1))


@pytest.mark.slow  # UHF Hessians: ~3 min
def test_radical_saddle_is_reported_and_the_minimum_found(capsys):
    """Methyl radical at UHF/STO-3G: the planar start (G2) keeps its symmetry and converges to
    the planar stationary point, which the exact final Hessian shows to be a saddle (umbrella
    mode 430i cm-1, PySCF's UHF Hessian's frequencies to 0.01 cm-1; the command exits 4); from
    a pyramidal start the optimization reaches the pyramidal minimum, PySCF + geomeTRIC's from
    the same start, with no imaginary mode."""
    from pyscf import gto, scf
    from pyscf.hessian import thermo

    mol = dftad.load("methyl_radical")
    planar = dftad.optimize(mol, "sto-3g", "hf", hessian="last")
    assert planar.converged and planar.n_imaginary == 1
    pmol = gto.M(atom=planar.mol.to_pyscf_atom(), unit="bohr", basis="sto-3g", spin=1,
                 verbose=0)
    mf = scf.UHF(pmol).run(conv_tol=1e-12)
    freqs = thermo.harmonic_analysis(pmol, mf.Hessian().kernel())["freq_wavenumber"]
    ref = np.where(np.abs(freqs.imag) > 0, -np.abs(freqs.imag), freqs.real)
    np.testing.assert_allclose(planar.vibrations.frequencies_cm1, np.sort(ref), atol=1e-2)

    code, _, err = run_cli(capsys, "optimize", "methyl_radical", "--basis", "sto-3g",
                           "--xc", "hf", "--hessian", "last")
    assert code == 4 and "1 imaginary" in err

    c = np.array(planar.mol.coords)
    c[0, 2] += 0.3  # Bohr, out of the plane
    pyramidal = planar.mol.with_coords(c)
    opt = dftad.optimize(pyramidal, "sto-3g", "hf", hessian="last")
    e_ref, coords_ref, steps_ref = _pyscf_geometric(pyramidal, "sto-3g", "hf")
    assert opt.converged and opt.n_imaginary == 0
    assert abs(opt.e_tot - e_ref) < 1e-6 and opt.e_tot < planar.e_tot - 1e-4
    np.testing.assert_allclose(_distances_angstrom(opt.mol.coords),
                               _distances_angstrom(coords_ref), atol=1e-3)
    assert opt.steps <= steps_ref


def test_hcn_hnc_transition_state():
    """HCN <-> HNC at RHF/3-21G from geomeTRIC's own start (its performance test
    ``examples/0-performance-tests/hcn-hnc-ts``, converged there in 18 steps): a saddle with
    exactly one imaginary frequency (the exact Hessian at the end), in at most 18 steps, at
    PySCF + geomeTRIC's energy from the same start (1e-6 Ha)."""
    mol = dftad.load(str(pathlib.Path(__file__).parent / "data" / "hcn_hnc_ts_guess.xyz"))
    opt = dftad.optimize(mol, "3-21g", "hf", transition=True, hessian="first+last")
    assert opt.converged and opt.steps <= 18, opt.steps
    assert opt.n_imaginary == 1
    e_ref, coords_ref, _ = _pyscf_geometric(mol, "3-21g", "hf", transition=True,
                                            hessian="first")
    assert abs(opt.e_tot - e_ref) < 1e-6
    np.testing.assert_allclose(_distances_angstrom(opt.mol.coords),
                               _distances_angstrom(coords_ref), atol=1e-3)


def test_ase_bfgs_reaches_the_same_minimum():
    """``optimizer="ase-bfgs"``: ASE's BFGS on the same evaluations reaches geomeTRIC's minimum
    (it stops on the largest force alone, so to the energy that force bound allows)."""
    mol = dftad.load("water")
    opt = dftad.optimize(mol, "sto-3g", "hf", optimizer="ase-bfgs", convergence="gau_tight")
    ref = dftad.optimize(mol, "sto-3g", "hf", convergence="gau_tight")
    assert opt.converged and ref.converged
    assert opt.trajectory[-1].max_force < 1.5e-5 and abs(opt.e_tot - ref.e_tot) < 1e-6
    np.testing.assert_allclose(_distances_angstrom(opt.mol.coords),
                               _distances_angstrom(ref.mol.coords), atol=1e-3)
    with pytest.raises(ValueError, match="geometric"):
        dftad.optimize(mol, "sto-3g", "hf", optimizer="ase-bfgs", transition=True)


def test_jax_bfgs_reaches_the_same_minimum(capsys):
    """``optimizer="jax"`` (``dftad.bfgs`` driven step by step on the same evaluations) from the
    stretched water reaches geomeTRIC's minimum within the gau criteria (energy 1e-6 Ha,
    interatomic distances within the 1.8e-3 A step bound) and ends at the gau gradients; the
    command runs it; other criteria sets are refused clearly."""
    mol = _stretched(dftad.load("water"), 0, 1, 1.5)
    opt = dftad.optimize(mol, "sto-3g", "hf", optimizer="jax")
    ref = dftad.optimize(mol, "sto-3g", "hf")
    assert opt.converged and ref.converged
    assert opt.trajectory[-1].max_force < 4.5e-4 and abs(opt.e_tot - ref.e_tot) < 1e-6
    np.testing.assert_allclose(_distances_angstrom(opt.mol.coords),
                               _distances_angstrom(ref.mol.coords), atol=1.8e-3)
    # trust radii per step (Angstrom): the JAX BFGS's starts at 0.3 Bohr, geomeTRIC's at 0.1 A
    assert opt.trajectory[0].trust is None and ref.trajectory[0].trust is None
    assert opt.trajectory[1].trust == pytest.approx(0.3 * BOHR_ANGSTROM)
    assert ref.trajectory[1].trust == pytest.approx(0.1)
    assert all(0 < s.trust <= 1.0 for s in opt.trajectory[1:] + ref.trajectory[1:])
    with pytest.raises(ValueError, match="gau criteria only"):
        dftad.optimize(mol, "sto-3g", "hf", optimizer="jax", convergence="gau_tight")
    code, out, _ = run_cli(capsys, "optimize", "water", "--basis", "sto-3g", "--xc", "hf",
                           "--optimizer", "jax", "--json")
    data = json.loads(out)
    assert code == 0 and data["converged"] and data["max_force"] < 4.5e-4
    assert len(data["trajectory"]) == data["steps"]


def test_frozen_distance_constraint():
    """``$set distance 1 2 1.05``: the O-H bond ends at 1.05 A (geomeTRIC's constraint), the
    other bond relaxes to a shorter length."""
    mol = dftad.load("water")
    opt = dftad.optimize(mol, "sto-3g", "hf", constraints="$set\ndistance 1 2 1.05\n")
    assert opt.converged
    d = _distances_angstrom(opt.mol.coords)
    assert abs(d[0, 1] - 1.05) < 1e-3
    assert d[0, 2] < 1.0


def test_bad_constraints_are_a_clear_error():
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "hf")
    for text in ("distance 1 2 1.0\n", "$freeze\nxyz 7\n", "$set\ndistance 1 x 0.9\n",
                 "$freeze\nbananas 1 2\n", "  \n"):
        with pytest.raises(ValueError, match="constraints"):
            geomopt.run(setup, mol, constraints=text)
    with pytest.raises(ValueError, match="convergence set"):
        geomopt.run(setup, mol, convergence="fast")
    with pytest.raises(ValueError, match="hessian"):
        geomopt.run(setup, mol, hessian="always")


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_trajectory_and_output(capsys, tmp_path):
    traj, final = tmp_path / "traj.xyz", tmp_path / "final.xyz"
    code, out, _ = run_cli(capsys, "optimize", "water", "--basis", "sto-3g", "--xc", "hf",
                           "--json", "--trajectory", str(traj), "--output", str(final))
    assert code == 0
    data = json.loads(out)
    for key in ("energy", "converged", "steps", "symbols", "coordinates_angstrom", "max_force",
                "rms_force", "trajectory"):
        assert key in data
    assert data["converged"] and data["symbols"] == ["O", "H", "H"]
    assert len(data["trajectory"]) == data["steps"] and data["trajectory"][-1] == data["energy"]
    assert data["max_force"] < 4.5e-4
    frames = traj.read_text().splitlines()
    assert len(frames) == 5 * data["steps"]  # natm line, comment, three atoms per frame
    assert f"E = {data['trajectory'][0]:.10f}" in frames[1]
    written = dftad.load(str(final))
    np.testing.assert_allclose(written.coords_angstrom, data["coordinates_angstrom"], atol=1e-8)
    assert f"{data['energy']:.10f}" in final.read_text()


def test_cli_step_limit_and_bad_input(capsys, tmp_path):
    code, out, err = run_cli(capsys, "optimize", "water", "--basis", "sto-3g", "--xc", "hf",
                             "--max-steps", "1")
    assert code == 3 and "did not converge in 1 steps" in err
    assert "NOT converged" in out and "Traceback" not in err
    bad = tmp_path / "constraints.txt"
    bad.write_text("$set\ndistance 1 2\nbananas\n")
    code, _, err = run_cli(capsys, "optimize", "water", "--basis", "sto-3g", "--xc", "hf",
                           "--constraints", str(bad))
    assert code == 2 and "malformed constraints" in err
    code, _, err = run_cli(capsys, "optimize", "water", "--constraints",
                           str(tmp_path / "missing.txt"))
    assert code == 2 and "cannot read the constraints file" in err
