"""Molecular properties by automatic differentiation through the implicit SCF.

    dipole           mu = sum_A Z_A R_A - sum_mn D_mn <m|r|n>                 (a.u., e Bohr)
    polarizability   alpha_ij = d mu_i / d F_j = -d^2 E / dF_i dF_j           (a.u.)
    Hessian          H = d^2 E / dR dR = d/dR [dE/dR|_(D*(R), W*(R))]         (Hartree/Bohr^2)
    frequencies      eigenvalues of the mass-weighted Hessian with translations and rotations
                     projected out, in cm^-1 (negative numbers are imaginary frequencies)
    IR intensities   A_k = N_A / (12 eps0 c^2) |d mu / d Q_k|^2                (km/mol)

The electric field F enters the Hamiltonian as h += F . r (origin 0, PySCF's finite-field sign),
so mu = -dE/dF. Second derivatives differentiate the converged density by the implicit function
theorem (:mod:`dftad.implicit`): one linear-response solve per perturbation, never through the
SCF iterations. The JAX functions here are pure (jit them); :func:`harmonic_analysis` is NumPy.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import energy, forces
from .constants import AU_DEBYE, AU_KM_MOL, AU_WAVENUMBER
from .hamiltonian import Result
from .integrals import one_electron
from .pieces import repeated
from .setup import Setup


@jax.jit
def dipole(setup: Setup, coords, dm):
    """mu = sum_A Z_A R_A - sum D r (a.u.) for the density ``dm`` (per spin when unrestricted).

    Jitted: called eagerly, the multipole integrals op by op compiled ~250 small programs
    (~5 s); inside a traced function it is inlined as before."""
    dm_tot = setup.occupation.total(dm)
    r = one_electron.multipole(setup.basis, coords, 1)
    return setup.charges @ coords - jnp.einsum("xij,ij->x", r, dm_tot)


def polarizability(setup: Setup, coords, xc_params=None, dm0=None):
    """Static dipole polarizability alpha_ij = d mu_i / d F_j at zero field (a.u., (3, 3))."""
    return dipole_and_polarizability(setup, coords, xc_params, dm0)[2]


def dipole_and_polarizability(setup: Setup, coords, xc_params=None, dm0=None):
    """(SCF :class:`~dftad.Result`, dipole (3,), polarizability (3, 3)) in atomic units,
    from one SCF (started from ``dm0``, default the setup's guess) and three linear-response
    solves."""

    def mu(field):
        res = energy.kernel(setup, coords, xc_params, dm0, field=field)
        m = dipole(setup, coords, res.scf.dm)
        return m, (m, res)

    alpha, (m, res) = jax.jacfwd(mu, has_aux=True)(jnp.zeros(3))
    return res, m, alpha


class SecondDerivatives(NamedTuple):
    """What a harmonic analysis with IR intensities needs, from one SCF."""

    result: Result
    gradient: jax.Array  # dE/dR (natm, 3), Hartree/Bohr
    dipole: jax.Array  # (3,) a.u.
    hessian: jax.Array  # (natm, 3, natm, 3), Hartree/Bohr^2
    dipole_derivative: jax.Array  # (3, natm, 3), d mu_x / d R_Aj, a.u.


def second_derivatives(setup: Setup, coords, xc_params=None, dm0=None) -> SecondDerivatives:
    """Energy, gradient, dipole, Hessian and dipole derivatives: forward mode over the analytic
    gradient, whose density and energy-weighted density follow the geometry through the
    implicit SCF (3 natm linear-response solves, shared by the Hessian and the dipole).
    ``dm0``: the SCF's starting density (default the setup's guess), e.g. an
    :func:`~dftad.energy_and_forces` result's, to differentiate the state it found."""

    first = _first(setup, xc_params, dm0)
    (hess, dmu), (grad, mu, res) = jax.jacfwd(first, has_aux=True)(coords)
    return SecondDerivatives(res, grad, mu, hess, dmu)


def _first(setup: Setup, xc_params, start=None):
    """coords -> ((dE/dR, mu), (dE/dR, mu, Result)): what second derivatives differentiate
    (``start``: the SCF's starting density, default the setup's guess)."""

    def first(c):
        res, grad = energy_and_gradient(setup, c, xc_params, start)
        mu = dipole(setup, c, res.scf.dm)
        return (grad, mu), (grad, mu, res)

    return first


@repeated
def second_derivatives_stepwise(setup: Setup, coords, progress=None) -> SecondDerivatives:
    """What ``dftad frequencies`` and geometry optimization's exact Hessians compute, driven
    from Python (``progress(done, natm)`` after each atom): closed-shell Hartree-Fock through
    pieces every molecule shares (:func:`dftad.hessian_pieces.second_derivatives`: analytic
    second-derivative integrals and CPHF, ~25 s of compiling for water in def2-SVP against
    ~2 minutes here), anything else by :func:`second_derivatives_by_atom`."""
    from . import hessian_pieces

    if hessian_pieces.supported(setup):
        return hessian_pieces.second_derivatives(setup, coords, progress)
    return second_derivatives_by_atom(setup, coords, progress)


def second_derivatives_by_atom(setup: Setup, coords, progress=None) -> SecondDerivatives:
    """:func:`second_derivatives` driven from Python one atom at a time, so that a long
    calculation reports its progress: ``progress(done, natm)`` after each atom.

    The SCF runs first through the compiled pieces that energies share
    (:func:`dftad.energy.kernel_stepwise`); then one compiled program per molecule takes the
    derivatives along one atom's three Cartesian displacements per call (three linear-response
    solves), its SCF starting from the converged density (one or two cycles). The same numbers
    as :func:`second_derivatives` (which takes all 3 natm displacements in one program, and is
    differentiable); this one holds the tangents of three displacements at a time in memory
    (the ERI tensor's tangent is nao^4 per displacement). Call it unjitted (a Python loop).
    ``result`` is the first SCF's (its cycles); where it did not converge, the derivatives are
    NaN."""
    progress = progress or (lambda done, total: None)
    scf_result = energy.kernel_stepwise(setup, coords)
    natm = coords.shape[0]
    if not bool(scf_result.converged):  # nothing to differentiate: NaN derivatives
        shapes = (natm, 3), (3,), (natm, 3, natm, 3), (3, natm, 3)
        return SecondDerivatives(scf_result, *(jnp.full(n, jnp.nan) for n in shapes))
    start = scf_result.scf.dm
    unit = jnp.eye(3 * natm).reshape(natm, 3, natm, 3)
    columns = []
    for a in range(natm):
        # (natm, 3, 3) and (3, 3): d/dR_a{x,y,z} of the gradient and the dipole (last axis)
        (hess, dmu), (grad, mu, _) = jax.block_until_ready(_along(setup, coords, start, unit[a]))
        columns.append((hess, dmu))
        progress(a + 1, natm)
    hess = jnp.concatenate([h for h, _ in columns], axis=-1).reshape(natm, 3, natm, 3)
    dmu = jnp.concatenate([d for _, d in columns], axis=-1).reshape(3, natm, 3)
    return SecondDerivatives(scf_result, grad, mu, hess, dmu)


@jax.jit
def _along(setup: Setup, coords, start, displacements):
    """Forward-mode derivatives of (gradient, dipole) along ``displacements`` (k, natm, 3),
    stacked on a last axis of size k, with the SCF started from ``start``."""
    first = _first(setup, None, start)
    return jax.jacfwd(lambda x: first(coords + jnp.tensordot(x, displacements, 1)),
                      has_aux=True)(jnp.zeros(displacements.shape[0]))


def energy_and_gradient(setup: Setup, coords, xc_params=None, start=None):
    """(SCF :class:`~dftad.Result`, dE/dR (natm, 3)) from one pass through the integrals,
    differentiable to second order: the SCF's density follows the geometry by the implicit
    function theorem (:func:`dftad.energy.kernel_from_integrals`), and the gradient is the
    pullback of the Lagrangian E[D] - sum W S (:func:`dftad.forces.lagrangian`) through the same
    forward pass (as :func:`dftad.forces.energy_and_forces`, which does not differentiate the SCF).
    ``start``: the SCF's starting density (default the setup's guess). Forward mode over it
    traces the integral class kernels once for the SCF and the gradient together (water
    HF/def2-SVP Hessian: 23 s of tracing instead of 30 s with the SCF and
    :func:`dftad.forces.gradient_at` differentiated apart)."""
    ints, gradient = forces.integrals_and_gradient(setup, coords, xc_params)
    res = energy.kernel_from_integrals(setup, ints, xc_params, start)
    return res, gradient(res.scf.dm, res.scf.fock)


def hessian(setup: Setup, coords, xc_params=None, dm0=None):
    """Nuclear Hessian d^2E/dR_Ai dR_Bj (Hartree/Bohr^2, shape (natm, 3, natm, 3));
    ``dm0`` as :func:`second_derivatives`."""
    return second_derivatives(setup, coords, xc_params, dm0).hessian


def dipole_derivative(setup: Setup, coords, xc_params=None, dm0=None):
    """d mu_x / d R_Aj (a.u., shape (3, natm, 3)), the atomic polar tensors."""
    return second_derivatives(setup, coords, xc_params, dm0).dipole_derivative


class Vibrations(NamedTuple):
    """Harmonic analysis. ``modes`` are Cartesian displacements (nmode, natm, 3), mass-weighted
    normal coordinates un-weighted (as PySCF's ``norm_mode``)."""

    frequencies_cm1: np.ndarray
    ir_intensities_km_mol: np.ndarray | None
    modes: np.ndarray
    reduced_masses: np.ndarray


def harmonic_analysis(hess, coords, masses, dipole_deriv=None, linear_threshold=1e-4):
    """Frequencies (cm^-1, imaginary ones negative) and IR intensities (km/mol) from a Hessian
    (natm, 3, natm, 3) in Hartree/Bohr^2, coordinates in Bohr and masses in amu.

    Translations and rotations (two for a linear molecule) are projected out of the
    mass-weighted Hessian before it is diagonalised."""
    hess = np.asarray(hess, dtype=float)
    coords = np.asarray(coords, dtype=float)
    masses = np.asarray(masses, dtype=float)
    natm = coords.shape[0]
    n = 3 * natm
    hess = 0.5 * (hess.reshape(n, n) + hess.reshape(n, n).T)
    sqm = np.repeat(np.sqrt(masses), 3)
    hmw = hess / sqm[:, None] / sqm[None, :]
    centre = masses @ coords / masses.sum()
    x = coords - centre
    tr = []
    for k in range(3):  # translations
        t = np.zeros((natm, 3))
        t[:, k] = 1.0
        tr.append((t * np.sqrt(masses)[:, None]).ravel())
    for k in range(3):  # rotations about the axes through the centre of mass
        axis = np.zeros(3)
        axis[k] = 1.0
        tr.append((np.cross(axis, x) * np.sqrt(masses)[:, None]).ravel())
    q, r = np.linalg.qr(np.array(tr).T)
    keep = np.abs(np.diag(r)) > linear_threshold * np.abs(np.diag(r)).max()
    q = q[:, keep]  # 5 vectors for a linear molecule, 6 otherwise (3 for an atom)
    w, v = np.linalg.eigh(np.eye(n) - q @ q.T)
    basis = v[:, w > 0.5]
    k, u = np.linalg.eigh(basis.T @ hmw @ basis)
    freqs = np.sign(k) * np.sqrt(np.abs(k)) * AU_WAVENUMBER
    mw_modes = (basis @ u).T  # (nmode, 3 natm), orthonormal mass-weighted
    cart = mw_modes / sqm[None, :]
    reduced = 1.0 / np.sum(cart**2, axis=1)
    intens = None
    if dipole_deriv is not None:
        dmu = np.asarray(dipole_deriv, dtype=float).reshape(3, n)
        dmu_dq = dmu @ cart.T  # (3, nmode): d mu / d Q_k, Q in sqrt(amu) Bohr
        intens = np.sum(dmu_dq**2, axis=0) * AU_KM_MOL
    return Vibrations(freqs, intens, cart.reshape(-1, natm, 3), reduced)


def to_debye(mu):
    """Dipole in Debye from atomic units."""
    return np.asarray(mu) * AU_DEBYE
