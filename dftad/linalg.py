"""Linear algebra with the derivatives dftad needs: eigensolvers, projectors, orthogonalisers.

    eigh(A)                 (w, v) whose JVP skips degenerate pairs (gauge rotations)
    projector(F', n)        P = sum_k n_k v_k v_k^T of an orthonormal-basis Fock matrix, with a
                            closed-form JVP finite at degenerate levels of equal occupation
    inv_sqrt_psd(A, thr)    A_+^-1/2 over eigenvalues above thr (Daleckii-Krein JVP)
    orthogonalizer(S)       X = S^-1/2 (symmetric)          X^T S X = 1
    orthonormal_basis(S)    X = L^-T, S = L L^T (Cholesky)   X^T S X = 1, smooth to any order
    eig(F, X)               F C = S C e through X (leading spin axis allowed)
    make_rdm1(C, n)         D = sum_i n_i C_i C_i^T
    gmres(A, b, ...)        restarted GMRES whose small least-squares problem is solved by SVD,
                            so a nearly singular A (a flat SCF direction) gives no NaN

The spectral derivatives are the Daleckii-Krein formula: for f applied to the eigenvalues of a
symmetric A = V diag(w) V^T, d f(A) = V [G o (V^T dA V)] V^T with G_ij = (f(w_i) - f(w_j)) /
(w_i - w_j), G_ii = f'(w_i).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

DEGENERATE = 1e-10
"""Eigenvalue differences below this (Hartree) count as degenerate in :func:`eigh`."""


@jax.custom_jvp
def eigh(a):
    """Symmetric eigendecomposition ``(w, v)`` whose derivative ignores degenerate pairs.

    dw_i = v_i^T da v_i,  dv = v [F o (v^T da v)],  F_ij = 1/(w_j - w_i) for |w_j - w_i| >
    :data:`DEGENERATE`, else 0 (rotations inside a degenerate subspace are a gauge freedom; the
    quantities dftad differentiates, projectors and orbital energies, do not depend on them)."""
    w, v = jnp.linalg.eigh(a)
    return w, v


@eigh.defjvp
def _eigh_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    w, v = eigh(a)
    da = 0.5 * (da + jnp.swapaxes(da, -1, -2))
    m = jnp.swapaxes(v, -1, -2) @ da @ v
    gap = w[..., None, :] - w[..., :, None]
    big = jnp.abs(gap) > DEGENERATE
    f = jnp.where(big, 1.0 / jnp.where(big, gap, 1.0), 0.0)
    return (w, v), (jnp.diagonal(m, axis1=-2, axis2=-1), v @ (f * m))


@jax.custom_jvp
def projector(fo, occ):
    """Density P = sum_k n_k v_k v_k^T of an orthonormal-basis Fock matrix ``fo`` whose
    eigenvectors v_k (ascending energy) have occupations ``occ`` (leading spin axis when
    unrestricted). ``occ`` is piecewise constant and gets no derivative; for integer
    occupations

        dP = V [G o (V^T dF' V)] V^T,   G_ab = (n_a - n_b) / (e_a - e_b)  (0 where n_a = n_b),

    finite for degenerate orbitals of equal occupation, and differentiable again (Hessians)."""
    _, v = eigh(fo)
    return (v * occ[..., None, :]) @ jnp.swapaxes(v, -1, -2)


@projector.defjvp
def _projector_jvp(primals, tangents):
    (fo, n), (dfo, _) = primals, tangents
    p, derivative = _projector_and_derivative(fo, n)
    return p, derivative(dfo)


def projector_derivative(fo, occ):
    """The linear map dF' -> dP of :func:`projector` at ``fo``,

        dP = V [G o (V^T sym(dF') V)] V^T,   G_ab = (n_a - n_b) / (e_a - e_b),

    self-adjoint in the Frobenius inner product (G is symmetric), which the reverse mode of
    :mod:`dftad.implicit` uses."""
    return _projector_and_derivative(fo, occ)[1]


def _projector_and_derivative(fo, n):
    w, v = eigh(fo)
    vt = jnp.swapaxes(v, -1, -2)
    dn = n[..., :, None] - n[..., None, :]
    gap = w[..., :, None] - w[..., None, :]
    g = jnp.where(dn != 0, dn / jnp.where(dn != 0, gap, 1.0), 0.0)

    def derivative(dfo):
        dfo = 0.5 * (dfo + jnp.swapaxes(dfo, -1, -2))
        return v @ (g * (vt @ dfo @ v)) @ vt

    return (v * n[..., None, :]) @ vt, derivative


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def inv_sqrt_psd(a, lindep):
    """A_+^-1/2 = V f(w) V^T for symmetric A = V diag(w) V^T, f(w) = w^-1/2 for w > ``lindep``
    and 0 otherwise (the symmetric inverse square root on the well-conditioned subspace).

    Its derivative is the Daleckii-Krein formula (module docstring): finite also where A has
    degenerate eigenvalues (symmetric molecules), where differentiating ``eigh`` is not."""
    w, v = jnp.linalg.eigh(a)
    return (v * _f_inv_sqrt(w, lindep)) @ v.T


def _f_inv_sqrt(w, lindep):
    return jnp.where(w > lindep, 1.0 / jnp.sqrt(jnp.where(w > lindep, w, 1.0)), 0.0)


@inv_sqrt_psd.defjvp
def _inv_sqrt_psd_jvp(lindep, primals, tangents):
    (a,), (da,) = primals, tangents
    w, v = jnp.linalg.eigh(a)
    keep = w > lindep
    f = _f_inv_sqrt(w, lindep)
    s = jnp.sqrt(jnp.where(keep, w, 1.0))
    wi, wj = w[:, None], w[None, :]
    both = keep[:, None] & keep[None, :]
    one = keep[:, None] != keep[None, :]
    # kept pair: (wi^-1/2 - wj^-1/2) / (wi - wj) = -1 / (si sj (si + sj)), exact also at wi = wj
    g_kept = -1.0 / (s[:, None] * s[None, :] * (s[:, None] + s[None, :]))
    dw = jnp.where(one, wi - wj, 1.0)  # a kept and a dropped eigenvalue differ by > 0
    g = jnp.where(both, g_kept, jnp.where(one, (f[:, None] - f[None, :]) / dw, 0.0))
    out = (v * f) @ v.T
    return out, v @ (g * (v.T @ da @ v)) @ v.T


def orthogonalizer(s1e, xp=jnp) -> jax.Array:
    """Symmetric orthogonalisation X = S^-1/2, so that X^T S X = 1 (``xp=numpy``: on the
    host)."""
    w, u = xp.linalg.eigh(s1e)
    return (u / xp.sqrt(w)) @ u.T


def orthonormal_basis(s1e) -> jax.Array:
    """X = L^-T from the Cholesky factor S = L L^T, so that X^T S X = 1 (smooth to any order,
    also where S has degenerate eigenvalues)."""
    lower = jnp.linalg.cholesky(s1e)
    eye = jnp.eye(s1e.shape[-1], dtype=s1e.dtype)
    return jax.scipy.linalg.solve_triangular(lower, eye, lower=True).T


def eig(fock, x):
    """Generalised eigenproblem F C = S C e through X (X^T S X = 1): ``(e, C)`` ascending;
    works on a leading spin axis."""
    e, c = jnp.linalg.eigh(jnp.swapaxes(x, -1, -2) @ fock @ x)
    return e, x @ c


def make_rdm1(mo_coeff, mo_occ):
    """D_mn = sum_i n_i C_mi C_ni (leading spin axis allowed)."""
    return jnp.einsum("...mi,...i,...ni->...mn", mo_coeff, mo_occ, mo_coeff)


INNER_MARGIN = 1e-2
"""A :func:`gmres` cycle stops adding Krylov vectors once its least-squares residual is this
fraction of the tolerance."""


def gmres(matvec, b, tol, restart, maxiter):
    """Solve A x = b (``matvec(x) = A x``, ``b`` any array shape) by GMRES restarted every
    ``restart`` Krylov vectors, at most ``maxiter`` cycles, stopping when
    |b - A x| <= tol |b|.

    Each cycle builds the Arnoldi basis V (classical Gram-Schmidt, twice) and the Hessenberg
    matrix H of A V_k = V_k+1 H until the least-squares residual min_y |beta e_1 - H y| is
    below ``INNER_MARGIN`` tol |b| (tracked by Givens rotations of H's columns, as they come,
    so the cycle stops after the Krylov vectors it needs rather than after ``restart``; the
    margin keeps the answers those of a full cycle, which went well past tol, and a system
    that cannot get there costs no more than before), then minimises it by SVD (``lstsq``)
    and updates x += V_k y. jax.scipy's ``gmres(solve_method="batched")`` forms the normal
    equations H^T H y = H^T beta e_1 instead, which squares cond(H): at a nearly flat SCF
    direction (smallest singular value of H ~1e-6, cond(H^T H) ~1e14, e.g. the pi-hole
    rotation of NO) its Cholesky factorisation breaks down to NaN on some machines' rounding.
    The matrix-vector products are the same as its, one per Krylov vector; a breakdown (an
    invariant subspace found) leaves zero columns, which the SVD ignores, and a zero residual
    estimate, which ends the cycle."""
    shape, n = b.shape, b.size
    dtype = b.dtype
    eps = jnp.finfo(dtype).eps

    def av(v):
        return matvec(v.reshape(shape)).reshape(n)

    b = b.reshape(n)
    b_norm = jnp.linalg.norm(b)
    goal = tol * b_norm

    def cycle(carry):
        x, r, k = carry
        beta = jnp.linalg.norm(r)
        v = jnp.zeros((restart + 1, n), dtype).at[0].set(_unit(r, beta, beta > 0))

        def arnoldi(state):
            j, v, h, rot, g = state
            w = av(v[j])
            w_norm0 = jnp.linalg.norm(w)
            hj = v @ w  # rows beyond j are zero, so projecting on all of V is projecting on V_j
            w = w - hj @ v
            dh = v @ w
            w = w - dh @ v
            hj = hj + dh
            w_norm = jnp.linalg.norm(w)
            keep = w_norm > eps * w_norm0
            hj = hj.at[j + 1].set(jnp.where(keep, w_norm, 0.0))
            g, rot = _givens_step(j, hj, rot, g)
            return j + 1, v.at[j + 1].set(_unit(w, w_norm, keep)), h.at[:, j].set(hj), rot, g

        def more(state):
            j, _, _, _, g = state
            return (j < restart) & (jnp.abs(g[j]) > INNER_MARGIN * goal)

        start = (0, v, jnp.zeros((restart + 1, restart), dtype), jnp.zeros((2, restart), dtype),
                 jnp.zeros(restart + 1, dtype).at[0].set(beta))
        _, v, h, _, _ = jax.lax.while_loop(more, arnoldi, start)
        y = jnp.linalg.lstsq(h, jnp.zeros(restart + 1, dtype).at[0].set(beta))[0]
        x = x + y @ v[:-1]
        return x, b - av(x), k + 1

    def not_done(carry):
        _, r, k = carry
        return (k < maxiter) & (jnp.linalg.norm(r) > goal)

    x, _, _ = jax.lax.while_loop(not_done, cycle, (jnp.zeros_like(b), b, 0))
    return x.reshape(shape)


def _givens_step(j, hj, rot, g):
    """Column ``j`` of the Hessenberg matrix, ``hj``, turned by the ``j`` earlier Givens
    rotations ``rot`` (cosines, sines) and a new one that zeroes its subdiagonal entry, applied
    to the rotated right-hand side ``g``: afterwards |g[j + 1]| is the least-squares residual
    of the first j + 1 columns."""

    def turn(i, col):
        c, s = rot[0, i], rot[1, i]
        a, e = col[i], col[i + 1]
        return col.at[i].set(c * a + s * e).at[i + 1].set(c * e - s * a)

    col = jax.lax.fori_loop(0, j, turn, hj)
    a, e = col[j], col[j + 1]
    d = jnp.hypot(a, e)
    ok = d > 0
    c = jnp.where(ok, a / jnp.where(ok, d, 1.0), 1.0)
    s = jnp.where(ok, e / jnp.where(ok, d, 1.0), 0.0)
    g = g.at[j + 1].set(-s * g[j]).at[j].set(c * g[j])
    return g, rot.at[:, j].set(jnp.stack([c, s]))


def _unit(w, norm, keep):
    """w / norm where ``keep``, else zeros (no division by a vanishing norm)."""
    return jnp.where(keep, w / jnp.where(keep, norm, 1.0), 0.0)
