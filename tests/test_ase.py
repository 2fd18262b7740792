"""dftad as an ASE calculator (``dftad.ase.Calculator``): ASE's units and caching, forces equal
to finite differences, no recompilation as atoms move, ASE's optimizer reaching geomeTRIC's
minimum, energy conservation in molecular dynamics, and a clear error for an SCF that fails."""

from pathlib import Path

import jax
import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import SCFError
from ase.calculators.fd import calculate_numerical_forces
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

import dftad
from dftad import geomopt
from dftad.ase import Calculator
from dftad.constants import BOHR_ANGSTROM


def _water(displace=0.0):
    mol = dftad.load("water")
    atoms = Atoms(mol.symbols, positions=mol.coords_angstrom)
    atoms.positions[1] += [0.0, displace, 0.5 * displace]
    return atoms


class _CompileCounter:
    """Counts XLA compilations (jax.monitoring) while active."""

    def __init__(self):
        self.count, self.active = 0, False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, name, duration, **kwargs):
        if self.active and name == "/jax/core/compile/backend_compile_duration":
            self.count += 1


_COUNTER = _CompileCounter()


def test_units_caching_and_forces_equal_finite_differences(monkeypatch):
    atoms = _water(0.05)
    atoms.calc = Calculator(basis="sto-3g", xc="hf")
    calls = []
    real = geomopt.single_point
    monkeypatch.setattr(geomopt, "single_point", lambda *a: calls.append(1) or real(*a))
    forces = atoms.get_forces()
    energy = atoms.get_potential_energy()
    dipole = atoms.get_dipole_moment()
    assert len(calls) == 1  # one SCF for forces, energy and dipole
    mol = dftad.load("water").with_coords(atoms.positions, unit="angstrom")
    res = dftad.run(mol, "sto-3g", "hf", forces=True)
    assert abs(energy - float(res.e_tot) * units.Hartree) < 1e-8
    np.testing.assert_allclose(forces, np.asarray(res.forces) * units.Hartree / BOHR_ANGSTROM,
                               atol=1e-6)
    mu = dftad.dipole(dftad.build(mol, "sto-3g", "hf"), mol.coords, res.scf.dm)
    np.testing.assert_allclose(dipole, np.asarray(mu) * BOHR_ANGSTROM, atol=1e-8)  # e A
    numerical = calculate_numerical_forces(atoms, eps=1e-3)
    np.testing.assert_allclose(forces, numerical, atol=5e-4)  # eV/A


def test_bfgs_moves_without_compiling_and_reaches_the_geometric_minimum():
    atoms = _water(0.15)
    atoms.calc = Calculator(basis="sto-3g", xc="hf")
    atoms.get_forces()  # compiles (or loads) the pieces once
    _COUNTER.active, _COUNTER.count = True, 0
    try:
        opt = BFGS(atoms, logfile=None)
        opt.run(fmax=0.0, steps=20)  # never converged: exactly 20 steps
    finally:
        _COUNTER.active = False
    assert opt.nsteps == 20 and np.abs(atoms.get_forces()).max() < 1e-3
    assert _COUNTER.count == 0  # 20 geometries, nothing compiled again
    ref = dftad.optimize(dftad.load("water"), "sto-3g", "hf", convergence="gau_tight")
    assert abs(atoms.get_potential_energy() / units.Hartree - ref.e_tot) < 1e-6


@pytest.mark.slow  # ~2 min (300 SCF + forces); forces = -dE/dR is checked by finite
# differences in test_units_caching_and_forces_equal_finite_differences
def test_velocity_verlet_conserves_energy():
    """300 steps of 0.25 fs (75 fs, about eight O-H periods) from a stretched water, the SCF
    converged to |[F,D]| < 1e-9 (forces the energy's derivative to ~1e-9 Ha/Bohr): the total
    energy drifts (least-squares line over the run) by less than 1e-4 eV (4e-5 measured, most
    of it the fit of the oscillation over a whole number of samples); it oscillates by less
    than 1e-3 eV about it, velocity Verlet's O(dt^2) error at this step, not the forces'."""
    atoms = _water(0.1)
    atoms.calc = Calculator(basis="sto-3g", xc="hf", conv_tol_grad=1e-9)
    dyn = VelocityVerlet(atoms, timestep=0.25 * units.fs)
    totals = []
    kinetic = []
    dyn.attach(lambda: (totals.append(atoms.get_total_energy()),
                        kinetic.append(atoms.get_kinetic_energy())), interval=5)
    dyn.run(300)
    totals = np.array(totals)
    assert max(kinetic) > 0.1  # eV: the stretch went into motion
    slope, _ = np.polyfit(np.arange(len(totals)), totals, 1)
    drift = abs(slope) * (len(totals) - 1)
    assert drift < 1e-4, drift
    assert np.abs(totals - totals.mean()).max() < 1e-3


def test_scf_failure_is_an_ase_error():
    atoms = _water(0.3)
    atoms.calc = Calculator(basis="sto-3g", xc="hf", max_cycle=1)
    with pytest.raises(SCFError, match="did not converge"):
        atoms.get_potential_energy()


@pytest.mark.slow  # the AD Hessian compiles (~1 min)
def test_sella_transition_state_with_the_exact_hessian():
    """Sella (transition states through ASE) with ``hessian_function=calc.get_hessian`` finds
    the HCN <-> HNC saddle (RHF/3-21G) that geomeTRIC finds (1e-6 Ha), one imaginary mode; the
    calculator's Hessian equals dftad.hessian in eV/A^2."""
    from sella import Sella

    mol = dftad.load(str(Path(__file__).parent / "data" / "hcn_hnc_ts_guess.xyz"))
    atoms = Atoms(mol.symbols, positions=mol.coords_angstrom)
    atoms.calc = calc = Calculator(basis="3-21g", xc="hf")
    dyn = Sella(atoms, order=1, internal=True, hessian_function=calc.get_hessian, logfile=None)
    assert dyn.run(fmax=1e-3, steps=100)
    final = calc.molecule(atoms)
    hess = calc.get_hessian() / (units.Hartree / BOHR_ANGSTROM**2)
    setup = dftad.build(final, "3-21g", "hf")
    # the two SCFs start from different densities (|[F,D]| < 1e-7 each): ~1e-8 apart
    np.testing.assert_allclose(hess.reshape(3, 3, 3, 3),
                               np.asarray(dftad.hessian(setup, final.coords)), atol=1e-6)
    vib = dftad.harmonic_analysis(hess.reshape(3, 3, 3, 3), final.coords, final.masses)
    assert np.sum(vib.frequencies_cm1 < 0) == 1
    ref = dftad.optimize(mol, "3-21g", "hf", transition=True)
    assert abs(atoms.get_potential_energy() / units.Hartree - ref.e_tot) < 1e-6
