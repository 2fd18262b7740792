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
    """(J, K) from the full (nao,)*4 ERI tensor; ``None`` for a term not asked for."""
    vj = jnp.einsum("ijkl,...lk->...ij", eri, dm) if with_j else None
    vk = jnp.einsum("ijkl,...jk->...il", eri, dm) if with_k else None
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
