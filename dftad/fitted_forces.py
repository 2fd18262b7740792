"""The density-fitted two-electron forces of a molecule whose (mn|P) fills the memory.

:func:`dftad.jk.fitted_energy` gives one operator's c_coul E_J + E_K from its 3-centre
integrals A^P_mn = (mn|P) and metric J = (P|Q), W the fitting factor (W^T W = J^-1):

    E = c_coul/2 |W a|^2 - c_exch sum_s |W M_s|^2,   a_P = sum_mn A^P_mn D_mn,
    M^P_s = X_s^T A^P X_s (nocc x nocc),  D = sum_s X_s X_s^T.

:func:`dftad.forces` differentiates it as one program, which holds A (nao, nao, naux) and its
cotangent: 45 GB each for a molecule of ~1000 AOs in def2-SVP. Here the same derivative in
stages, each a program over A packed over the AO pairs the 3-centre plan keeps
(:func:`~dftad.integrals.two_electron.int3c2e_packed`, about a quarter of the dense tensor),
the unpacked matrices A^P one block of P at a time:

1. A (naux, ncol) and J; a_P and M^P_s a block of P at a time (:func:`_fitted_columns`);
2. the fit's reverse pass over the small (naux, 1 + nset nocc^2) columns: abar, Mbar and Jbar
   (:func:`_column_cotangents`);
3. A's cotangent Abar^P = X_s (Mbar^P_s + abar_P 1) X_s^T a block of P at a time, packed
   like A over the same columns, written over A (:func:`_packed_cotangent`);
4. dE/dR = Abar . dA/dR + Jbar . dJ/dR, the reverse pass of the integrals alone
   (:func:`_integral_gradient`).

Peak memory: A once (or its cotangent) and one block. The same numbers as :mod:`dftad.forces`'s
one program (``tests/test_fitted_forces.py``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import jk as jk_module
from .integrals import two_electron
from .integrals.eri_kernel import as_omega
from .jk import fit
from .setup import Setup


def operator_gradient(setup: Setup, coords, dm_tot, orbs, omega, c_coul: float,
                      c_exch: float, exchange: bool) -> np.ndarray:
    """d/dR (natm, 3) of c_coul E_J + E_K of one two-electron operator (omega: None or inf
    for 1/r12) by density fitting, the occupied orbitals ``orbs`` (..., nao, nocc) the
    density's factor X (D = sum_s X_s X_s^T); ``exchange`` False: Coulomb only, of ``dm_tot``
    (``orbs`` not read), as :func:`dftad.jk.fitted_energy` (its arguments)."""
    jk, basis = setup.jk, setup.basis
    offsets, cols, ncol = two_electron.pair_columns(jk.plan3c, basis)
    offsets = tuple(jax.device_put(o) for o in offsets)
    cols = jax.device_put(cols)
    x = jnp.reshape(orbs, (-1,) + orbs.shape[-2:])
    dvec = _pair_sums(jnp.asarray(dm_tot), cols, ncol + 1)
    omega = as_omega(omega)
    a, int2c = _integrals(setup, coords, omega, offsets, ncol + 1)
    columns = _fitted_columns(a, cols, x, dvec, exchange)
    int2c_bar, columns_bar = _column_cotangents(int2c, columns, np.float64(c_coul),
                                                np.float64(c_exch), exchange)
    del columns
    abar = _packed_cotangent(a, cols, x, dvec, columns_bar, exchange)
    del a
    return np.asarray(_integral_gradient(setup, coords, omega, offsets, abar, int2c_bar))


@functools.partial(jax.jit, static_argnums=(4,))
def _integrals(setup: Setup, coords, omega, offsets, ncol_b: int):
    """(A packed (naux, ncol_b), J)."""
    jk = setup.jk
    return (two_electron.int3c2e_packed(jk.plan3c, setup.basis, jk.aux, coords, offsets,
                                        (jk.aux.nao, ncol_b), omega),
            two_electron.int2c2e(jk.plan2c, jk.aux, coords, omega))


def _block_size(naux: int, per_aux: int) -> int:
    """Auxiliary functions per block: :data:`dftad.jk.K_BLOCK_BYTES` of intermediates of
    ``per_aux`` doubles each, at most naux."""
    return int(min(naux, max(1, jk_module.K_BLOCK_BYTES // (8 * per_aux))))


def _by_blocks(out, block: int, rows_of):
    """``out`` with rows [s, s + block) set to ``rows_of(s)`` for blocks covering all its rows
    (``lax.fori_loop``; the last block ends at the last row and rewrites what its
    predecessor wrote there with the same values)."""
    n = out.shape[0]

    def step(i, out):
        start = jnp.minimum(i * block, n - block)
        return jax.lax.dynamic_update_slice_in_dim(out, rows_of(start), start, axis=0)

    return jax.lax.fori_loop(0, -(-n // block), step, out)


@functools.partial(jax.jit, static_argnums=(2,))
def _pair_sums(dm, cols, ncol_b: int):
    """sum of D_mn over the AO pairs of each packed column: a_P = A_packed . this."""
    return jnp.zeros(ncol_b, dm.dtype).at[cols].add(dm)


@functools.partial(jax.jit, static_argnums=(4,))
def _fitted_columns(a, cols, x, dvec, exchange: bool):
    """(naux, 1 + nset nocc^2): a_P = sum_s tr M^P_s and the M^P_s, a block of P at a time
    (A^P unpacked through ``cols``); without exchange (naux, 1), a_P = A . ``dvec``."""
    if not exchange:
        return (a @ dvec)[:, None]
    naux, nao = a.shape[0], cols.shape[0]
    nset, nocc = x.shape[0], x.shape[2]
    block = _block_size(naux, nao * nao + nset * nao * nocc)

    def rows_of(start):
        ap = jax.lax.dynamic_slice_in_dim(a, start, block)[:, cols]  # (block, nao, nao)
        y = jnp.einsum("pmn,snj->psmj", ap, x)
        m = jnp.einsum("smi,psmj->psij", x, y)
        tr = jnp.einsum("psii->p", m)
        return jnp.concatenate([tr[:, None], m.reshape(block, -1)], axis=1)

    return _by_blocks(jnp.zeros((naux, 1 + nset * nocc * nocc)), block, rows_of)


@functools.partial(jax.jit, static_argnums=(4,))
def _column_cotangents(int2c, columns, c_coul, c_exch, exchange: bool):
    """(dE/dJ, dE/d columns) of E = c_coul/2 |W a|^2 - c_exch |W M|^2 (:func:`dftad.jk.fit`'s
    reverse pass: no exchange, the M columns unused)."""

    def energy(int2c, columns):
        w = fit(int2c, columns)
        e = 0.5 * c_coul * jnp.sum(w[:, 0] ** 2)
        return e - c_exch * jnp.sum(w[:, 1:] ** 2) if exchange else e

    return jax.grad(energy, argnums=(0, 1))(int2c, columns)


@functools.partial(jax.jit, static_argnums=(5,), donate_argnums=(0,))
def _packed_cotangent(a, cols, x, dvec, columns_bar, exchange: bool):
    """dE/dA packed like A (its buffer reused): Abar^P_mn = sum_s (X_s (Mbar^P_s + abar_P 1)
    X_s^T)_mn, summed over the AO pairs of each column ((m, n) and (n, m) share one; the
    screened pairs land in the last column, which the integrals never read); without
    exchange abar_P D_mn, summed alike: abar_P ``dvec``."""
    naux, ncol = a.shape
    if not exchange:
        abar = columns_bar[:, 0]
        block = _block_size(naux, ncol)
        return _by_blocks(a, block, lambda start: jax.lax.dynamic_slice_in_dim(
            abar, start, block)[:, None] * dvec[None])
    nao = cols.shape[0]
    nset, nocc = x.shape[0], x.shape[2]
    block = _block_size(naux, 2 * nao * nao + nset * nao * nocc + ncol)
    mbar = columns_bar[:, 1:].reshape(naux, nset, nocc, nocc)
    mbar = mbar + columns_bar[:, 0, None, None, None] * jnp.eye(nocc)

    def rows_of(start):
        m = jax.lax.dynamic_slice_in_dim(mbar, start, block)
        y = jnp.einsum("smi,psij->psmj", x, m)
        dense = jnp.einsum("psmj,snj->pmn", y, x)
        return jnp.zeros((block, ncol), a.dtype).at[:, cols].add(dense)

    return _by_blocks(a, block, rows_of)


@jax.jit
def _integral_gradient(setup: Setup, coords, omega, offsets, abar, int2c_bar):
    """Abar . dA/dR + Jbar . dJ/dR: the reverse passes of the integrals alone."""
    jk = setup.jk

    def int3c(c):
        return two_electron.int3c2e_packed(jk.plan3c, setup.basis, jk.aux, c, offsets,
                                           abar.shape, omega)

    def int2c(c):
        return two_electron.int2c2e(jk.plan2c, jk.aux, c, omega)

    return jax.vjp(int3c, coords)[1](abar)[0] + jax.vjp(int2c, coords)[1](int2c_bar)[0]
