"""Which ERI shell quartets to compute, and in which chunks: the setup-side :class:`EriPlan`.

Built once per basis layout and screening geometry, on the Python side (NumPy), and then
passed to the JAX evaluation in :mod:`.two_electron` for any geometry (DESIGN.md: setup on the
Python side, pure JAX for the numbers):

* Shell pairs are grouped by angular momenta (la >= lb) into *pair sets*; a *quartet class* is a
  pair of pair sets. 3- and 2-centre integrals use a "pair" made of one auxiliary shell and the
  unit function.
* Primitive pairs whose (ss|ss)-type bound is below :data:`PRIM_THRESHOLD` are dropped.
* Only unique quartets are kept (8-fold symmetry: i >= j, k >= l, ij >= kl), and quartets whose
  Schwarz bound sqrt((ij|ij)(kl|kl)) is below ``threshold`` (:data:`SCHWARZ_THRESHOLD`) at the
  setup geometry are dropped. The bounds come from the class pieces every molecule shares
  (:func:`.eri_pieces.schwarz`) and are remembered by value.
* Each class's primitive quartets are laid out in fixed-size chunks (index arrays padded to a
  whole number of chunks), sized so that one chunk's working set stays near
  :data:`CHUNK_BYTES`. A "3c" plan whose per-primitive index arrays would pass
  :data:`COMPACT_INDEX_BYTES` keeps a :class:`CompactIndex` instead (per contracted quartet,
  not per primitive quartet), from which each chunk's indices are made on the device.

The plan is a pytree: its index arrays are children (device arrays, not compile-time constants)
and its class structure is static, so ``jax.jit`` compiles once per basis layout and plan and
re-runs for any geometry, exponent or coefficient.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, BasisLayout, ncart, normalized_coefficients
from . import hermite
from .hermite import PairClass

WRITTEN_MAX_L = 4
"""Classes with la + lb + lc + ld <= this take the written-out reverse pass
(:func:`.eri_kernel.class_cotangents`); above it JAX's reverse pass of the class kernel is
faster (``benchmarks/RESULTS.md``)."""

CHUNK_BYTES = 48 * 2**20
"""Working memory of one chunk of primitive quartets (bytes)."""

MIN_CHUNK = 16
"""Fewest primitive quartets per chunk (before the rounding down to a power of two)."""

MAX_CHUNK = 4096
"""Most primitive quartets per chunk."""

SCHWARZ_THRESHOLD = 1e-14
"""Quartets with sqrt((ij|ij)(kl|kl)) below this (Hartree) at the setup geometry are skipped."""

PRIM_THRESHOLD = 1e-16
"""Primitive pairs whose (ss|ss)-type bound |c_a c_b K_ab| sqrt(2 pi^2.5 / (p^2 sqrt(2p)))
is below this at the setup geometry are skipped."""

SCHWARZ_CACHE_SIZE = 32
"""Schwarz passes remembered (first in, first out); an entry holds one float per shell pair."""

COMPACT_INDEX_BYTES = 1 * 2**30
"""A "3c" plan whose per-primitive index arrays (3 int32 per primitive quartet) would take more
than this keeps :class:`CompactIndex` (erythromycin/def2-SVP: 4.5 GB of index arrays)."""

_FLOAT64_BYTES = 8


# ---------------------------------------------------------------------- pair sets
@dataclasses.dataclass(frozen=True, eq=False)
class PairSet:
    """A pair class of one basis (``single=False``) or single shells of a basis paired with the
    unit function (``single=True``, lb = 0), as used for auxiliary (density-fitting) functions.

    Equal (and hashed) by value: it is static data of a plan, part of the key of every compiled
    program that uses the plan, so two setups built alike (the same molecule built again, another
    functional) share their compiled programs instead of compiling again."""

    cls: PairClass
    single: bool

    @functools.cached_property
    def _key(self) -> tuple:
        h = hashlib.sha256()
        for a in (self.cls.shells, self.cls.prims, self.cls.pair_of_prim):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        return self.cls.la, self.cls.lb, self.single, h.hexdigest()

    def __eq__(self, other):
        return isinstance(other, PairSet) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    @property
    def la(self):
        return self.cls.la

    @property
    def lb(self):
        return self.cls.lb


def _screen_prims(basis: Basis, coords, classes, threshold: float) -> tuple[PairClass, ...]:
    """The pair classes without primitive pairs that cannot contribute above ``threshold``:
    |c_a c_b K_ab| sqrt(2 pi^2.5 / (p^2 sqrt(2 p))) < threshold, with K_ab = exp(-ab/p |A-B|^2),
    p = a + b, the bound of the pair's (ab|ab)^1/2 for s functions.

    Setup-side NumPy, the same Gaussian-product data as :func:`hermite.prim_pairs`: in eager JAX
    every operation compiles for its class's shape (16 s of acetone/def2-TZVP's setup)."""
    lay = basis.layout
    atom_of_prim = np.repeat(np.asarray(lay.shell_atom), lay.shell_nprim)
    exps = np.asarray(basis.exponents)
    coef = normalized_coefficients(basis, np)
    r = np.asarray(coords)
    out = []
    for cls in classes:
        ia, ib = cls.prims[:, 0], cls.prims[:, 1]
        a, b = exps[ia], exps[ib]
        p = a + b
        ab = r[atom_of_prim[ia]] - r[atom_of_prim[ib]]
        c = coef[ia] * coef[ib] * np.exp(-a * b / p * np.sum(ab * ab, axis=-1))
        keep = np.abs(c) * np.sqrt(2 * np.pi**2.5 / (p * p * np.sqrt(2 * p))) >= threshold
        out.append(PairClass(cls.la, cls.lb, cls.shells, cls.prims[keep], cls.pair_of_prim[keep]))
    return tuple(out)


def _single_class(layout: BasisLayout, l: int, shells: np.ndarray) -> PairClass:
    """The shells ``shells`` (all of angular momentum l) each paired with the unit function
    (shell and primitive index -1)."""
    loc = layout.prim_loc
    prims, owner = [], []
    for k, i in enumerate(shells):
        p = np.arange(loc[i], loc[i + 1])
        prims.append(np.stack([p, np.full_like(p, -1)], axis=1))
        owner.append(np.full(len(p), k))
    sh = np.stack([shells, np.full_like(shells, -1)], axis=1)
    return PairClass(l, 0, sh, np.concatenate(prims), np.concatenate(owner))


@functools.cache
def _single_classes(layout: BasisLayout) -> tuple[PairClass, ...]:
    ls = np.asarray(layout.shell_l)
    return tuple(_single_class(layout, int(l), np.nonzero(ls == l)[0]) for l in sorted(set(ls)))


# ---------------------------------------------------------------------- plans
@dataclasses.dataclass(frozen=True)
class QuartetClass:
    """Static part of one quartet class: which pair sets, sizes."""

    bra: int  # index into the plan's bra pair sets
    ket: int
    nq: int
    nchunk: int
    chunk: int


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(eq=False)
class EriPlan:
    """Which quartets to compute and how: static class list + index arrays (pytree children).

    ``kind``: "4c" (ij|kl), "3c" (ij|P) or "2c" (P|Q).
    """

    kind: str
    bra_sets: tuple  # of PairSet (static)
    ket_sets: tuple
    classes: tuple  # of QuartetClass (static)
    index: tuple  # per class: (ip, iq, qid) int32 arrays (nchunk, chunk), or a CompactIndex
    quartets: tuple  # per class: (nq, 2) int32 (bra pair id, ket pair id)
    bra_rows: tuple  # per class: () or (local (nchunk, chunk), rows (nchunk, D)): bra_rows_of

    def tree_flatten(self):
        return ((self.index, self.quartets, self.bra_rows),
                (self.kind, self.bra_sets, self.ket_sets, self.classes))

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux[0], aux[1], aux[2], aux[3], *children)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(eq=False)
class CompactIndex:
    """A class's chunks of primitive quartets described per contracted quartet: the primitive
    quartets of quartet q are the positions cum[q] <= t < cum[q + 1] of the class (bra pair's
    primitive pairs outer, ket's inner), chunk n holds the positions [n c, n c + c), and
    :func:`chunk_indices` makes a chunk's (ip, iq, qid) from these on the device. 4 bytes per
    quartet and 4 per chunk instead of 12 per primitive quartet.

    ``cum`` (nq + c + 1,): each quartet's first position, the class's total at nq, then
    int32 max (so that a chunk's window of c + 1 entries is always in bounds); ``first``
    (nchunk,): the quartet holding each chunk's first position; ``end`` (): positions past it
    are padding (their sums land in the discarded row nq); ``quartets`` (nq, 2): (bra pair,
    ket pair); ``bra_start``, ``ket_start`` (npair,): each pair's first primitive pair;
    ``ket_count`` (npair,): the ket pair's primitive pairs (every quartet has at least one
    primitive quartet). A group of chunks (:func:`.two_electron.group_arrays`) has its own,
    its positions counted from its first chunk's."""

    cum: jax.Array
    first: jax.Array
    end: jax.Array
    quartets: jax.Array
    bra_start: jax.Array
    ket_start: jax.Array
    ket_count: jax.Array
    chunk: int

    def tree_flatten(self):
        return ((self.cum, self.first, self.end, self.quartets, self.bra_start, self.ket_start,
                 self.ket_count), (self.chunk,))

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)


def chunk_count(index) -> int:
    """The chunks of a class's ``index`` ((ip, iq, qid) rows or a :class:`CompactIndex`)."""
    return (index.first if isinstance(index, CompactIndex) else index[0]).shape[0]


def scan_inputs(index) -> tuple:
    """What a ``lax.scan`` over a class's chunks takes per chunk: the (ip, iq, qid) rows, or
    (chunk number, first quartet) of a :class:`CompactIndex`."""
    if isinstance(index, CompactIndex):
        return (jnp.arange(chunk_count(index), dtype=jnp.int32), index.first)
    return tuple(index)


def chunk_indices(index, x) -> tuple:
    """(ip, iq, qid) (c,) of one chunk from its :func:`scan_inputs` ``x`` (traced): the rows
    themselves, or made from a :class:`CompactIndex`: the quartets starting inside the chunk
    marked and summed (a cumulative sum, no search), each position's offset in its quartet
    split into bra and ket primitive pairs."""
    if not isinstance(index, CompactIndex):
        return x
    n, first = x
    c = index.chunk
    nq = index.quartets.shape[0]
    t0 = n * c
    starts = jax.lax.dynamic_slice(index.cum, (first,), (c + 1,)) - t0
    mark = jnp.zeros(c, jnp.int32).at[starts[1:]].add(1, mode="drop")
    q = first + jnp.cumsum(mark)
    t = t0 + jnp.arange(c, dtype=jnp.int32)
    real = jnp.minimum(q, nq - 1)
    offset = t - index.cum[real]
    bra, ket = index.quartets[real, 0], index.quartets[real, 1]
    nk = index.ket_count[ket]
    ip = index.bra_start[bra] + offset // nk
    iq = index.ket_start[ket] + offset % nk
    return ip, iq, jnp.where(t < index.end, q, nq)


BRA_ROWS_MAX = 16
"""Most distinct bra primitive pairs per chunk for which a class keeps :func:`bra_rows_of`."""


def bra_rows_of(ip: np.ndarray, cap: int = BRA_ROWS_MAX) -> tuple:
    """The distinct bra primitive pairs of each chunk, for sums per bra pair as one matrix
    product (:func:`.eri_kernel.class_cotangents`): (local, rows), local (nchunk, chunk) each
    quartet's position among its chunk's distinct pairs ``rows`` (nchunk, D), D the power of two
    >= their largest count (rows padded with pair 0, which no quartet then names); () if D would
    exceed ``cap`` (scatter-adds per quartet are cheaper then)."""
    found = [np.unique(r, return_inverse=True) for r in ip]
    most = max(len(u) for u, _ in found)
    d = 1 << (most - 1).bit_length()
    if d > cap:
        return ()
    local = np.stack([inv.reshape(-1) for _, inv in found]).astype(np.int32)
    rows = np.zeros((len(found), d), dtype=np.int32)
    for k, (u, _) in enumerate(found):
        rows[k, : len(u)] = u
    return jax.device_put(local), jax.device_put(rows)


def _chunk_size(nab, ncd, hab, hcd, L, total):
    """Primitive quartets per chunk: a power of two whose working set (an estimate of the
    float64 values one quartet holds in the chunk body: the gathered E coefficients, the R cube
    and the two products) stays within :data:`CHUNK_BYTES`, between :data:`MIN_CHUNK` and
    :data:`MAX_CHUNK` (rounded down to a power of two), and no larger than the class needs."""
    values = (hab * hcd + 2 * nab * hab + 2 * ncd * hcd + hab * ncd + 2 * nab * ncd
              + 3 * (L + 1) ** 3 + 16)
    c = max(MIN_CHUNK, min(MAX_CHUNK, CHUNK_BYTES // (_FLOAT64_BYTES * values)))
    c = 1 << int(math.log2(c))
    return max(1, min(c, 1 << max(0, math.ceil(math.log2(max(total, 1))))))


def _starts(cls: PairClass) -> np.ndarray:
    """(npair + 1,): the first primitive pair of each pair of ``cls`` (and the total)."""
    return np.searchsorted(cls.pair_of_prim, np.arange(cls.npair + 1))


def _counts(bs: PairSet, ks: PairSet, pairs: np.ndarray) -> np.ndarray:
    """Primitive quartets (int64) of each contracted quartet ``pairs`` (nq, 2)."""
    return np.diff(_starts(bs.cls))[pairs[:, 0]] * np.diff(_starts(ks.cls))[pairs[:, 1]]


def _chunk_of(bs: PairSet, ks: PairSet, total: int) -> int:
    """:func:`_chunk_size` of a class of ``total`` primitive quartets."""
    lab, lcd = bs.la + bs.lb, ks.la + ks.lb
    nab = ncart(bs.la) * ncart(bs.lb)
    ncd = ncart(ks.la) * ncart(ks.lb)
    hab, hcd = len(hermite.hermite_indices(lab)), len(hermite.hermite_indices(lcd))
    return _chunk_size(nab, ncd, hab, hcd, lab + lcd, total)


def _make_compact_class(bra_i, ket_i, bs: PairSet, ks: PairSet, pairs: np.ndarray):
    """:func:`_make_class` with a :class:`CompactIndex` (``pairs`` each with primitive
    quartets: each quartet must hold a position)."""
    counts = _counts(bs, ks, pairs)
    total = int(counts.sum())
    if total >= 2**31 - 2**20:
        raise ValueError(f"{total} primitive quartets in one class: more than int32 indexes")
    c = _chunk_of(bs, ks, total)
    nchunk = max(1, -(-total // c))
    cum = np.concatenate([[0], np.cumsum(counts)])
    first = np.searchsorted(cum, np.arange(nchunk) * c, side="right") - 1
    cum = np.concatenate([cum, np.full(c, np.iinfo(np.int32).max)])
    bstart, kstart = _starts(bs.cls), _starts(ks.cls)
    index = CompactIndex(*(jax.device_put(np.asarray(a, dtype=np.int32)) for a in (
        cum, np.minimum(first, len(pairs) - 1), total, pairs, bstart[:-1], kstart[:-1],
        np.diff(kstart))), c)
    return QuartetClass(bra_i, ket_i, len(pairs), nchunk, c), index, index.quartets


def _make_class(bra_i, ket_i, bs: PairSet, ks: PairSet, pairs: np.ndarray):
    """Primitive-quartet index lists for the contracted quartets ``pairs`` (nq, 2)."""
    bstart, kstart = _starts(bs.cls), _starts(ks.cls)
    nk = np.diff(kstart)[pairs[:, 1]]
    counts = _counts(bs, ks, pairs)
    total = int(counts.sum())
    qid = np.repeat(np.arange(len(pairs)), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    nk_r = np.repeat(nk, counts)
    ip = bstart[pairs[:, 0]].repeat(counts) + offset // nk_r
    iq = kstart[pairs[:, 1]].repeat(counts) + offset % nk_r
    c = _chunk_of(bs, ks, total)
    nchunk = max(1, -(-total // c))
    pad = nchunk * c - total
    ip = np.concatenate([ip, np.zeros(pad, int)]).reshape(nchunk, c).astype(np.int32)
    iq = np.concatenate([iq, np.zeros(pad, int)]).reshape(nchunk, c).astype(np.int32)
    qid = np.concatenate([qid, np.full(pad, len(pairs))]).reshape(nchunk, c).astype(np.int32)
    cls = QuartetClass(bra_i, ket_i, len(pairs), nchunk, c)
    # device_put, not jnp.asarray: no program compiled per shape
    index = (jax.device_put(ip), jax.device_put(iq), jax.device_put(qid))
    return cls, index, jax.device_put(pairs.astype(np.int32))


# ---------------------------------------------------------------------- Schwarz bounds
_SCHWARZ_CACHE: dict = {}


def _schwarz_key(basis, coords, sets) -> tuple:
    """Everything :func:`_schwarz` depends on, by value (layout, geometry, exponents,
    coefficients, the pair sets' index arrays)."""
    h = hashlib.sha256()
    for a in (coords, basis.exponents, basis.coefficients):
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    for ps in sets:
        h.update(repr((ps.la, ps.lb, ps.single)).encode())
        for a in (ps.cls.shells, ps.cls.prims, ps.cls.pair_of_prim):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    return basis.layout, h.hexdigest()


def _schwarz(basis, coords, sets):
    """sqrt(max |(ab|ab)|) for every pair of every pair set (NumPy arrays), one jit for all.

    Remembered by value (:func:`_schwarz_key`, the last :data:`SCHWARZ_CACHE_SIZE`): several
    setups of one molecule and basis (other functionals, restricted and unrestricted, density
    fitting) compile and run it once."""
    key = _schwarz_key(basis, coords, sets)
    if key not in _SCHWARZ_CACHE:
        if len(_SCHWARZ_CACHE) >= SCHWARZ_CACHE_SIZE:
            _SCHWARZ_CACHE.pop(next(iter(_SCHWARZ_CACHE)))
        _SCHWARZ_CACHE[key] = _schwarz_uncached(basis, coords, sets)
    return [q.copy() for q in _SCHWARZ_CACHE[key]]


def _schwarz_uncached(basis, coords, sets):
    from .eri_pieces import schwarz  # the class pieces every molecule shares (no per-layout jit)

    return schwarz(basis, coords, sets)


# ---------------------------------------------------------------------- the plan
def build_plan(basis: Basis, coords, aux: Basis | None = None, kind: str = "4c",
               threshold=SCHWARZ_THRESHOLD, compact: bool | None = None) -> EriPlan:
    """Plan the unique, non-negligible quartets for ``kind`` "4c", "3c" (needs ``aux``) or "2c"
    (of ``aux``, or of ``basis`` when ``aux`` is None). Screening uses the geometry ``coords``;
    (P|Q) is not screened. ``compact`` ("3c" only; default: past :data:`COMPACT_INDEX_BYTES`)
    keeps :class:`CompactIndex` (the 4-centre consumers, :mod:`.eri_pieces` and
    :func:`bra_rows_of`, read the per-primitive arrays)."""
    coords = jnp.asarray(coords, dtype=jnp.float64)

    def orbital_pairs():
        classes = _screen_prims(basis, coords, hermite.pair_classes(basis.layout), PRIM_THRESHOLD)
        return tuple(PairSet(c, False) for c in classes)

    if kind == "4c":
        bra_sets = orbital_pairs()
        ket_sets = bra_sets
        qb = qk = _schwarz(basis, coords, bra_sets)
    elif kind == "3c":
        if aux is None:
            raise ValueError("3-centre integrals need an auxiliary basis")
        bra_sets = orbital_pairs()
        ket_sets = tuple(PairSet(c, True) for c in _single_classes(aux.layout))
        qb = _schwarz(basis, coords, bra_sets)
        qk = _schwarz(aux, coords, ket_sets)
    elif kind == "2c":
        b = aux if aux is not None else basis
        bra_sets = tuple(PairSet(c, True) for c in _single_classes(b.layout))
        ket_sets = bra_sets
        qb = qk = [np.ones(ps.cls.npair) for ps in bra_sets]  # (P|Q) is small: no screening
    else:
        raise ValueError(f"unknown integral kind {kind!r}")
    kept = []
    symmetric = kind in ("4c", "2c")
    for bi, bs in enumerate(bra_sets):
        for ki, ks in enumerate(ket_sets):
            if symmetric and ki > bi:
                continue
            nb, nk = bs.cls.npair, ks.cls.npair
            ib, ik = np.meshgrid(np.arange(nb), np.arange(nk), indexing="ij")
            keep = qb[bi][:, None] * qk[ki][None, :] >= threshold
            if symmetric and ki == bi:
                keep &= ib >= ik
            pairs = np.stack([ib[keep], ik[keep]], axis=1)
            if len(pairs):
                kept.append((bi, ki, bs, ks, pairs))
    if compact is None:
        total = sum(int(_counts(bs, ks, pairs).sum()) for _, _, bs, ks, pairs in kept)
        compact = kind == "3c" and 12 * total > COMPACT_INDEX_BYTES
    elif compact and kind != "3c":
        raise ValueError(f"a compact index is for 3-centre plans, not {kind!r}")
    if compact:  # quartets without primitive quartets (all screened out) add zeros: dropped
        kept = [(bi, ki, bs, ks, pairs[_counts(bs, ks, pairs) > 0]) for bi, ki, bs, ks, pairs
                in kept]
        kept = [k for k in kept if len(k[4])]
    classes, index, quartets, bra_rows = [], [], [], []
    for bi, ki, bs, ks, pairs in kept:
        c, idx, q = (_make_compact_class if compact else _make_class)(bi, ki, bs, ks, pairs)
        classes.append(c)
        index.append(idx)
        quartets.append(q)
        written = kind == "4c" and bs.la + bs.lb + ks.la + ks.lb <= WRITTEN_MAX_L
        bra_rows.append(bra_rows_of(np.asarray(idx[0])) if written else ())
    return EriPlan(kind, bra_sets, ket_sets, tuple(classes), tuple(index), tuple(quartets),
                   tuple(bra_rows))
