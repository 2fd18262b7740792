"""Derivatives of the converged SCF density by the implicit function theorem.

The SCF solution is the density matrix D* that reproduces itself under one Roothaan step,

    D* = Phi(D*, theta),    Phi(D, theta) = projector of F(D, theta) in the metric S(theta)
                                            onto the eigenvectors D* occupies,

(the lowest ones at an aufbau solution; the occupation pattern is read off D* once and held
fixed, so a non-aufbau fixed point, which a level-shifted DIIS can reach, is differentiated as
itself), where theta is everything the Hamiltonian depends on (nuclear coordinates, XC
parameters, an electric field, basis exponents). Differentiating
``r(D, theta) = Phi(D, theta) - D = 0`` gives

    (1 - dPhi/dD) dD* = dPhi/dtheta dtheta,

one linear (coupled-perturbed) system per tangent, solved by GMRES with the JVP of ``Phi`` as the
operator (a custom JVP on the converged root, :func:`jax.lax.custom_linear_solve` so that
reverse mode solves the transposed system). Nothing is differentiated through the SCF
iterations, so the cost of a derivative does not depend on how many cycles the SCF took.

The transposed system is written out rather than left to JAX: dPhi/dD = A K with K = dF/dD,
the response kernel (a second derivative of the energy, so self-adjoint) and A the projector's
derivative below (self-adjoint), so (dPhi/dD)^T = K A, again one Fock JVP per GMRES product.
(JAX's transpose of the JVP stores the Fock build's intermediates per grid point and runs them
backwards: a reverse-mode derivative cost 3x more.)

The operator ``1 - dPhi/dD`` is already preconditioned by orbital-energy differences: in the MO
basis dPhi/dD maps a density change to the occupied-virtual response
(n_i - n_a) (C_a^T dF C_i) / (e_i - e_a), so the system is the coupled-perturbed equation
(e_a - e_i + K) U = b divided by e_a - e_i, and GMRES needs few iterations.

``Phi`` is differentiated in closed form (:func:`dftad.linalg.projector`): for integer
occupations the derivative of P = sum_i n_i v_i v_i^T is

    dP = V [G o (V^T dF' V)] V^T,   G_ab = (n_a - n_b) / (e_a - e_b)  (0 where n_a = n_b),

which is finite for degenerate orbitals of equal occupation (symmetric molecules) and can be
differentiated again (Hessians).

Which solver found the root does not matter to the derivative (optimistix's ``adjoint=``
pattern): :func:`solve` takes the solver as an argument, DIIS (:func:`dftad.scf.solve`) or
trust-region Newton (:func:`dftad.newton.solve`), and wraps whatever it returns the same way.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import scf
from .linalg import eigh, gmres, orthonormal_basis, projector, projector_derivative
from .occupation import Occupation

GMRES_TOL = 1e-10
"""Relative residual at which the linear-response (GMRES) solve stops."""

GMRES_RESTART = 40
"""Krylov vectors per GMRES cycle (the preconditioned response needs far fewer)."""

GMRES_MAXITER = 20
"""GMRES restart cycles at most."""


def density_from_fock(fock, s1e, mo_occ):
    """One Roothaan step, D = X P(X^T F X) X^T: the density of ``fock`` (AO basis) with
    occupations ``mo_occ`` of its eigenvectors in ascending energy."""
    x = orthonormal_basis(s1e)
    p = projector(x.T @ fock @ x, mo_occ)
    return x @ p @ x.T


def occupied_first(fock, dm, s1e, occ: Occupation):
    """Which eigenvectors of F C = S C e the density occupies: ``(mo_occ, order)``, ``mo_occ`` their
    occupations in ascending energy, ``order`` the permutation to the :class:`dftad.scf.SCFResult`
    order (occupied first, each space ascending). Read off n_k = v_k^T L^T D L v_k in the
    Cholesky basis; the ``occ.counts`` most occupied per channel count as occupied."""
    lower = jnp.linalg.cholesky(s1e)  # S = L L^T, X = L^-T:  D = X P X^T  ->  P = L^T D L
    x = orthonormal_basis(s1e)
    _, v = jnp.linalg.eigh(x.T @ fock @ x)
    n = jnp.einsum("...ki,...kl,...li->...i", v, lower.T @ dm @ lower, v)
    order = jnp.argsort(-jnp.round(n / occ.per_orbital), axis=-1, stable=True)
    mo_occ = jnp.take_along_axis(occ.occupations(fock.shape[-1]), jnp.argsort(order, axis=-1),
                                 axis=-1)
    return mo_occ, order


def mo_energies(fock, s1e):
    """Orbital energies of F C = S C e, ascending, differentiable (derivative
    C_i^T dF C_i - e_i C_i^T dS C_i through the Cholesky basis)."""
    x = orthonormal_basis(s1e)
    return eigh(x.T @ fock @ x)[0]


def _gmres(matvec, b):
    return gmres(matvec, b, GMRES_TOL, GMRES_RESTART, GMRES_MAXITER)


def _tangent_solve(linearised, transposed, y):
    """Solve g(x) = y for the linearised residual g (``linearised``), whose transpose
    ``transposed`` reverse mode solves with."""
    return jax.lax.custom_linear_solve(linearised, y, solve=_gmres,
                                       transpose_solve=lambda _, b: _gmres(transposed, b))


def solve(energy_fn, s1e, start, occ: Occupation, options: scf.SCFOptions = scf.DEFAULT_OPTIONS,
          solver=scf.solve) -> scf.SCFResult:
    """``solver(energy_fn, s1e, start, occ, options)`` (an :class:`~dftad.scf.SCFResult`) whose
    density, and everything recomputed from it (energy, Fock matrix, orbital energies), is
    differentiable by the implicit function theorem, whichever solver found it.

    ``energy_fn`` and ``s1e`` may depend on traced parameters (closed over); ``start`` (an initial
    density for DIIS, an :class:`~dftad.scf.SCFResult` for Newton) is only a starting point and
    gets no derivative."""

    res = jax.lax.stop_gradient(solver(energy_fn, s1e, start, occ, options))
    mo_occ, order = jax.lax.stop_gradient(occupied_first(res.fock, res.dm, s1e, occ))

    # The SCF has already found the root; _root only attaches the implicit derivative. The
    # parameters the Fock matrix closes over become explicit arguments, so that they get tangents.
    fock_fn, params = jax.closure_convert(lambda d: energy_fn(d)[1], res.dm)
    dm = _root(fock_fn, res.dm, res.fock, s1e, mo_occ, *params)
    # E and F of the root: the solver's values (it evaluated energy_fn at this density), with
    # energy_fn evaluated again only where a derivative is taken
    efn, eparams = jax.closure_convert(lambda d: energy_fn(d), res.dm)
    e_tot, fock = _known(efn, (res.e_tot, res.fock), dm, *eparams)
    mo_energy = jnp.take_along_axis(mo_energies(fock, s1e), order, axis=-1)
    return res._replace(e_tot=e_tot, dm=dm, fock=fock, mo_energy=mo_energy)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _known(fn, value, *args):
    """``fn(*args)`` where its ``value`` is already known (a constant: the solver computed it
    at ``args``): ``fn`` runs only under differentiation, whose JVP is ``fn``'s own (at any
    order, ``fn`` being plain JAX). Saves the SCF's last energy and Fock matrix from being
    evaluated twice (one exchange and XC build: ~2.5 s for caffeine/def2-SVP B3LYP)."""
    return value


@_known.defjvp
def _known_jvp(fn, primals, tangents):
    _, *args = primals
    _, *dargs = tangents
    return jax.jvp(fn, tuple(args), tuple(dargs))


def _residual(fock_fn, dm, s1e, mo_occ, params):
    """r(D) = Phi(D) - D, one Roothaan step's change of the density."""
    return density_from_fock(fock_fn(dm, *params), s1e, mo_occ) - dm


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _root(fock_fn, root, fock, s1e, mo_occ, *params):
    """``root`` (a zero of the residual r(D) = Phi(D) - D with the Fock matrix
    ``fock_fn(D, *params)``, which is ``fock`` at the root), differentiable in ``s1e`` and
    ``params`` by the implicit function theorem: d root = -(dr/d root)^-1 (dr/d params) d params.

    Unlike :func:`jax.lax.custom_root`, which linearises the residual and traces the GMRES solve
    whenever it is called, this traces them only when a derivative is taken: energy-only
    programs trace in less than half the time."""
    return root


@_root.defjvp
def _root_jvp(fock_fn, primals, tangents):
    root, fock, s1e, mo_occ, *params = primals
    _, _, ds1e, _, *dparams = tangents
    # re-entering _root keeps the root a differentiable function of params at the next order
    root = _root(fock_fn, root, fock, s1e, mo_occ, *params)
    _, rhs = jax.jvp(lambda s, *p: _residual(fock_fn, root, s, mo_occ, p),
                     (s1e, *params), (ds1e, *dparams))

    def linearised(x):
        return jax.jvp(lambda d: _residual(fock_fn, d, s1e, mo_occ, params), (root,), (x,))[1]

    # dr/dD = A K - 1 (module docstring), so the transpose is K A - 1
    x = orthonormal_basis(s1e)
    xt = jnp.swapaxes(x, -1, -2)
    dp = projector_derivative(xt @ jax.lax.stop_gradient(fock) @ x, mo_occ)

    def transposed(y):
        ay = x @ dp(xt @ y @ x) @ xt
        return jax.jvp(lambda d: fock_fn(d, *params), (root,), (ay,))[1] - y

    return root, _tangent_solve(linearised, transposed, -rhs)
