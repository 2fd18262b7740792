"""Density fitting for a molecule whose dense tensors fill the memory (~1000 AOs in def2-SVP:
(mn|P) 45 GB): the 3-centre integrals packed over the AO pairs the plan keeps, built a group of
quartets at a time, B from them for the SCF, and the two-electron forces in stages.

* :func:`packed_integrals`: A = (mn|P) as (naux, ncol), about a quarter of the dense tensor
  (:func:`~dftad.integrals.two_electron.int3c2e_packed`'s layout), summed group by group
  (:func:`~dftad.integrals.two_electron.class_groups`: a program per quartet class, the array
  donated to each call), so that beside it only one group's values are alive;
* :func:`cderi`: B = W A (:func:`dftad.jk.packed_cderi`, fitted over A in place), what
  :mod:`dftad.scf_pieces` contracts;
* :func:`operator_gradient`: one operator's c_coul E_J + E_K (:func:`dftad.jk.fitted_energy`,
  W the fitting factor, W^T W = J^-1)

      E = c_coul/2 |W a|^2 - c_exch sum_s |W M_s|^2,   a_P = sum_mn A^P_mn D_mn,
      M^P_s = X_s^T A^P X_s (nocc x nocc),  D = sum_s X_s X_s^T,

  differentiated in stages instead of as one program (:mod:`dftad.forces`, which holds A
  dense and its cotangent):

  1. A and J; a_P and M^P_s a block of P at a time (:func:`_fitted_columns`);
  2. the fit's reverse pass over the small (naux, 1 + nset nocc^2) columns: abar, Mbar and
     Jbar (:func:`_column_cotangents`);
  3. A's cotangent Abar^P = X_s (Mbar^P_s + abar_P 1) X_s^T a block of P at a time, packed
     like A over the same columns, written over A (:func:`_packed_cotangent`);
  4. dE/dR = Abar . dA/dR + Jbar . dJ/dR, the integrals' reverse pass group by group
     (:func:`~dftad.integrals.two_electron.packed_group_gradient`).

Peak memory: A once (or B, or Abar), the plan, and one group or block. The same numbers as the
dense paths (``tests/test_packed_df.py``).
"""

from __future__ import annotations

import functools
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from . import jk as jk_module
from .integrals import two_electron
from .integrals.eri_kernel import as_omega
from .jk import PackedCderi, apply_fit, fitting_factor, packed_cderi
from .setup import Setup


def operator_gradient(setup: Setup, coords, dm_tot, orbs, omega, c_coul: float,
                      c_exch: float, exchange: bool) -> np.ndarray:
    """d/dR (natm, 3) of c_coul E_J + E_K of one two-electron operator (omega: None or inf
    for 1/r12) by density fitting, the occupied orbitals ``orbs`` (..., nao, nocc) the
    density's factor X (D = sum_s X_s X_s^T); ``exchange`` False: Coulomb only, of ``dm_tot``
    (``orbs`` not read), as :func:`dftad.jk.fitted_energy` (its arguments)."""
    offsets, cols, ncol = columns(setup)
    x = jnp.reshape(orbs, (-1,) + orbs.shape[-2:])
    dvec = _pair_sums(jnp.asarray(dm_tot), cols, ncol + 1)
    omega = as_omega(omega)
    a = packed_integrals(setup, coords, omega, offsets, (setup.jk.aux.nao, ncol + 1))
    int2c = _metric(setup, coords, omega)
    fitted = _fitted_columns(a, cols, x, dvec, exchange)
    int2c_bar, fitted_bar = _column_cotangents(int2c, fitted, np.float64(c_coul),
                                               np.float64(c_exch), exchange)
    del fitted
    abar = _packed_cotangent(a, cols, x, dvec, fitted_bar, exchange)
    del a
    grad = np.asarray(_metric_gradient(setup, coords, omega, int2c_bar))
    for k, group in _each_group(setup, GRADIENT_GROUP_BYTES):
        grad = grad + np.asarray(_group_gradient(setup, coords, omega, offsets, k, group, abar))
    return grad


def columns(setup: Setup):
    """(offsets per bra pair set (device arrays), cols (nao, nao) (device), ncol) of the
    packed AO-pair columns (:func:`~dftad.integrals.two_electron.pair_columns`; the zero
    column ncol)."""
    offsets, cols, ncol = two_electron.pair_columns(setup.jk.plan3c, setup.basis)
    return tuple(jax.device_put(o) for o in offsets), jax.device_put(cols), ncol


GRADIENT_GROUP_BYTES = 64 * 2**20
"""AO values per group of the integrals' reverse pass (:func:`operator_gradient`): a quarter
of the build's groups (:data:`~dftad.integrals.two_electron.GROUP_BYTES`), which run beside
A's packed cotangent (erythromycin: 12.7 GB)."""

_GROUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _groups(setup: Setup, max_bytes: int | None = None):
    """:func:`~dftad.integrals.two_electron.class_groups` of the setup's 3-centre plan
    (``max_bytes`` as there), kept while the plan lives (the SCF's B and the forces use them
    alike; a cache holding the plan would keep its index arrays, GBs at ~1000 AOs, after the
    setup is gone)."""
    plan = setup.jk.plan3c
    cache = _GROUPS.setdefault(plan, {})
    if max_bytes not in cache:
        cache[max_bytes] = two_electron.class_groups(plan, max_bytes)
    return cache[max_bytes]


def _each_group(setup: Setup, max_bytes: int | None = None):
    """(class index, group arrays) of every group, each made as it is reached."""
    plan = setup.jk.plan3c
    for k, spans, g, nq_g in _groups(setup, max_bytes):
        for span in spans:
            yield k, two_electron.group_arrays(plan, k, span, g, nq_g)


def packed_integrals(setup: Setup, coords, omega, offsets, shape) -> jax.Array:
    """(mn|P) packed (naux_b, ncol_b) = ``shape`` (zero past the real ones): the groups of
    every class added one program call at a time into one donated array."""
    out = _zeros(shape)
    for k, group in _each_group(setup):
        out = _add_group(setup, coords, omega, offsets, k, group, out)
    return out


def cderi(setup: Setup, coords, omega, offsets, cols, shape) -> PackedCderi:
    """B = W (mn|P) packed (``shape``: (naux_b, ncol_b), ncol_b a multiple of
    :data:`dftad.jk.FIT_COLUMNS`), the metric padded with the identity past naux."""
    a = packed_integrals(setup, coords, omega, offsets, shape)
    return _fit(a, _metric(setup, coords, omega), cols)


@functools.partial(jax.jit, static_argnums=(0,))
def _zeros(shape):
    return jnp.zeros(shape)


@functools.partial(jax.jit, static_argnums=(4,), donate_argnums=(6,))
def _add_group(setup: Setup, coords, omega, offsets, k: int, group, out):
    jk = setup.jk
    return two_electron.add_packed_group(jk.plan3c, setup.basis, jk.aux, coords, offsets, k,
                                         group, out, omega)


@jax.jit
def _metric(setup: Setup, coords, omega):
    return two_electron.int2c2e(setup.jk.plan2c, setup.jk.aux, coords, omega)


@functools.partial(jax.jit, donate_argnums=(0,))
def _fit(a, int2c, cols):
    naux = int2c.shape[0]
    metric = jnp.eye(a.shape[0], dtype=int2c.dtype).at[:naux, :naux].set(int2c)
    return packed_cderi(a, metric, cols)


@jax.jit
def _metric_gradient(setup: Setup, coords, omega, int2c_bar):
    def int2c(c):
        return two_electron.int2c2e(setup.jk.plan2c, setup.jk.aux, c, omega)

    return jax.vjp(int2c, coords)[1](int2c_bar)[0]


@functools.partial(jax.jit, static_argnums=(4,))
def _group_gradient(setup: Setup, coords, omega, offsets, k: int, group, abar):
    jk = setup.jk
    return two_electron.packed_group_gradient(jk.plan3c, setup.basis, jk.aux, coords, offsets,
                                              k, group, abar, omega)


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
    """(naux, 1 + nset nocc^2 padded with zero columns to a multiple of
    :data:`COTANGENT_COLUMNS`): a_P = sum_s tr M^P_s and the M^P_s, a block of P at a time
    (A^P unpacked through ``cols``); without exchange (naux, 1), a_P = A . ``dvec``."""
    if not exchange:
        return (a @ dvec)[:, None]
    naux, nao = a.shape[0], cols.shape[0]
    nset, nocc = x.shape[0], x.shape[2]
    block = _block_size(naux, nao * nao + nset * nao * nocc)

    def rows_of(start):
        ap = PackedCderi(a, cols).rows(start, block)  # (block, nao, nao)
        y = jnp.einsum("pmn,snj->psmj", ap, x)
        m = jnp.einsum("smi,psmj->psij", x, y)
        tr = jnp.einsum("psii->p", m)
        return jnp.concatenate([tr[:, None], m.reshape(block, -1)], axis=1)

    ncols = -(-(1 + nset * nocc * nocc) // COTANGENT_COLUMNS) * COTANGENT_COLUMNS
    return _by_blocks(jnp.zeros((naux, ncols)), block, lambda start: jnp.pad(
        rows_of(start), ((0, 0), (0, ncols - 1 - nset * nocc * nocc))))


COTANGENT_COLUMNS = 512
"""Columns of the fitted quantities per step of :func:`_column_cotangents`."""


@functools.partial(jax.jit, static_argnums=(4,), donate_argnums=(1,))
def _column_cotangents(int2c, fitted, c_coul, c_exch, exchange: bool):
    """(dE/dJ, dE/d columns) of E = c_coul/2 |W a|^2 - c_exch |W M|^2 (no exchange: the M
    columns unused), the reverse pass of :func:`dftad.jk.fit` a block of columns at a time
    (E is a sum over columns) written over the columns: the fitting factor's cotangent summed
    over the blocks, then taken back to J once."""
    ncols = fitted.shape[1]

    def factor_of(j):  # the factor, and whether it is L (aux: one factorisation for both)
        by_cholesky, m = fitting_factor(j)
        return m, by_cholesky

    factor, factor_vjp, by_cholesky = jax.vjp(factor_of, int2c, has_aux=True)
    step = min(COTANGENT_COLUMNS, ncols)
    if ncols % step:
        raise ValueError(f"{ncols} columns are not a multiple of {step}")
    nblock = ncols // step
    weight = jnp.where(jnp.arange(ncols) == 0, 0.5 * c_coul, -c_exch if exchange else 0.0)

    def body(i, carry):
        m_bar, cols = carry
        y = jax.lax.dynamic_slice_in_dim(cols, i * step, step, axis=1)
        c = jax.lax.dynamic_slice_in_dim(weight, i * step, step)

        def energy(m, y):
            return jnp.sum(c * jnp.sum(apply_fit((by_cholesky, m), y) ** 2, axis=0))

        dm, dy = jax.grad(energy, argnums=(0, 1))(factor, y)
        return m_bar + dm, jax.lax.dynamic_update_slice_in_dim(cols, dy, i * step, axis=1)

    m_bar, cols = jax.lax.fori_loop(0, nblock, body, (jnp.zeros_like(factor), fitted))
    return factor_vjp(m_bar)[0], cols


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

    def rows_of(start):  # Mbar + abar 1 a block at a time (whole: 1.6 GB at erythromycin)
        c = jax.lax.dynamic_slice_in_dim(columns_bar, start, block)
        m = c[:, 1:1 + nset * nocc * nocc].reshape(block, nset, nocc, nocc)
        m = m + c[:, 0, None, None, None] * jnp.eye(nocc)
        y = jnp.einsum("smi,psij->psmj", x, m)
        dense = jnp.einsum("psmj,snj->pmn", y, x)
        return jnp.zeros((block, ncol), a.dtype).at[:, cols].add(dense)

    return _by_blocks(a, block, rows_of)
