"""Hessians, harmonic frequencies, IR intensities, dipoles and polarizabilities.

References: PySCF's analytic RHF Hessian and dipole, PySCF finite-field dipoles, central
differences of dftad's own forces (DFT Hessians: PySCF's has no grid response), and the NIST
CCCBDB table for water at HF/3-21G shipped in molecules/reference/.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from _checks import fd_jacobian
from pyscf import dft, gto, scf

import dftad
from dftad import properties
from dftad.constants import AU_DEBYE, AU_KM_MOL, AU_WAVENUMBER

REFERENCE = Path(__file__).resolve().parents[1] / "molecules" / "reference"
TIGHT = {"conv_tol": 1e-12, "conv_tol_grad": 1e-10}
ISOTOPE_MASSES = {"H": 1.00782503207, "O": 15.99491461956}  # most abundant isotopes (amu)


def optimize(setup, coords, gtol=1e-7):
    """Minimise the energy with SciPy's BFGS on dftad's forces (one compile)."""
    fn = jax.jit(dftad.energy_and_forces)

    def fun(x):
        res = fn(setup, jnp.asarray(x.reshape(-1, 3)))
        assert bool(res.converged)
        return float(res.e_tot), -np.asarray(res.forces).ravel()

    opt = scipy.optimize.minimize(fun, np.asarray(coords).ravel(), jac=True, method="BFGS",
                                  options={"gtol": gtol})
    assert np.abs(opt.jac).max() < 10 * gtol
    return opt.x.reshape(-1, 3)


def test_water_hf_321g_against_cccbdb_and_pyscf():
    """Optimize water at HF/3-21G; Hessian (as the CLI computes it: through pieces for
    closed-shell HF, atom by atom) vs pyscf.hessian.rhf (1e-5), frequencies vs the CCCBDB
    (3 cm-1), dipole vs the CCCBDB (0.01 D) and PySCF (1e-5 a.u.). The one-program Hessian:
    test_dft_hessian and the tutorial (slow); the pieces' Hessian more tightly:
    test_hessian_pieces."""
    ref = json.loads((REFERENCE / "cccbdb_water_hf_3-21g.json").read_text())
    mol = dftad.load("water")
    setup = dftad.build(mol, "3-21g", "hf", **TIGHT)
    coords = optimize(setup, mol.coords)

    done = []  # the path of `dftad frequencies`: one atom's displacements at a time
    d = properties.second_derivatives_stepwise(setup, jnp.asarray(coords),
                                               progress=lambda k, n: done.append((k, n)))
    assert done == [(1, 3), (2, 3), (3, 3)]
    hess, dmu = np.asarray(d.hessian), d.dipole_derivative
    assert np.abs(np.asarray(d.gradient)).max() < 1e-6  # the optimized geometry
    pmol = gto.M(atom=list(zip(mol.symbols, coords)), unit="Bohr", basis="3-21g", verbose=0)
    mf = scf.RHF(pmol)
    mf.conv_tol = 1e-12
    mf.kernel()
    h_ref = mf.Hessian().kernel().transpose(0, 2, 1, 3)  # (A, B, i, j) -> (A, i, B, j)
    assert np.abs(hess - h_ref).max() < 1e-5

    masses = [ISOTOPE_MASSES[s] for s in mol.symbols]
    vib = properties.harmonic_analysis(hess, coords, masses, dmu)
    assert vib.frequencies_cm1.shape == (3,)
    np.testing.assert_allclose(np.sort(vib.frequencies_cm1), np.sort(ref["frequencies_cm1"]),
                               atol=3.0)
    assert np.all(vib.ir_intensities_km_mol > 0)

    mu = np.asarray(d.dipole)
    assert abs(np.linalg.norm(mu) * AU_DEBYE - ref["dipole_debye"]) < 0.01
    assert np.abs(mu - mf.dip_moment(unit="au", verbose=0)).max() < 1e-5


def _pyscf_dipole_in_field(pmol, xc, field):
    mf = scf.RHF(pmol) if xc == "hf" else dft.RKS(pmol)
    if xc != "hf":
        mf.xc = xc
        mf.grids.level = 3
        mf.small_rho_cutoff = 0
    h1 = mf.get_hcore() + np.einsum("x,xij->ij", field, pmol.intor("int1e_r"))
    mf.get_hcore = lambda *a: h1
    mf.conv_tol = 1e-13
    mf.conv_tol_grad = 1e-9
    mf.kernel()
    assert mf.converged
    dm = mf.make_rdm1()
    return pmol.atom_charges() @ pmol.atom_coords() - np.einsum("xij,ji->x",
                                                                pmol.intor("int1e_r"), dm)


# B3LYP: ~3 min compiling the XC kernel's forward-over-forward pass (the XC response is
# checked in the default run by test_stability's orbital Hessians and test_implicit)
@pytest.mark.parametrize("xc", ["hf", pytest.param("b3lyp", marks=pytest.mark.slow)])
def test_dipole_and_polarizability_vs_pyscf_finite_field(xc):
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", xc, **TIGHT)
    coords = jnp.asarray(mol.coords)
    res, mu, alpha = jax.jit(properties.dipole_and_polarizability)(setup, coords)
    assert bool(res.converged)
    mu, alpha = np.asarray(mu), np.asarray(alpha)
    pmol = gto.M(atom=mol.to_pyscf_atom(), unit="Bohr", basis="sto-3g", verbose=0)
    assert np.abs(mu - _pyscf_dipole_in_field(pmol, xc, np.zeros(3))).max() < 1e-5
    h = 1e-4
    alpha_ff = np.zeros((3, 3))
    for j in range(3):
        step = np.zeros(3)
        step[j] = h
        alpha_ff[:, j] = (_pyscf_dipole_in_field(pmol, xc, step)
                          - _pyscf_dipole_in_field(pmol, xc, -step)) / (2 * h)
    assert np.abs(alpha - alpha_ff).max() < 1e-5, np.abs(alpha - alpha_ff).max()
    assert np.abs(alpha - alpha.T).max() < 1e-8


@pytest.mark.slow  # ~3-5 min: compiling forward-over-reverse XC third derivatives
def test_dft_hessian_vs_finite_difference_of_forces():
    """B3LYP (grid response included): the AD Hessian equals central differences of dftad's
    own analytic forces (h = 1e-3 Bohr) to 1e-5."""
    mol = dftad.load("water")
    setup = dftad.build(mol, "sto-3g", "b3lyp", grid_level=2, **TIGHT)
    coords = jnp.asarray(mol.coords)
    hess = np.asarray(jax.jit(properties.hessian)(setup, coords)).reshape(9, 9)
    fn = jax.jit(dftad.energy_and_forces)
    fd = fd_jacobian(lambda c: -fn(setup, c).forces.ravel(), coords, h=1e-3).reshape(9, 9)
    assert np.abs(hess - fd).max() < 1e-5, np.abs(hess - fd).max()
    assert np.abs(hess - hess.T).max() < 1e-5


def test_harmonic_analysis_units_and_projection():
    """A diatomic spring with force constant k: one frequency sqrt(k/mu), in cm-1 through the
    CODATA constants; translations and rotations removed (3N - 5 = 1 mode)."""
    k = 0.5  # Hartree/Bohr^2
    coords = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.4]])
    masses = np.array([1.0, 2.0])
    hess = np.zeros((2, 3, 2, 3))
    hess[0, 2, 0, 2] = hess[1, 2, 1, 2] = k
    hess[0, 2, 1, 2] = hess[1, 2, 0, 2] = -k
    vib = properties.harmonic_analysis(hess, coords, masses)
    assert vib.frequencies_cm1.shape == (1,)
    mu = 2.0 / 3.0
    assert abs(vib.frequencies_cm1[0] - np.sqrt(k / mu) * AU_WAVENUMBER) < 1e-8
    # reduced mass in the Gaussian/PySCF convention, 1 / sum |Cartesian mode|^2 of the
    # normalised mass-weighted mode: m1 m2 (m1 + m2) / (m1^2 + m2^2)
    assert abs(vib.reduced_masses[0] - 6.0 / 5.0) < 1e-12
    assert abs(AU_WAVENUMBER - 5140.487) < 1e-2
    assert abs(AU_KM_MOL - 974.88) < 0.01
