"""Internal stability of an SCF solution, and following an instability down to a minimum.

A converged SCF is a stationary point of the energy over orbital rotations, not necessarily a
minimum. With the occupied-virtual rotation kappa (per spin, ``(nvir, nocc)``) and

    K = [[0, -kappa^T], [kappa, 0]]   (MO basis, occupied first),
    C(kappa) = C U(K),   U(K) = (1 - K/2)^-1 (1 + K/2)   (Cayley: exactly orthogonal,
                                                       = exp(K) to second order),
    E(kappa) = E[D(C(kappa))],

the orbital Hessian H = d2E/dkappa2 at kappa = 0 is obtained by AD (the forward-mode derivative of
the orbital gradient, :func:`dftad.newton.gradient_and_hessian`: the same energy and Fock matrix
the SCF uses, every functional included) and applied to vectors without being
formed. Its lowest eigenvalue (Davidson, preconditioned by the orbital-energy gaps) is negative at
a saddle point: the solution is *internally unstable* (a lower solution of the same kind, RHF ->
RHF or UHF -> UHF with real orbitals, exists) and the eigenvector is the rotation that lowers
the energy. :func:`follow` rotates along it, restarts the SCF and repeats until the solution is
stable, as PySCF's ``mf.stability()`` recipe does by hand.

Hessian units: Hartree per radian^2. For orbital energies e, the diagonal is close to
4 (e_a - e_i) (restricted, doubly occupied) and 2 (e_a - e_i) (unrestricted).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import energy, newton
from .hamiltonian import Integrals, Result, hamiltonian, integrals
from .setup import Setup

UNSTABLE_BELOW = -1e-5
"""Lowest Hessian eigenvalue (Hartree) below which a solution is called unstable. Rotations the
energy depends on only through the grid's anisotropy (a pi hole turned about a bond axis) give
eigenvalues of +-1e-6 and are not instabilities."""

LINE_SEARCH_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5)
"""Rotation angles (radians) along the unstable mode at which :func:`follow` evaluates E."""

MIN_DESCENT = 1e-10
"""A restart of :func:`follow` is kept only if it lowers the energy by more than this (Ha)."""

DAVIDSON_MIN_DENOMINATOR = 1e-8
"""Smallest |theta - diag| in the Davidson preconditioner."""

DAVIDSON_MIN_NORM = 1e-12
"""A correction vector below this norm after orthogonalisation ends the Davidson search."""


class Stability(NamedTuple):
    """Outcome of :func:`analyze`."""

    stable: bool
    lowest: float  # lowest eigenvalue of the orbital Hessian (Hartree)
    rotation: np.ndarray  # its eigenvector (unit norm), the packed kappa
    matvecs: int  # Hessian-vector products used
    restarts: int = 0  # SCF restarts made by :func:`follow`
    descent: float = 0.0  # energy lowering by :func:`follow`'s restarts (Hartree)


def size(setup: Setup) -> int:
    """Number of rotation parameters (length of the packed kappa)."""
    return newton.size(setup.nao, setup.occupation)


def rotated_dm(setup: Setup, mo_coeff, kappa):
    """D(C U(K)) for the packed rotation ``kappa`` (:func:`dftad.newton.rotated_dm`)."""
    return newton.rotated_dm(mo_coeff, kappa, setup.occupation)


def _energy(setup, ints, mo_coeff, kappa, xc_params=None):
    return sum(hamiltonian(setup, ints, xc_params)[1](rotated_dm(setup, mo_coeff, kappa)))


@jax.jit
def _hessian_block(setup, ints, mo_coeff, vectors, xc_params=None):
    """H V for a block of vectors (n, k) (:func:`dftad.newton.gradient_and_hessian`)."""
    energy_fn = hamiltonian(setup, ints, xc_params)[0]
    _, hop = newton.gradient_and_hessian(energy_fn, mo_coeff, setup.occupation)
    return jax.vmap(hop, in_axes=1, out_axes=1)(vectors)


@jax.jit
def _energies_along(setup, ints, mo_coeff, direction, steps, xc_params=None):
    """E(t x) for every t in ``steps`` (exactly orthogonal rotations)."""
    return jax.vmap(lambda t: _energy(setup, ints, mo_coeff, t * direction, xc_params))(steps)


_integrals = jax.jit(integrals)
_from_integrals = jax.jit(energy.kernel_from_integrals)
_second_order = jax.jit(energy.second_order)


def lowest_eigenpair(matvec, diag, tol=1e-6, max_cycle=60, nguess=4, max_space=40):
    """Lowest eigenvalue and unit eigenvector of a symmetric operator (Davidson).

    ``matvec(V)`` applies it to the columns of V (n, k); ``diag`` approximates its diagonal and
    preconditions the residual. Converged when the residual norm is below ``tol``. Returns
    (value, vector, number of matvecs)."""
    n = diag.shape[0]
    nguess = min(nguess, n)
    order = np.argsort(diag)[:nguess]
    v = np.zeros((n, nguess))
    v[order, np.arange(nguess)] = 1.0
    av = matvec(v)
    nmv = nguess
    theta, x = 0.0, v[:, 0]
    for _ in range(max_cycle):
        g = v.T @ av
        w, y = np.linalg.eigh(0.5 * (g + g.T))
        theta, x, ax = w[0], v @ y[:, 0], av @ y[:, 0]
        r = ax - theta * x
        if np.linalg.norm(r) < tol or v.shape[1] >= n:
            break
        if v.shape[1] + 1 > max_space:  # restart from the best Ritz vectors
            keep = min(nguess, v.shape[1])
            v, av = v @ y[:, :keep], av @ y[:, :keep]
        denom = theta - diag
        denom = np.where(np.abs(denom) < DAVIDSON_MIN_DENOMINATOR, DAVIDSON_MIN_DENOMINATOR,
                         denom)
        t = r / denom
        for _ in range(2):  # orthogonalise twice (classical Gram-Schmidt is not stable once)
            t = t - v @ (v.T @ t)
        norm = np.linalg.norm(t)
        if norm < DAVIDSON_MIN_NORM:
            break
        t = t / norm
        v = np.column_stack([v, t])
        av = np.column_stack([av, matvec(t[:, None])])
        nmv += 1
    return float(theta), x / np.linalg.norm(x), nmv


def analyze(setup: Setup, coords, result: Result, xc_params=None, tol=1e-6,
            ints: Integrals | None = None) -> Stability:
    """Internal stability of the converged ``result`` at ``coords`` (Bohr)."""
    coords = jnp.asarray(coords)
    if ints is None:
        ints = _integrals(setup, coords)
    if size(setup) == 0:  # nothing to rotate (every orbital occupied or none)
        return Stability(True, float("inf"), np.zeros(0), 0)
    mo, mo_energy = result.scf.mo_coeff, result.scf.mo_energy  # occupied first, spanning dm

    def matvec(v):  # one column at a time: a single program shape to compile
        return np.column_stack([
            np.asarray(_hessian_block(setup, ints, mo, jnp.asarray(v[:, i:i + 1]), xc_params))
            for i in range(v.shape[1])])

    diag = np.asarray(newton.preconditioner(mo_energy, setup.occupation))
    value, vec, nmv = lowest_eigenpair(matvec, diag, tol=tol)
    return Stability(value > UNSTABLE_BELOW, value, vec, nmv)


def follow(setup: Setup, coords, result: Result | None = None, xc_params=None,
           max_restarts: int = 4, ints: Integrals | None = None
           ) -> tuple[Result, Stability]:
    """The SCF result, moved off internal instabilities: while the lowest Hessian eigenvalue is
    below :data:`UNSTABLE_BELOW`, step along its eigenvector to the lowest energy on a line
    search (exact rotations), continue from there with second-order steps
    (:func:`dftad.energy.second_order`) and analyse again. The second-order steps lower the
    energy at every step, so they cannot return to the saddle (a DIIS restart can: on the flat
    saddles of UKS OH / 6-31G* with PBE or B3LYP, where the line search gains only ~1e-8 Ha, it
    did; the Newton steps go on to a minimum 3.6e-7 Ha lower).

    Stops at a minimum (``stable``), when a restart does not converge or end lower, or after
    ``max_restarts`` restarts. Returns the lowest result and its :class:`Stability`, whose
    ``descent`` is the energy lowered in all. An SCF that DIIS does not converge is first
    continued by second-order steps (:func:`dftad.energy.converge`).

    ``ints``: the integrals at ``coords`` if already computed (else computed here)."""
    coords = jnp.asarray(coords)
    if ints is None:
        ints = _integrals(setup, coords)
    if result is None:
        result = _from_integrals(setup, ints, xc_params)
    result = energy.converge(setup, coords, result, xc_params, ints)
    e_start = float(result.e_tot)
    steps = jnp.asarray(LINE_SEARCH_STEPS)
    for restarts in range(max_restarts + 1):
        stab = analyze(setup, coords, result, xc_params, ints=ints)._replace(
            restarts=restarts, descent=e_start - float(result.e_tot))
        if stab.stable or not bool(result.converged) or restarts == max_restarts:
            break
        mo = result.scf.mo_coeff  # the orbitals analyze used
        es = np.asarray(_energies_along(setup, ints, mo, jnp.asarray(stab.rotation), steps,
                                        xc_params))
        kappa = steps[int(np.argmin(es))] * jnp.asarray(stab.rotation)
        start = result._replace(scf=result.scf._replace(
            mo_coeff=newton.rotate(mo, kappa, setup.occupation), cycles=jnp.asarray(0)))
        new = _second_order(setup, ints, start, xc_params)
        if not bool(new.converged) or float(new.e_tot) > float(result.e_tot) - MIN_DESCENT:
            break  # keep what we have
        result = new
    return result, stab
