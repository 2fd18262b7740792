"""One-electron integrals and their nuclear gradient from compiled pieces every molecule shares.

The counterpart of :mod:`.eri_pieces` for :mod:`.one_electron`: the overlap, kinetic and
nuclear-attraction integrals of one chunk of primitive pairs of a class (la, lb), contracted
into the chunk's shell pairs, are one piece (:func:`_chunk`), keyed by the class's group
(:func:`group`: the s, p and d classes share one piece, their cartesian components padded to
d's), the chunk size :data:`CHUNK` and the bucketed number of nuclei, so a new molecule with up
to as many atoms compiles nothing new; the reverse pass of sum D (T + V) - sum W S is another
(:func:`_chunk_grad`). For the Hessian, their directional derivatives along a displacement of
all nuclei are two more (:func:`_chunk_tangent`, forward mode, and :func:`_chunk_hvp`, forward
over reverse, exact to second order). Cheap pieces place a chunk's blocks in (nao, nao)
matrices and cut its cotangent from D and W (keyed by the bucketed nao). Same formulas and
numbers as :mod:`.one_electron` (``tests/test_pieces.py``, ``tests/test_one_electron_tangent.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis
from ..pieces import piece, zeros
from . import hermite
from .eri_pieces import (
    PairSet,
    _r_columns,
    _rows,
    bucket,
    group,
    nao_bucket,
    pad_ao,
    padded_shell,
    prim_pairs_of,
    raw_pairs,
    split,
)

CHUNK = 256
"""Primitive pairs per chunk."""


def _overlap_kinetic_hermite(L, pp, pows):
    """S and T (B, ncart(L), ncart(L)) of primitive pairs whose cartesian components are given
    as ``pows`` (2, ncart(L), 3) (:func:`.eri_pieces.padded_shell`), and their Hermite
    expansion E^{ab}_{tuv} (B, ncart(L), ncart(L), nherm(2L)), without the contraction
    coefficients (formulas of :mod:`.one_electron`)."""
    e = hermite.cartesian_e(pp, L, L, extra_b=2)  # (B, 3, L+1, L+3, 2L+3)
    s = e[..., 0] * jnp.sqrt(jnp.pi / pp.p)[:, None, None, None]  # 1D overlaps, j <= L + 2
    b = pp.b[:, None, None, None]
    j = np.arange(L + 1)
    t = -2.0 * b * b * s[..., 2: L + 3] + b * (2 * j + 1) * s[..., : L + 1]
    t = t - (j * (j - 1) / 2) * s[..., np.maximum(j - 2, 0)]  # zero weight for j < 2
    s = s[..., : L + 1]
    pa, pb = pows[0], pows[1]

    def pick(tab, ax):  # (B, ncart, ncart) entries (a_ax, b_ax) of axis ax
        return tab[:, ax][:, pa[:, ax][:, None], pb[:, ax][None, :]]

    sx, sy, sz = (pick(s, ax) for ax in range(3))
    tx, ty, tz = (pick(t, ax) for ax in range(3))
    e3 = hermite.hermite_3d_of(e, pows[0], pows[1], 2 * L)
    return sx * sy * sz, tx * sy * sz + sx * ty * sz + sx * sy * tz, e3


def _nuclear_r(order, pp, nuclei):
    """-2 pi / p R_{tuv}(p, P - C) (B, natm, nherm(order)) of primitive pairs and nuclei C."""
    n, natm = pp.p.shape[0], nuclei.shape[0]
    alpha = jnp.broadcast_to(pp.p[:, None], (n, natm)).reshape(-1)
    r = hermite.hermite_r(order, alpha, (pp.P[:, None, :] - nuclei[None]).reshape(-1, 3))
    return r.reshape(n, natm, -1) * (-2.0 * jnp.pi / pp.p)[:, None, None]


def _with_coef(pp, s, t, v):
    """(B, 2 + ncomp_v, ncart(L)^2): S, T and V stacked, times the contraction coefficients."""
    out = jnp.concatenate([s[:, None], t[:, None], v], axis=1) * pp.coef[:, None, None, None]
    return out.reshape(out.shape[:2] + (-1,))


@piece((0,))
def _chunk(L, rows, local, nuclei, charges, pows):
    """S, T and V of a chunk of primitive pairs, summed into the chunk's shell pairs ``local``
    (B,): (B, 3, ncart(L)^2)."""
    pp = prim_pairs_of(rows)
    s, t, e3 = _overlap_kinetic_hermite(L, pp, pows)
    rz = jnp.einsum("pch,c->ph", _nuclear_r(2 * L, pp, nuclei), charges)
    out = _with_coef(pp, s, t, jnp.einsum("pabh,ph->pab", e3, rz)[:, None])
    return jax.ops.segment_sum(out, local, num_segments=out.shape[0])


@piece((0, 8))
def _chunk_grad(L, rows, local, nuclei, charges, pows, ct, atoms, natm):
    """d/dR (natm, 3) of sum ct * (S, T, V) over a chunk (``ct`` (B, 3, ncart(L)^2) per shell
    pair of the chunk); ``atoms`` (B, 2): the atoms of each primitive pair's centres.

    Reverse mode through the E expansion only: R one order up, computed once, enters as its
    first-order Taylor expansion in P - C about the current geometry (same value, and its
    derivative is dR_tuv/dX = R_{t+1,u,v}: exact)."""
    nh = len(hermite.hermite_indices(2 * L))
    r1 = jax.lax.stop_gradient(_nuclear_r(2 * L + 1, prim_pairs_of(rows), nuclei))
    up = np.stack([_r_columns(2 * L, 0, x)[:, 0] for x in range(3)])  # (3, nh): t + 1, ...
    r0, r_up = r1[..., :nh], r1[..., up]  # (B, natm, nh), (B, natm, 3, nh)

    def f(centres, nuc):
        pp = prim_pairs_of(rows.at[:, 2:8].set(centres))
        s, t, e3 = _overlap_kinetic_hermite(L, pp, pows)
        x = pp.P[:, None, :] - nuc[None]
        r = r0 + jnp.einsum("pcxh,pcx->pch", r_up, x - jax.lax.stop_gradient(x))
        v = jnp.einsum("pabh,pch,c->pab", e3, r, charges)[:, None]
        return jnp.sum(_with_coef(pp, s, t, v) * ct[local])

    d_centres, d_nuc = jax.grad(f, argnums=(0, 1))(rows[:, 2:8], nuclei)
    return d_nuc.at[atoms.reshape(-1)].add(d_centres.reshape(-1, 3))


def _stv(L, rows, nuclei, charges, pows, r_of):
    """S, T and V (B, 3, ncart(L)^2) of each primitive pair of raw ``rows``, coefficients
    included, not summed into shell pairs; ``r_of(pp, nuclei)``: -2 pi / p R_{tuv}(p, P - C)
    (B, natm, nherm(2L)) (:func:`_nuclear_r`, or a Taylor expansion of it)."""
    pp = prim_pairs_of(rows)
    s, t, e3 = _overlap_kinetic_hermite(L, pp, pows)
    v = jnp.einsum("pabh,pch,c->pab", e3, r_of(pp, nuclei), charges)[:, None]
    return _with_coef(pp, s, t, v)


@piece((0,))
def _chunk_tangent(L, rows, local, nuclei, charges, pows, atoms, dnuc):
    """d/de (B, 3, ncart(L)^2) of :func:`_chunk`'s S, T and V (a.u. per Bohr) with every
    nucleus moved along ``dnuc`` (natm, 3): the nuclei by e dnuc, each primitive pair's centres A
    and B by e dnuc[atoms] (``atoms`` (B, 2)). Forward mode; R's custom JVP is exact."""
    def f(centres, nuc):
        return _stv(L, rows.at[:, 2:8].set(centres), nuc, charges, pows,
                    lambda pp, c: _nuclear_r(2 * L, pp, c))

    dot = jax.jvp(f, (rows[:, 2:8], nuclei), (dnuc[atoms].reshape(-1, 6), dnuc))[1]
    return jax.ops.segment_sum(dot, local, num_segments=dot.shape[0])


@functools.cache
def _r_up(L: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns of R of order L + 2 (:func:`.hermite.hermite_indices` order) one order up
    (3, nherm(L)) and two orders up (3, 3, nherm(L)) from each (t, u, v) of order <= L:
    (t, u, v) + 1_x and (t, u, v) + 1_x + 1_y."""
    tuv, pos = hermite.hermite_indices(L), hermite.hermite_position(L + 2)
    one = np.eye(3, dtype=np.int64)

    def at(shift):
        idx = tuv + shift
        return pos[idx[:, 0], idx[:, 1], idx[:, 2]]

    up = np.stack([at(one[x]) for x in range(3)])
    return up, np.stack([np.stack([at(one[x] + one[y]) for y in range(3)]) for x in range(3)])


@piece((0,))
def _chunk_hvp(L, rows, local, nuclei, charges, pows, ct, atoms, dnuc):
    """d/de (k, natm, 3) of :func:`_chunk_grad` (the gradient of sum ct * (S, T, V) over a
    chunk) with every nucleus moved along each of k displacements ``dnuc`` (k, natm, 3) (its
    centres with it, ``atoms`` (B, 2)): the Hessian of sum ct * (S, T, V) times dnuc (a.u. per
    Bohr^2 times Bohr), at fixed ``ct``; the reverse pass shared by the k.

    Forward over reverse through the E expansion only: R two orders up, computed once, enters
    as its second-order Taylor expansion in X = P - C about the current geometry,
    R_tuv + sum_x R_{tuv+1_x} dX_x + 1/2 sum_xy R_{tuv+1_x+1_y} dX_x dX_y (same value, exact first
    and second derivatives)."""
    nh = len(hermite.hermite_indices(2 * L))
    r2 = jax.lax.stop_gradient(_nuclear_r(2 * L + 2, prim_pairs_of(rows), nuclei))
    up, up2 = _r_up(2 * L)
    r0, r_up, r_up2 = r2[..., :nh], r2[..., up], r2[..., up2]  # (B, natm, [3, [3,]] nh)

    def r_of(pp, nuc):
        x = pp.P[:, None, :] - nuc[None]
        dx = x - jax.lax.stop_gradient(x)
        return (r0 + jnp.einsum("pcxh,pcx->pch", r_up, dx)
                + 0.5 * jnp.einsum("pcxyh,pcx,pcy->pch", r_up2, dx, dx))

    def f(centres, nuc):
        return jnp.sum(_stv(L, rows.at[:, 2:8].set(centres), nuc, charges, pows, r_of) * ct[local])

    grad = jax.grad(f, argnums=(0, 1))

    def along(dn):  # one displacement of the nuclei (natm, 3)
        d_centres, d_nuc = jax.jvp(grad, (rows[:, 2:8], nuclei),
                                   (dn[atoms].reshape(-1, 6), dn))[1]
        return d_nuc.at[atoms.reshape(-1)].add(d_centres.reshape(-1, 3))

    return jax.vmap(along)(dnuc)


def _ao_indices(meta, na, nb):
    rows = meta[0][:, None, None] + jnp.arange(na)[None, :, None]
    cols = meta[1][:, None, None] + jnp.arange(nb)[None, None, :]
    return jnp.broadcast_arrays(rows, cols)


@piece((), donate_argnums=(0,))
def _place(mats, acc, meta, trans):
    """Add a chunk's shell-pair blocks ``acc`` (B, ncomp, ncart(L)^2) to the symmetric matrices
    ``mats`` (ncomp, n, n). ``meta`` (4, B): row and column offsets, off-diagonal, valid;
    ``trans`` (2, ncart(L), nfun(L)): the two shells' padded AO transforms (:func:`_padded`;
    the padding adds zeros, past the matrices' edge dropped)."""
    ta, tb = trans
    blk = acc.reshape(acc.shape[:2] + (ta.shape[0], tb.shape[0]))
    blk = jnp.einsum("pcab,ai,bj->cpij", blk, ta, tb) * meta[3][None, :, None, None]
    rows, cols = _ao_indices(meta, ta.shape[1], tb.shape[1])
    mirror = (meta[2] != 0)[None, :, None, None]
    mats = mats.at[:, rows, cols].add(blk, mode="drop")
    return mats.at[:, cols, rows].add(jnp.where(mirror, blk, 0.0), mode="drop")


@piece(())
def _cotangent(meta, dm, w, trans):
    """The cotangent (B, 3, ncart(L)^2) of a chunk's cartesian (S, T, V) blocks for
    sum D (T + V) - sum W S (D, W symmetric; an off-diagonal pair's block enters twice)."""
    ta, tb = trans
    rows, cols = _ao_indices(meta, ta.shape[1], tb.shape[1])
    mult = (jnp.where(meta[2] != 0, 2.0, 1.0) * meta[3])[:, None, None]
    d = dm.at[rows, cols].get(mode="fill", fill_value=0.0) * mult
    ws = w.at[rows, cols].get(mode="fill", fill_value=0.0) * mult
    ct = jnp.stack([-ws, d, d], axis=1)  # (npair, 3, na, nb)
    ct = jnp.einsum("pcij,ai,bj->pcab", ct, ta, tb)
    return ct.reshape(ct.shape[:2] + (-1,))


# ---------------------------------------------------------------------- host-side layout
@dataclasses.dataclass
class _Class:
    L: int  # of the pieces (:func:`group`)
    pows: jax.Array  # (2, ncart(L), 3), on the device
    trans: jax.Array  # (2, ncart(L), nfun(L))
    chunks: list  # of eri_pieces.Chunk (ip: primitive pairs, local: shell pair in the chunk)
    pairs: PairSet


_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _layout(basis: Basis) -> list:
    lay = basis.layout
    if lay in _LAYOUTS:
        return _LAYOUTS[lay]
    loc = lay.ao_loc
    out = []
    for pc in hermite.pair_classes(lay):
        meta = np.stack([loc[pc.shells[:, 0]], loc[pc.shells[:, 1]],
                         pc.shells[:, 0] != pc.shells[:, 1], np.ones(pc.npair)]).astype(np.int32)
        idx = np.arange(len(pc.prims))
        L = group(pc.la)
        (pa, ta), (pb, tb) = (padded_shell(pc.la, L, lay.cart),
                              padded_shell(pc.lb, L, lay.cart))
        out.append(_Class(L, jax.device_put(np.stack([pa, pb])),
                          jax.device_put(np.stack([ta, tb])),
                          split(idx, idx, pc.pair_of_prim, meta, CHUNK), PairSet(pc, False)))
    _LAYOUTS[lay] = out
    return out


def _nuclei(coords, charges):
    """Nuclei padded to a bucket (the extra ones at the origin with charge 0)."""
    r = np.asarray(coords, dtype=np.float64)
    natm_b = bucket(len(r), 16)
    nuc = np.zeros((natm_b, 3))
    nuc[: len(r)] = r
    z = np.zeros(natm_b)
    z[: len(r)] = np.asarray(charges)
    return jax.device_put(nuc), jax.device_put(z), natm_b


def padded_matrices(basis: Basis, coords, charges) -> jax.Array:
    """S, T and V stacked, (3, nao_b, nao_b) with :func:`nao_bucket`'s nao_b (zero past the
    basis' nao)."""
    nuc, z, _ = _nuclei(coords, charges)
    nao_b = nao_bucket(basis.nao)
    mats = zeros((3, nao_b, nao_b))
    for c in _layout(basis):
        raw = raw_pairs(basis, coords, c.pairs)[0]
        for ch in c.chunks:
            blocks = _chunk(c.L, _rows(raw, ch.ip), ch.local, nuc, z, c.pows)
            mats = _place(mats, blocks, ch.meta, c.trans)
    return mats


def matrices(basis: Basis, coords, charges):
    """(S, T, V) (nao, nao) at ``coords`` (Bohr) for nuclear ``charges``."""
    n = basis.nao
    mats = np.asarray(padded_matrices(basis, coords, charges))[:, :n, :n]
    return tuple(jax.device_put(m) for m in mats)


def gradient(basis: Basis, coords, charges, dm, w, sample: bool = False) -> jax.Array:
    """d/dR (natm, 3) of sum D (T + V) - sum W S at fixed symmetric ``dm`` and ``w``
    (Hartree/Bohr): the reverse pass through :func:`_chunk_grad`. ``sample``: the first chunk
    of each class only (as :func:`.eri_pieces.gradient`)."""
    nuc, z, natm_b = _nuclei(coords, charges)
    nao_b = nao_bucket(basis.nao)
    dm, w = pad_ao(dm, nao_b), pad_ao(w, nao_b)
    parts = []  # summed on the host at the end (eager adds would each be a program)
    for c in _layout(basis):
        raw, atoms = raw_pairs(basis, coords, c.pairs)
        for ch in c.chunks[:1] if sample else c.chunks:
            ct = _cotangent(ch.meta, dm, w, c.trans)
            parts.append(_chunk_grad(c.L, _rows(raw, ch.ip), ch.local, nuc, z, c.pows, ct,
                                     atoms[ch.ip], natm_b))
    grad = sum((np.asarray(g) for g in parts), np.zeros((natm_b, 3)))
    return grad[: len(np.asarray(coords))]


def matrices_tangent(basis: Basis, coords, charges, dcoords) -> jax.Array:
    """d/de of :func:`padded_matrices` at ``coords + e dcoords`` (``dcoords`` (natm, 3), Bohr):
    (3, nao_b, nao_b) dS, dT, dV (a.u. per Bohr times Bohr), the basis functions moving with
    their atoms and the nuclei of V too. Through :func:`_chunk_tangent` and :func:`_place`
    (linear)."""
    nuc, z, _ = _nuclei(coords, charges)
    dnuc = _nuclei(dcoords, charges)[0]  # padding nuclei do not move
    nao_b = nao_bucket(basis.nao)
    mats = zeros((3, nao_b, nao_b))
    for c in _layout(basis):
        raw, atoms = raw_pairs(basis, coords, c.pairs)
        for ch in c.chunks:
            blocks = _chunk_tangent(c.L, _rows(raw, ch.ip), ch.local, nuc, z, c.pows,
                                    atoms[ch.ip], dnuc)
            mats = _place(mats, blocks, ch.meta, c.trans)
    return mats


def gradient_tangent(basis: Basis, coords, charges, dm, w, dcoords) -> np.ndarray:
    """d/de (natm, 3) of :func:`gradient` at ``coords + e dcoords`` (Bohr), fixed symmetric
    ``dm`` and ``w``: sum_B d^2 E1 / dR_A dR_B dcoords_B with E1 = sum D (T + V) - sum W S
    (Hartree/Bohr^2 times Bohr), one column of E1's Hessian for a unit ``dcoords``; for
    ``dcoords`` (k, natm, 3), the k columns (k, natm, 3) in one pass. Through
    :func:`_chunk_hvp`, summed on the host."""
    dcoords = np.asarray(dcoords, dtype=np.float64)
    many = dcoords.ndim == 3
    dcoords = dcoords if many else dcoords[None]
    nuc, z, natm_b = _nuclei(coords, charges)
    dnuc = jax.device_put(np.stack([np.asarray(_nuclei(d, charges)[0]) for d in dcoords]))
    nao_b = nao_bucket(basis.nao)
    dm, w = pad_ao(dm, nao_b), pad_ao(w, nao_b)
    parts = []
    for c in _layout(basis):
        raw, atoms = raw_pairs(basis, coords, c.pairs)
        for ch in c.chunks:
            ct = _cotangent(ch.meta, dm, w, c.trans)
            parts.append(_chunk_hvp(c.L, _rows(raw, ch.ip), ch.local, nuc, z, c.pows, ct,
                                    atoms[ch.ip], dnuc))
    out = sum((np.asarray(g) for g in parts), np.zeros((len(dcoords), natm_b, 3)))
    out = out[:, : len(np.asarray(coords))]
    return out if many else out[0]
