"""One-electron integrals and their nuclear gradient from compiled pieces every molecule shares.

The counterpart of :mod:`.eri_pieces` for :mod:`.one_electron`: the overlap, kinetic and
nuclear-attraction integrals (each nucleus' share too, for the SAD guess) of one chunk of
primitive pairs of a class (la, lb), contracted into the chunk's shell pairs, are one piece
(:func:`_chunk`), keyed by the class, the chunk size :data:`CHUNK` and the bucketed number of
nuclei, so a new molecule with the same angular momenta and up to as many atoms compiles
nothing new; the reverse pass of sum D (T + V) - sum W S is another (:func:`_chunk_grad`).
Cheap pieces place a chunk's blocks in (nao, nao) matrices and cut its cotangent from D and W
(keyed by the bucketed nao). Same formulas and numbers as :mod:`.one_electron`
(``tests/test_pieces.py``).
"""

from __future__ import annotations

import dataclasses
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, ao_transform
from ..pieces import piece
from . import hermite
from .eri_pieces import (
    PairSet,
    _rows,
    bucket,
    nao_bucket,
    pad_ao,
    prim_pairs_of,
    raw_pairs,
    split,
)
from .one_electron import kinetic_block, nuclear_block, overlap_block

CHUNK = 256
"""Primitive pairs per chunk."""


def _blocks(ls, rows, nuclei, charges, per_nucleus):
    """(B, 2 + natm or 3, ncart_a * ncart_b): S, T and V (per nucleus, or summed) with the
    contraction coefficients."""
    la, lb = ls
    pp = prim_pairs_of(rows)
    v = nuclear_block(pp, la, lb, nuclei, charges, per_nucleus)
    v = v if per_nucleus else v[:, None]
    out = jnp.concatenate([overlap_block(pp, la, lb)[:, None], kinetic_block(pp, la, lb)[:, None],
                           v], axis=1) * pp.coef[:, None, None, None]
    return out.reshape(out.shape[:2] + (-1,))


@piece((0,))
def _chunk(ls, rows, local, nuclei, charges):
    """S, T and each nucleus' V of a chunk of primitive pairs, summed into the chunk's shell
    pairs ``local`` (B,): (B, 2 + natm, nab)."""
    v = _blocks(ls, rows, nuclei, charges, True)
    return jax.ops.segment_sum(v, local, num_segments=v.shape[0])


@piece((0, 7))
def _chunk_grad(ls, rows, local, nuclei, charges, ct, atoms, natm):
    """d/dR (natm, 3) of sum ct * (S, T, V) over a chunk (``ct`` (B, 3, nab) per shell pair of
    the chunk); ``atoms`` (B, 2): the atoms of each primitive pair's centres."""

    def f(centres, nuc):
        v = _blocks(ls, rows.at[:, 2:8].set(centres), nuc, charges, False)
        return jnp.sum(v * ct[local])

    d_centres, d_nuc = jax.grad(f, argnums=(0, 1))(rows[:, 2:8], nuclei)
    return d_nuc.at[atoms.reshape(-1)].add(d_centres.reshape(-1, 3))


def _transforms(ls, cart):
    return ao_transform(ls[0], cart), ao_transform(ls[1], cart)


def _ao_indices(meta, na, nb):
    rows = meta[0][:, None, None] + jnp.arange(na)[None, :, None]
    cols = meta[1][:, None, None] + jnp.arange(nb)[None, None, :]
    return jnp.broadcast_arrays(rows, cols)


@piece((3, 4), donate_argnums=(0,))
def _place(mats, acc, meta, ls, cart):
    """Add a chunk's shell-pair blocks ``acc`` (B, ncomp, nab) to the symmetric matrices
    ``mats`` (ncomp, n, n). ``meta`` (4, B): row and column offsets, off-diagonal, valid."""
    ta, tb = _transforms(ls, cart)
    blk = acc.reshape(acc.shape[:2] + (ta.shape[0], tb.shape[0]))
    blk = jnp.einsum("pcab,ai,bj->cpij", blk, ta, tb) * meta[3][None, :, None, None]
    rows, cols = _ao_indices(meta, ta.shape[1], tb.shape[1])
    mirror = (meta[2] != 0)[None, :, None, None]
    return mats.at[:, rows, cols].add(blk).at[:, cols, rows].add(jnp.where(mirror, blk, 0.0))


@piece((3, 4))
def _cotangent(meta, dm, w, ls, cart):
    """The cotangent (B, 3, nab) of a chunk's cartesian (S, T, V) blocks for
    sum D (T + V) - sum W S (D, W symmetric; an off-diagonal pair's block enters twice)."""
    ta, tb = _transforms(ls, cart)
    rows, cols = _ao_indices(meta, ta.shape[1], tb.shape[1])
    mult = (jnp.where(meta[2] != 0, 2.0, 1.0) * meta[3])[:, None, None]
    d, ws = dm[rows, cols] * mult, w[rows, cols] * mult
    ct = jnp.stack([-ws, d, d], axis=1)  # (npair, 3, na, nb)
    ct = jnp.einsum("pcij,ai,bj->pcab", ct, ta, tb)
    return ct.reshape(ct.shape[:2] + (-1,))


# ---------------------------------------------------------------------- host-side layout
@dataclasses.dataclass
class _Class:
    ls: tuple
    pairs: PairSet
    chunks: list  # of eri_pieces.Chunk (ip: primitive pairs, local: shell pair in the chunk)


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
        out.append(_Class((pc.la, pc.lb), PairSet(pc, False),
                          split(idx, idx, pc.pair_of_prim, meta, CHUNK)))
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
    """S, T and V per nucleus stacked, (2 + natm_b, nao_b, nao_b) with :func:`nao_bucket`'s
    nao_b and natm_b nuclei (zero past the basis' nao and the molecule's atoms)."""
    nuc, z, natm_b = _nuclei(coords, charges)
    nao_b = nao_bucket(basis.nao)
    cart = basis.layout.cart
    mats = jnp.asarray(np.zeros((2 + natm_b, nao_b, nao_b)))
    for c in _layout(basis):
        raw = raw_pairs(basis, coords, c.pairs)[0]
        for ch in c.chunks:
            blocks = _chunk(c.ls, _rows(raw, ch.ip), ch.local, nuc, z)
            mats = _place(mats, blocks, ch.meta, c.ls, cart)
    return mats


def matrices(basis: Basis, coords, charges):
    """(S, T, V per nucleus (natm, nao, nao)) at ``coords`` (Bohr) for nuclear ``charges``."""
    n = basis.nao
    mats = np.asarray(padded_matrices(basis, coords, charges))[:, :n, :n]
    natm = len(np.asarray(coords))
    return jnp.asarray(mats[0]), jnp.asarray(mats[1]), jnp.asarray(mats[2:2 + natm])


def gradient(basis: Basis, coords, charges, dm, w, sample: bool = False) -> jax.Array:
    """d/dR (natm, 3) of sum D (T + V) - sum W S at fixed symmetric ``dm`` and ``w``
    (Hartree/Bohr): the reverse pass through :func:`_chunk_grad`. ``sample``: the first chunk
    of each class only (as :func:`.eri_pieces.gradient`)."""
    nuc, z, natm_b = _nuclei(coords, charges)
    nao_b = nao_bucket(basis.nao)
    dm, w = pad_ao(dm, nao_b), pad_ao(w, nao_b)
    cart = basis.layout.cart
    parts = []  # summed on the host at the end (eager adds would each be a program)
    for c in _layout(basis):
        raw, atoms = raw_pairs(basis, coords, c.pairs)
        for ch in c.chunks[:1] if sample else c.chunks:
            ct = _cotangent(ch.meta, dm, w, c.ls, cart)
            parts.append(_chunk_grad(c.ls, _rows(raw, ch.ip), ch.local, nuc, z, ct,
                                     atoms[ch.ip], natm_b))
    grad = sum((np.asarray(g) for g in parts), np.zeros((natm_b, 3)))
    return grad[: len(np.asarray(coords))]
