"""The ``dftad`` command: JSON output, exit codes, forces, frequencies and properties."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dftad
from dftad import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_energy_forces_json(capsys):
    code, out, _ = run(capsys, "energy", "water", "--basis", "sto-3g", "--xc", "hf", "--forces",
                       "--json")
    assert code == 0
    data = json.loads(out)
    for key in ("energy", "converged", "iterations", "nao", "xc", "basis", "charge", "spin",
                "timings", "forces"):
        assert key in data
    assert data["converged"] and data["nao"] == 7
    forces = np.array(data["forces"])
    assert forces.shape == (3, 3)
    res = dftad.run(dftad.load("water"), "sto-3g", "hf", forces=True)
    assert abs(data["energy"] - float(res.e_tot)) < 1e-9
    assert np.abs(forces - np.asarray(res.forces)).max() < 1e-7
    assert np.abs(forces.sum(axis=0)).max() < 1e-8


def test_energy_stability_json(capsys):
    code, out, _ = run(capsys, "energy", "water", "--basis", "sto-3g", "--xc", "hf",
                       "--stability", "--json")
    assert code == 0
    data = json.loads(out)["stability"]
    assert data["stable"] and data["restarts"] == 0 and data["lowest_eigenvalue"] > 0.1


@pytest.mark.slow
def test_energy_stability_follows_a_saddle(capsys):
    """UKS SCAN OH / STO-3G stops on a saddle point; ``--stability`` restarts to a lower minimum
    and says so."""
    code, out, _ = run(capsys, "energy", "hydroxyl_radical", "--basis", "sto-3g", "--xc", "scan",
                       "--stability")
    assert code == 0
    assert "internal stability: stable" in out and "1 restart" in out
    e = float(out.split("E_tot =")[1].split()[0])
    plain = dftad.run(dftad.load("hydroxyl_radical"), "sto-3g", "scan")
    assert e < float(plain.e_tot) - 1e-5


@pytest.mark.parametrize("argv,message", [
    (["energy", "Xx 0 0 0"], "unknown element"),
    (["energy", "water", "--spin", "1"], "spin"),
    (["energy", "water", "--grid-level", "12"], "grid-level"),
    (["energy", "water", "--xc", "nosuchfunctional"], "nosuchfunctional"),
    (["properties", "O 0 0 0; H 0 0 0.01", "--basis", "sto-3g"], "on top of each other"),
])
def test_bad_input_exits_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("dftad: error:") and message in err.lower()
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["energy", "frequencies"])
def test_not_converged_exits_3(capsys, command):
    """An SCF that does not converge is reported as such (exit 3), never differentiated."""
    code, _, err = run(capsys, command, "water", "--basis", "sto-3g", "--xc", "hf",
                       "--max-cycle", "2", "--json")
    assert code == 3
    assert "did not converge" in err


@pytest.mark.slow
def test_second_order_steps_finish_what_diis_does_not(capsys):
    """UKS SCAN NO / def2-SVP: DIIS creeps along a soft mode (it used to for 100 cycles; since
    some change of rounding it converges after 20-40, so the test caps it at 20); the command
    goes on with Newton steps, converges, and reports forces at that density."""
    code, out, _ = run(capsys, "energy", "nitric_oxide", "--basis", "def2-svp", "--xc", "scan",
                       "--forces", "--max-cycle", "20")
    assert code == 0
    assert "DIIS did not converge in 20 cycles" in out and "NOT converged" not in out
    forces = [line.split()[1:] for line in out.splitlines()[-2:]]
    f = np.array(forces, dtype=float)
    assert np.abs(f.sum(axis=0)).max() < 1e-8 and abs(f[0, 2]) > 1e-3


def test_properties_json(capsys):
    code, out, _ = run(capsys, "properties", "hydrogen_fluoride", "--basis", "sto-3g", "--xc",
                       "hf", "--json")
    assert code == 0
    data = json.loads(out)
    mu = np.array(data["dipole_debye"])
    alpha = np.array(data["polarizability_au"])
    assert mu.shape == (3,) and alpha.shape == (3, 3)
    from pyscf import gto, scf

    mol = dftad.load("hydrogen_fluoride")
    mf = scf.RHF(gto.M(atom=mol.to_pyscf_atom(), unit="Bohr", basis="sto-3g", verbose=0))
    mf.conv_tol = 1e-11
    mf.kernel()
    assert np.abs(mu - mf.dip_moment(unit="Debye", verbose=0)).max() < 1e-4
    assert np.abs(alpha - alpha.T).max() < 1e-6 and np.all(np.linalg.eigvalsh(alpha) > 0)


def test_frequencies_json_and_plot(capsys, tmp_path):
    png = tmp_path / "ir.png"
    code, out, err = run(capsys, "frequencies", "hydrogen", "--basis", "sto-3g", "--xc", "hf",
                         "--json", "--plot", str(png))
    assert code == 0
    data = json.loads(out)
    freqs = np.array(data["frequencies_cm1"])
    intens = np.array(data["ir_intensities_km_mol"])
    # linear molecule: 3N - 5 = 1 mode; H2 has no dipole derivative (IR inactive)
    assert freqs.shape == (1,) and intens.shape == (1,)
    assert 4000 < freqs[0] < 6000 and abs(intens[0]) < 1e-8
    assert "not a stationary point" in err  # the shipped geometry is MP2's, not HF/STO-3G's
    assert png.stat().st_size > 10_000


def test_compilation_cache_is_written_and_reused(tmp_path):
    """Two separate ``dftad energy`` processes with a cache directory: the first writes compiled
    programs there, the second (loading them) prints the same energy."""
    env = dict(os.environ, DFTAD_CACHE_DIR=str(tmp_path / "xla"))
    cmd = [sys.executable, "-m", "dftad.cli", "energy", "water", "--basis", "sto-3g", "--xc", "hf",
           "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert any(tmp_path.rglob("*.bin"))  # compiled pieces were stored (beside JAX's cache)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert json.loads(first.stdout)["energy"] == json.loads(second.stdout)["energy"]


_COUNT_COMPILES = """
import json, sys
import jax
from jax import monitoring
import dftad
from dftad import cli, pieces

counts = {"compiles": 0, "cache_hits": 0, "piece_compiles": 0}
compile_piece = pieces.Piece._compile

def count_piece(*args, **kwargs):  # a piece traced, lowered and compiled (or found in JAX's cache)
    counts["piece_compiles"] += 1
    return compile_piece(*args, **kwargs)

pieces.Piece._compile = count_piece

def on_duration(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":  # every request, hit or not
        counts["compiles"] += 1

def on_event(event, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
        counts["cache_hits"] += 1

monitoring.register_event_duration_secs_listener(on_duration)
monitoring.register_event_listener(on_event)
enable = dftad.enable_compilation_cache

def enable_all(*args):  # keep every program, however quick to compile (the CLI keeps > 1 s)
    path = enable(*args)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path

dftad.enable_compilation_cache = enable_all
code = cli.main(sys.argv[1:])
print("COUNTS " + json.dumps(counts))
sys.exit(code)
"""


def test_printed_scf_and_forces_come_from_the_cache(tmp_path):
    """The default output (SCF cycles printed as they run) and forces: a second process finds
    every program it needs in the on-disk cache (compile requests minus cache hits = 0), and
    every compiled piece in its own file (none traced or lowered again). A program with a host
    callback (printing from inside the compiled loop) is never cached."""
    env = dict(os.environ, DFTAD_CACHE_DIR=str(tmp_path / "xla"))
    cmd = [sys.executable, "-c", _COUNT_COMPILES, "energy", "water", "--basis", "sto-3g",
           "--xc", "lda,vwn", "--grid-level", "0", "--forces"]
    runs = []
    for _ in range(2):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        assert "cycle   1" in out and "forces" in out
        counts = json.loads(out.split("COUNTS ")[1])
        runs.append((out.split("E_tot =")[1].split()[0], counts))
    (e1, first), (e2, second) = runs
    assert e1 == e2
    assert first["compiles"] > first["cache_hits"]  # compiled (a few programs twice: hits)
    # whatever compiles outside the pieces (nothing in this job now) comes from JAX's cache
    assert second["compiles"] == second["cache_hits"], second
    assert first["piece_compiles"] > 0 and second["piece_compiles"] == 0, second


def test_compilation_cache_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("DFTAD_CACHE_DIR", "off")
    assert dftad.enable_compilation_cache() is None
