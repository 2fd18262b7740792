"""The analytic Hartree-Fock Hessian driven from Python through compiled pieces.

:func:`dftad.properties.hessian` differentiates the whole calculation twice as one program per
molecule (forward over reverse through every integral class: ~2 minutes of compiling for water
in def2-SVP). Here the same Hessian is assembled from pieces every molecule shares, column by
column (one nuclear displacement y at a time), as in PySCF's ``hessian.rhf``:

    d^2E/dx dy = d/dy g_x(R; D, W)                        (the integrals' second derivatives)
               + dg_x/dD [dD/dy] + dg_x/dW [dW/dy]        (the response of the density)
               + d^2E_nuc/dx dy

with g_x(R; D, W) = sum D dh/dx + sum Gamma(D) d(ij|kl)/dx - sum W dS/dx the gradient at fixed
densities (:func:`dftad.forces.gradient_stepwise`'s terms). The first term is the integrals'
second derivatives contracted with the densities (:func:`.integrals.eri_pieces.hessian`,
:func:`.integrals.one_electron_pieces.gradient_tangent`); the response comes from the coupled-
perturbed Hartree-Fock (CPHF) equations, with the first-order Fock matrix
F^y = h^y + J[D](eri^y) - 1/2 K[D](eri^y) from the integrals' derivatives, the two-electron
part contracted with D as it is made (:func:`.integrals.eri_pieces.fock_tangents`, no derivative
tensors; :func:`.integrals.one_electron_pieces.matrices_tangent`), and the orbital Hessian
applied through the SCF's J/K piece. The gradient is linear in D and W except for Gamma, which
is quadratic in D: its derivative along dD contracts the integrals' derivatives to G^x[D]
(F^x's two-electron part), so the response term is sum dD F^x - sum dW S^x.

Closed-shell Hartree-Fock (no semilocal XC, no dispersion), incore ERIs. Hartree/Bohr^2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import forces, scf_pieces
from .forces import _eri_terms
from .integrals import eri_pieces, one_electron, one_electron_pieces
from .jk import IncoreJK, coulomb_exchange
from .pieces import piece, repeated
from .properties import SecondDerivatives, dipole
from .setup import Setup


class CPHFNotConverged(RuntimeError):
    """The coupled-perturbed HF equations did not converge (an unstable or nearly unstable
    RHF: its orbital Hessian is not positive definite)."""


def supported(setup: Setup) -> bool:
    """Whether :func:`hessian` handles ``setup``: restricted Hartree-Fock (or exact exchange
    alone), incore ERIs, no dispersion correction."""
    return (setup.occupation.restricted and not setup.semilocal
            and isinstance(setup.jk, IncoreJK) and setup.disp is None)


def nuclear_hessian(coords, charges) -> np.ndarray:
    """d^2 E_nuc / dR_Ai dR_Bj (natm, 3, natm, 3) of E_nuc = sum_{A<B} Z_A Z_B / R_AB:
    -Z_A Z_B (3 d d^T - R^2 1) / R^5 for A != B (d = R_A - R_B), minus their row sum on the
    diagonal blocks."""
    r = np.asarray(coords, dtype=np.float64)
    z = np.asarray(charges, dtype=np.float64)
    natm = len(r)
    d = r[:, None, :] - r[None, :, :]
    dist = np.linalg.norm(d, axis=-1)
    np.fill_diagonal(dist, 1.0)
    zz = z[:, None] * z[None, :]
    np.fill_diagonal(zz, 0.0)
    blocks = -zz[..., None, None] * (3 * d[..., :, None] * d[..., None, :]
                                      - (dist**2)[..., None, None] * np.eye(3)) / dist[..., None,
                                                                                       None]**5
    out = blocks.copy()
    out[np.arange(natm), np.arange(natm)] = -blocks.sum(axis=1)
    return out.transpose(0, 2, 1, 3)


@repeated
def hessian(setup: Setup, coords, result=None, cphf_tol: float = 1e-10) -> np.ndarray:
    """d^2E/dR_Ai dR_Bj (natm, 3, natm, 3) (Hartree/Bohr^2) at ``coords`` (Bohr), from the
    converged SCF ``result`` (:func:`dftad.energy.kernel_stepwise`'s; run here when None).
    ``cphf_tol``: the CPHF residual's norm relative to its right-hand side's."""
    return _hessian(setup, coords, result, cphf_tol)[0]


@repeated
def second_derivatives(setup: Setup, coords, progress=None,
                       cphf_tol: float = 1e-10) -> SecondDerivatives:
    """:func:`dftad.properties.second_derivatives` (energy, gradient, dipole, Hessian, dipole
    derivatives) through pieces: the SCF and the gradient as :func:`dftad.run` computes them,
    the Hessian by :func:`hessian`, d mu/dR = (d mu/dR at fixed D) - sum dD/dR <m|r|n> with the
    CPHF's dD. ``progress(done, natm)`` after each atom's displacements. Where the SCF did not
    converge, the derivatives are NaN (as :func:`dftad.properties.second_derivatives_by_atom`)."""
    coords = jax.device_put(np.asarray(coords, dtype=np.float64))
    prob = scf_pieces.Problem(setup, coords) if supported(setup) else None
    res = scf_pieces.iterate(prob)[0] if prob is not None else None
    natm = coords.shape[0]
    if res is not None and not bool(res.converged):
        shapes = (natm, 3), (3,), (natm, 3, natm, 3), (3, natm, 3)
        return SecondDerivatives(res, *(jnp.full(n, jnp.nan) for n in shapes))
    hess, d1 = _hessian(setup, coords, res, cphf_tol, progress, prob)
    grad = forces.gradient_stepwise(setup, coords, res.scf)
    mu, r, dmu = _dipole_terms(setup, coords, res.scf.dm)
    dmu = np.asarray(dmu) - np.einsum("xij,yij->xy", np.asarray(r), d1).reshape(3, natm, 3)
    return SecondDerivatives(res, jnp.asarray(grad), mu, jnp.asarray(hess), jnp.asarray(dmu))


@jax.jit
def _dipole_terms(setup: Setup, coords, dm):
    """(mu, <m|r|n> (3, nao, nao), d mu/dR at fixed ``dm`` (3, natm, 3)): one small program per
    molecule."""
    r = one_electron.multipole(setup.basis, coords, 1)
    return dipole(setup, coords, dm), r, jax.jacfwd(dipole, argnums=1)(setup, coords, dm)


def _hessian(setup: Setup, coords, result, cphf_tol, progress=None, prob=None):
    """(:func:`hessian`, dD/dy (3 natm, nao, nao) per displacement y); ``prob``: the SCF's
    :class:`dftad.scf_pieces.Problem` at ``coords`` if at hand (its ERIs)."""
    if not supported(setup):
        raise NotImplementedError(
            "the Hessian through pieces is for closed-shell Hartree-Fock with incore ERIs and "
            "no dispersion; use dftad.properties.hessian")
    progress = progress or (lambda done, total: None)
    coords = np.asarray(coords, dtype=np.float64)
    if prob is None:
        prob = scf_pieces.Problem(setup, jax.device_put(coords))
    if result is None:
        result = scf_pieces.iterate(prob)[0]
    if not bool(result.scf.converged):
        raise RuntimeError("the SCF did not converge: no Hessian")
    basis, plan = setup.basis, setup.jk.plan
    charges = np.asarray(setup.charges, dtype=np.float64)
    natm = len(coords)
    mo_c = np.asarray(result.scf.mo_coeff)
    mo_e = np.asarray(result.scf.mo_energy)
    occ = np.asarray(result.scf.mo_occ) > 0
    c_o, c_v, e_o, e_v = mo_c[:, occ], mo_c[:, ~occ], mo_e[occ], mo_e[~occ]
    dm = 2.0 * c_o @ c_o.T
    w = 2.0 * (c_o * e_o) @ c_o.T
    terms = _eri_terms(setup, dm)

    def g_of(x):  # J[X] - 1/2 K_tot[X] of symmetric X (k, nao, nao), k padded to a bucket
        k = len(x)
        pad = np.zeros((eri_pieces.bucket(k, 4) - k,) + x.shape[1:])
        return prob.cut(_g_stack(prob.tensors, prob.pad(np.concatenate([x, pad])),
                                 prob.weights))[:k]

    # every atom in one pass over the integrals (before the atoms' progress): d/dy g_x at
    # fixed densities, the two-electron integrals' second derivatives, and J^y[D] - K^y[D] / 2
    eri_explicit = eri_pieces.hessian(plan, basis, coords, terms).reshape(3 * natm, 3 * natm)
    g1 = eri_pieces.fock_tangents(plan, basis, coords, terms).reshape(3 * natm, basis.nao,
                                                                      basis.nao)
    dcs = np.eye(3 * natm).reshape(3 * natm, natm, 3)  # the displacements, atom by atom
    # dS/dy, and dF/dy at fixed density: h^y + J^y[D] - K^y[D] / 2
    mats = np.stack([prob.cut(one_electron_pieces.matrices_tangent(basis, coords, charges, dc))
                     for dc in dcs])
    s1, f1 = mats[:, 0], mats[:, 1] + mats[:, 2] + g1
    d1, w1 = _response(f1, s1, c_o, c_v, e_o, e_v, g_of, cphf_tol)  # every displacement at once
    explicit = []
    for a in range(natm):  # an atom's three displacements at a time
        # d/dy g_x at fixed densities: the one-electron integrals' second derivatives
        explicit.extend(one_electron_pieces.gradient_tangent(basis, coords, charges, dm, w,
                                                             dcs[3 * a: 3 * a + 3]))
        progress(a + 1, natm)
    explicit = np.asarray(explicit).reshape(3 * natm, 3 * natm) + eri_explicit
    # dg_x/dD [dD] + dg_x/dW [dW] = sum dD F^x - sum dW S^x: the gradient is linear in W, and
    # Gamma's derivative along dD contracts the integrals' derivative to G^x[D] (F^x's part)
    hess = explicit + np.einsum("xij,yij->yx", f1, d1) - np.einsum("xij,yij->yx", s1, w1)
    return hess.reshape(natm, 3, natm, 3) + nuclear_hessian(coords, charges), d1


@piece()
def _g_stack(tensors, dms, weights):
    """G[X] = J[X] - 1/2 K_tot[X] of each density of a stack (k, nao_b, nao_b): one pass over
    the ERI tensor for all of them (:func:`dftad.jk.get_jk_incore`)."""
    vj, vk = coulomb_exchange(IncoreJK, tensors, dms, dms, weights)
    return vj - 0.5 * vk


def _cg(apply, b, precond, tol: float, maxiter: int = 200):
    """(x, converged) for A x = b, columns of ``b`` (k, n) solved together by preconditioned
    conjugate gradients (A symmetric positive definite; ``apply``: the k products at once,
    ``precond``: M^-1 r), each column stopped where |r| <= ``tol`` |b| (SciPy's ``cg``
    criterion with ``rtol``)."""
    x = np.zeros_like(b)
    r = b.copy()
    bound = tol * np.linalg.norm(b, axis=1)
    active = np.linalg.norm(r, axis=1) > bound
    z = precond(r)
    p, rz = z.copy(), np.sum(r * z, axis=1)
    for _ in range(maxiter):
        if not active.any():
            break
        ap = apply(p)
        alpha = np.where(active, rz / np.where(active, np.sum(p * ap, axis=1), 1.0), 0.0)
        x += alpha[:, None] * p
        r -= alpha[:, None] * ap
        active &= np.linalg.norm(r, axis=1) > bound
        z = precond(r)
        rz_new = np.sum(r * z, axis=1)
        p = z + np.where(active, rz_new / np.where(active, rz, 1.0), 0.0)[:, None] * p
        rz = rz_new
    return x, not active.any()


def _response(f1, s1, c_o, c_v, e_o, e_v, g_of, tol):
    """(dD, dW) (AO, (k, nao, nao)) of a closed-shell SCF for the first-order Fock matrices
    ``f1`` (k, nao, nao) (at fixed density) and overlaps ``s1`` of k displacements: the CPHF
    equations

        (e_a - e_i) U_ai + [C^T G[dD] C]_ai = -F1_ai + e_i S1_ai,   U_ij = -S1_ij / 2,
        dD = 2 (C U_o C_o^T + C_o (C U_o)^T),   G[X] = J[X] - K[X] / 2,

    solved for U_ai by conjugate gradients (the orbital Hessian of a stable RHF is positive
    definite), all displacements together (``g_of``: G of a stack of densities, one pass over
    the ERIs for all), and dW = 2 (C U_o e C_o^T + C_o e (C U_o)^T + C_o de C_o^T) with
    de_ij = F1_ij + G[dD]_ij - S1_ij (e_i + e_j) / 2 (F1, S1 in the MO basis)."""
    k, nv, no = len(f1), len(e_v), len(e_o)

    def mo(a, x, b):  # a^T X b per displacement
        return np.einsum("mi,kmn,nj->kij", a, x, b, optimize=True)

    def ao(a, x, b):  # a X b^T per displacement
        return np.einsum("mi,kij,nj->kmn", a, x, b, optimize=True)

    fo, so = mo(c_o, f1, c_o), mo(c_o, s1, c_o)
    u_oo = -0.5 * so
    dd_oo = 2.0 * ao(c_o, u_oo + u_oo.transpose(0, 2, 1), c_o)
    rhs = -mo(c_v, f1, c_o) + mo(c_v, s1, c_o) * e_o - mo(c_v, g_of(dd_oo), c_o)
    denom = e_v[:, None] - e_o[None, :]

    def dd_vo(u):
        x = ao(c_v, u, c_o)
        return 2.0 * (x + x.transpose(0, 2, 1))

    def apply(v):
        u = v.reshape(k, nv, no)
        return (denom * u + mo(c_v, g_of(dd_vo(u)), c_o)).reshape(k, -1)

    u_vo, converged = _cg(apply, rhs.reshape(k, -1), lambda r: r / denom.ravel(), tol)
    if not converged:
        raise CPHFNotConverged(
            "the CPHF equations did not converge (conjugate gradients, 200 iterations): is "
            "the RHF solution stable? (dftad energy --stability)")
    u_vo = u_vo.reshape(k, nv, no)
    d1 = dd_oo + dd_vo(u_vo)
    cu = np.einsum("mi,kij->kmj", c_o, u_oo) + np.einsum("ma,kaj->kmj", c_v, u_vo)  # C U_o
    de = fo + mo(c_o, g_of(d1), c_o) - 0.5 * so * (e_o[:, None] + e_o[None, :])
    w1 = 2.0 * (np.einsum("kmi,ni->kmn", cu * e_o, c_o) + np.einsum("mi,kni->kmn", c_o * e_o, cu)
                + ao(c_o, de, c_o))
    return d1, w1
