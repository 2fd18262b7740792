"""Coulomb and exchange matrices from a density matrix.

    J_mn = sum_ls (mn|ls) D_ls            K_mn = sum_ls (ml|ns) D_ls

``dm`` may carry leading axes (spin, or a batch); J and K keep them. Two back ends:

* incore: from the full ERI tensor (:func:`dftad.integrals.two_electron.eri`), while
  nao^4 doubles fit in memory;
* density fitting (RI-J/RI-K): (mn|ls) ~ sum_PQ (mn|P) [J^-1]_PQ (Q|ls) with the Coulomb metric
  J_PQ = (P|Q). With the Cholesky factor J = L L^T, B^P_mn = sum_Q [L^-1]_PQ (Q|mn) gives
  J_mn = sum_P B^P_mn (sum_ls B^P_ls D_ls) and K_mn = sum_P (B^P D B^P)_mn.
"""

from __future__ import annotations

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


def cderi(int3c, int2c) -> jax.Array:
    """Cholesky-decomposed 3-centre integrals B (naux, nao, nao) from (mn|P) and (P|Q)."""
    low = jnp.linalg.cholesky(int2c)
    naux = int2c.shape[0]
    b = jax.scipy.linalg.solve_triangular(low, jnp.moveaxis(int3c, -1, 0).reshape(naux, -1), lower=True)
    return b.reshape(naux, *int3c.shape[:2])


def get_jk_df(cderi_b, dm, with_j: bool = True, with_k: bool = True):
    """(J, K) by density fitting from B = L^-1 (P|mn) (:func:`cderi`)."""
    vj = vk = None
    if with_j:
        rho_p = jnp.einsum("pls,...ls->...p", cderi_b, dm)
        vj = jnp.einsum("pmn,...p->...mn", cderi_b, rho_p)
    if with_k:
        tmp = jnp.einsum("pml,...ls->...pms", cderi_b, dm)
        vk = jnp.einsum("...pms,psn->...mn", tmp, cderi_b)
    return vj, vk
