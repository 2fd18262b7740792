"""The tutorials (``scripts/tutorial_*.py``, docs/tutorials.md) run with their ``--fast``
settings, draw their pictures, and compute what they claim: each test checks the numbers its
tutorial returns against a reference or a law they must obey (PySCF, finite differences,
translational invariance, the count of imaginary frequencies), never against numbers the
tutorial itself produced before.

The transition state and the frequencies (AD Hessians: about a minute each) run with
``-m slow``."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:  # the scripts import their shared helpers (scripts/_tutorial.py)
    sys.path.insert(0, str(SCRIPTS))


def run_tutorial(name, tmp_path, pictures):
    """Import ``scripts/tutorial_<name>.py``, run its ``main`` with ``--fast`` into ``tmp_path``
    and check that it wrote the PNG files ``pictures``; returns what ``main`` returned."""
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}",
                                                  SCRIPTS / f"tutorial_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--fast", "--out", str(tmp_path)])
    for picture in pictures:
        data = (tmp_path / picture).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, picture
    assert sorted(Path(p).name for p in result["pictures"]) == sorted(pictures)
    return result


def test_energy_forces(tmp_path):
    """HF/STO-3G water: the forces and their torques sum to zero (translational and rotational
    invariance; no grid in Hartree-Fock), and PySCF gives the same energy and gradient."""
    res = run_tutorial("energy_forces", tmp_path, ["energy_forces.png"])
    assert np.abs(res["net_force"]).max() < 1e-6
    assert np.abs(res["net_torque"]).max() < 1e-6
    assert abs(res["e_tot"] - res["e_pyscf"]) < 1e-8
    assert np.abs(res["forces"] - res["forces_pyscf"]).max() < 2e-6
    assert np.abs(res["forces"]).max() > 1e-3  # the shipped geometry is no HF/STO-3G minimum


def test_optimize(tmp_path):
    """The distorted water reaches geomeTRIC's criteria: the last step's largest force is below
    the threshold, the energy went down overall, and the first step was not converged already."""
    res = run_tutorial("optimize", tmp_path, ["optimize.png"])
    assert res["converged"]
    assert res["max_forces"][-1] < res["force_threshold"] < res["max_forces"][0]
    assert res["energies"][-1] < res["energies"][0]
    assert res["energies"][-1] == pytest.approx(res["energies"].min(), abs=1e-6)


def test_property_derivatives(tmp_path):
    """jax.jacfwd through the implicit SCF equals finite differences of the same function: the
    gap along an O-H stretch (five-point stencil) and the polarizability (finite field), each to
    1e-5 relative; alpha is symmetric and the derivatives obey the translational sum rules of a
    neutral molecule."""
    res = run_tutorial("property_derivatives", tmp_path, ["property_derivatives.png"])
    ad, fd = res["dgap_stretch"], res["dgap_stretch_fd"]
    assert abs(ad - fd) <= 1e-5 * abs(fd) and abs(fd) > 1e-3
    alpha = res["alpha"]
    assert np.abs(alpha - res["alpha_fd"]).max() <= 1e-5 * np.abs(alpha).max()
    assert np.abs(alpha - alpha.T).max() < 1e-8
    assert np.all(np.linalg.eigvalsh(alpha) > 0)  # a stable molecule: E falls in any field
    assert np.abs(res["dgap_dr"].sum(axis=0)).max() < 1e-8
    assert np.abs(res["dmu_dr"].sum(axis=1)).max() < 1e-8


def test_training(tmp_path):
    """Fitting B3LYP's coefficients to B3LYP's own H2 atomization energy from another hybrid:
    Levenberg-Marquardt accepts only steps that lower the loss, so it never rises and ends
    below its start, and the error left is smaller than the start's."""
    res = run_tutorial("training", tmp_path, ["training.png"])
    losses = res["losses"]
    assert len(losses) == 4  # the start and three steps
    assert np.all(np.diff(losses) <= 1e-9 * losses[0]) and losses[-1] < losses[0]
    before, after = res["before"]["train"], res["after"]["train"]
    assert set(before) == set(after) == {"h2"} and not res["before"]["test"]
    assert abs(after["h2"]) < abs(before["h2"])
    assert res["theta"] != res["theta_start"]


@pytest.mark.slow  # ~1 min: two AD Hessians and an 18-step saddle search
def test_transition_state(tmp_path):
    """HCN <-> HNC: a saddle point with exactly one imaginary frequency, whose mode moves the
    hydrogen (the light atom carries almost all of it)."""
    res = run_tutorial("transition_state", tmp_path, ["transition_state.png"])
    assert res["converged"] and res["n_imaginary"] == 1
    freqs = res["frequencies_cm1"]
    assert np.sum(freqs < 0) == 1 and len(freqs) == 3  # 3N - 6 of a bent triatomic
    share = dict(zip(res["symbols"], res["mode_share"]))
    assert share["H"] > 0.9


@pytest.mark.slow  # ~1 min: the AD Hessian with dipole derivatives
def test_frequencies(tmp_path):
    """Water at its HF/STO-3G minimum: 3N - 6 = 3 real frequencies, every mode IR active."""
    res = run_tutorial("frequencies", tmp_path, ["ir_spectrum.png", "normal_modes.png"])
    freqs, intensities = res["frequencies_cm1"], res["ir_intensities_km_mol"]
    assert len(freqs) == 3 * res["natm"] - 6
    assert np.all(freqs > 0)
    assert np.all(intensities > 0)
    assert res["max_force"] < 1.5e-5  # geomeTRIC's gau_tight: a stationary point
