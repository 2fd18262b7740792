"""Coulomb and exchange matrices from a density matrix.

    J_mn = sum_ls (mn|ls) D_ls            K_mn = sum_ls (ml|ns) D_ls

``dm`` may carry leading axes (spin, or a batch); J and K keep them. Two back ends:

* incore: from the full ERI tensor (:func:`dftad.integrals.two_electron.eri`), while
  nao^4 doubles fit in memory;
* density fitting (RI-J/RI-K): (mn|ls) ~ sum_PQ (mn|P) [J^-1]_PQ (Q|ls) with the Coulomb metric
  J_PQ = (P|Q). With the Cholesky factor J = L L^T, B^P_mn = sum_Q [L^-1]_PQ (Q|mn) gives
  J_mn = sum_P B^P_mn (sum_ls B^P_ls D_ls) and K_mn = sum_P (B^P D B^P)_mn. Where the metric
  is numerically singular (the erf-attenuated one), B = J_+^-1/2 (Q|mn) over its eigenvalues
  above 1e-7, as in PySCF (:func:`cderi`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def get_jk_incore(eri, dm, with_j: bool = True, with_k: bool = True):
    """(J, K) from the full (nao,)*4 ERI tensor; ``None`` for a term not asked for.

    Both are products that read the tensor once in its stored (i, j, k, l) order: J is one
    matrix-vector product over (kl), K a batch over i of vector-matrix products over the
    contiguous (jk) block. (Written as ``einsum("ijkl,jk->il")``, XLA transposes the whole tensor
    on every call: 15x slower at nao = 114.)"""
    n = eri.shape[0]
    lead = dm.shape[:-2]
    d = dm.reshape(-1, n * n)  # (nset, n^2)
    vj = vk = None
    if with_j:
        dt = jnp.swapaxes(dm, -1, -2).reshape(-1, n * n)  # D_lk, as in the formula
        vj = (eri.reshape(n * n, n * n) @ dt.T).T.reshape(lead + (n, n))
    if with_k:
        db = jnp.broadcast_to(d[None], (n,) + d.shape)  # (i, nset, jk): i is a batch dimension
        vk = jax.lax.dot_general(eri.reshape(n, n * n, n), db, (((1,), (2,)), ((0,), (0,))))
        vk = jnp.moveaxis(vk, 2, 0).reshape(lead + (n, n))  # (i, l, nset) -> (..., i, l)
    return vj, vk


LINEAR_DEP_THR = 1e-7
"""Eigenvalues of the fitting metric at or below this are dropped where its Cholesky
factorisation fails (PySCF's ``df.incore.LINEAR_DEP_THR``)."""


def cderi(int3c, int2c, lindep: float = LINEAR_DEP_THR) -> jax.Array:
    """Factorised 3-centre integrals B (naux, nao, nao) from (mn|P) and the metric J_PQ = (P|Q),
    with (mn|ls) ~ sum_P B^P_mn B^P_ls.

    B = L^-1 (P|mn) with the Cholesky factor J = L L^T. Where J is numerically singular the
    factorisation fails: the metric of the erf-attenuated operator (range-separated hybrids) has
    a smooth kernel and eigenvalues down to 1e-14 for any JK-fitting set. Then, as PySCF does,
    B = J_+^-1/2 (P|mn) with the inverse square root over the eigenvalues above ``lindep``
    (:func:`inv_sqrt_psd`; the dropped directions give zero rows)."""
    naux = int2c.shape[0]
    rhs = jnp.moveaxis(int3c, -1, 0).reshape(naux, -1)
    factorises = jnp.all(jnp.isfinite(jnp.linalg.cholesky(jax.lax.stop_gradient(int2c))))

    def by_cholesky(metric, rhs):
        return jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(metric), rhs, lower=True)

    def by_eigh(metric, rhs):
        return inv_sqrt_psd(metric, lindep) @ rhs

    b = jax.lax.cond(factorises, by_cholesky, by_eigh, int2c, rhs)
    return b.reshape(naux, *int3c.shape[:2])


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def inv_sqrt_psd(a, lindep):
    """A_+^-1/2 = V f(w) V^T for symmetric A = V diag(w) V^T, f(w) = w^-1/2 for w > ``lindep``
    and 0 otherwise (the symmetric inverse square root on the well-conditioned subspace).

    Its derivative is the Daleckii-Krein formula, dF = V (G o (V^T dA V)) V^T with
    G_ij = (f(w_i) - f(w_j)) / (w_i - w_j) (f'(w_i) where w_i = w_j): finite also where A has
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


K_BLOCK_BYTES = 2**28
"""Size of the (block, nao, nao) intermediates of the density-fitted exchange (256 MiB)."""


def get_jk_df(cderi_b, dm, with_j: bool = True, with_k: bool = True):
    """(J, K) by density fitting from B = L^-1 (P|mn) (:func:`cderi`).

    K = sum_P B^P D B^P runs over blocks of auxiliary functions (``lax.fori_loop``) of at most
    :data:`K_BLOCK_BYTES` each: formed at once, B D and its transpose are two more arrays the
    size of B (caffeine/def2-TZVP: 2.4 GB each, per exchange term in the SCF)."""
    vj = vk = None
    if with_j:
        rho_p = jnp.einsum("pls,...ls->...p", cderi_b, dm)
        vj = jnp.einsum("pmn,...p->...mn", cderi_b, rho_p)
    if with_k:
        naux, nao = cderi_b.shape[:2]
        nset = dm.size // (nao * nao)  # spin / batch density matrices
        block = max(1, min(naux, K_BLOCK_BYTES // (8 * nset * nao * nao)))
        nblock, rest = divmod(naux, block)

        def k_block(b):
            return jnp.einsum("...pms,psn->...mn", jnp.einsum("pml,...ls->...pms", b, dm), b)

        def step(i, vk):
            return vk + k_block(jax.lax.dynamic_slice_in_dim(cderi_b, i * block, block))

        if block == naux:
            vk = k_block(cderi_b)
        else:
            vk = jax.lax.fori_loop(0, nblock, step, jnp.zeros(dm.shape, cderi_b.dtype))
            if rest:
                vk = vk + k_block(cderi_b[nblock * block:])
    return vj, vk
