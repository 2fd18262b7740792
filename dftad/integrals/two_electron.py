"""Electron-repulsion integrals in JAX: 4-centre (ij|kl), 3-centre (ij|P) and 2-centre (P|Q).

Evaluates an :class:`~.eri_plan.EriPlan` (which quartets, in which chunks; built on the Python
side by :func:`build_plan`, re-exported here) for any geometry, exponents and coefficients: the
class kernel (:mod:`.eri_kernel`) gives each quartet class's cartesian integrals, which are
transformed to AOs (spherical or cartesian, PySCF's order) and then either assembled into
PySCF's layouts (:func:`eri`, :func:`eri_s8`, :func:`int3c2e`, :func:`int2c2e`) or contracted
with densities without forming the tensor (:func:`eri_energy`, :func:`blocks_energy`). Every
function is pure JAX: ``jax.jit`` compiles once per basis layout and plan, and the results are
differentiable in the coordinates and the basis exponents and coefficients.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, ao_transform, ncart
from .eri_kernel import class_cotangents, class_integrals, hermite_pairs
from .eri_plan import (
    PRIM_THRESHOLD,
    SCHWARZ_THRESHOLD,
    CompactIndex,
    EriPlan,
    PairSet,
    QuartetClass,
    build_plan,
    chunk_count,
)

__all__ = [
    "PRIM_THRESHOLD",
    "SCHWARZ_THRESHOLD",
    "EriPlan",
    "QuartetClass",
    "add_packed_group",
    "blocks_energy",
    "build_plan",
    "class_blocks",
    "class_groups",
    "eri",
    "eri_blocks",
    "eri_blocks_pullback",
    "eri_energy",
    "eri_s8",
    "group_arrays",
    "int2c2e",
    "int3c2e",
    "int3c2e_packed",
    "pack_s8",
    "packed_group_gradient",
    "pair_columns",
    "unpack_s8",
]


def _transforms(ps: PairSet, cart: bool):
    """Cartesian-to-AO transforms of the two functions of a pair set's pairs (the unit function's
    is 1)."""
    tb = np.ones((1, 1)) if ps.single else ao_transform(ps.lb, cart)
    return ao_transform(ps.la, cart), tb


# ---------------------------------------------------------------------- class blocks
def class_blocks(plan: EriPlan, basis: Basis, coords, aux: Basis | None = None, omega=None):
    """Yield (QuartetClass, quartets, AO block (nq, na, nb, nc, nd)) for every class.

    ``omega`` (may be traced) selects the erf-attenuated operator erf(omega r12)/r12."""
    herm = {}
    for cls, idx, quartets in zip(plan.classes, plan.index, plan.quartets):
        yield cls, quartets, _class_values(plan, basis, aux, coords, cls, idx, omega, herm)


def _class_values(plan: EriPlan, basis: Basis, aux, coords, cls: QuartetClass, idx, omega,
                  herm=None):
    """AO block (nq, na, nb, nc, nd) of the quartets of one class from its chunks ``idx``
    ((ip, iq, qid)); ``herm``: a dict keeping each pair set's Hermite data between calls."""
    bra_basis, ket_basis = _bases(plan, basis, aux)
    herm = {} if herm is None else herm
    bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
    if ("bra", cls.bra) not in herm:
        herm["bra", cls.bra] = hermite_pairs(bra_basis, coords, bs, ket=False)
    if ("ket", cls.ket) not in herm:
        herm["ket", cls.ket] = hermite_pairs(ket_basis, coords, ks, ket=True)
    v = class_integrals(herm["bra", cls.bra], herm["ket", cls.ket], bs.la + bs.lb,
                        ks.la + ks.lb, idx, cls.nq, omega)
    ta, tb = _transforms(bs, bra_basis.layout.cart)
    tc, td = _transforms(ks, ket_basis.layout.cart)
    v = v.reshape(cls.nq, ta.shape[0], tb.shape[0], tc.shape[0], td.shape[0])
    return jnp.einsum("qabcd,ai,bj,ck,dl->qijkl", v, ta, tb, tc, td)


def _bases(plan: EriPlan, basis: Basis, aux: Basis | None):
    """The bases of the bra and of the ket pairs: ``aux`` for auxiliary functions (the ket of
    "3c", both of "2c") when given, else ``basis``."""
    bra_basis = aux if plan.kind == "2c" and aux is not None else basis
    ket_basis = aux if plan.kind in ("3c", "2c") and aux is not None else basis
    return bra_basis, ket_basis


def _ao_offsets(plan: EriPlan, basis: Basis, aux: Basis | None, cls: QuartetClass, quartets):
    """AO offsets of the four functions of each quartet, four (nq,) arrays (0 for the unit
    function, whose shell index -1 picks the 0 appended to ``ao_loc``)."""
    bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
    bra_basis, ket_basis = _bases(plan, basis, aux)
    bsh = jnp.asarray(bs.cls.shells)[quartets[:, 0]]
    ksh = jnp.asarray(ks.cls.shells)[quartets[:, 1]]
    bloc = jnp.asarray(np.append(bra_basis.layout.ao_loc, 0))
    kloc = jnp.asarray(np.append(ket_basis.layout.ao_loc, 0))
    return bloc[bsh[:, 0]], bloc[bsh[:, 1]], kloc[ksh[:, 0]], kloc[ksh[:, 1]]


def _block_indices(offsets, shape):
    """Absolute AO indices of every element of blocks (nq, na, nb, nc, nd)."""
    grids = jnp.meshgrid(*[jnp.arange(n) for n in shape[1:]], indexing="ij")
    return [o[:, None, None, None, None] + g[None] for o, g in zip(offsets, grids)]


# ---------------------------------------------------------------------- public functions
def eri(plan: EriPlan, basis: Basis, coords, omega=None) -> jax.Array:
    """Full (nao, nao, nao, nao) tensor of (ij|kl) (PySCF ``int2e``, aosym s1); with ``omega``
    the long-range integrals (ij|erf(omega r12)/r12|kl) (PySCF ``mol.with_range_coulomb``)."""
    return unpack_s8(eri_s8(plan, basis, coords, omega), basis.nao)


def unpack_s8(eri8, nao: int) -> jax.Array:
    """The full (nao,)*4 tensor from PySCF's s8 packing (a gather with computed indices)."""
    i = jnp.arange(nao)
    ij = _tri(i[:, None], i[None, :])
    return eri8[_tri(ij[:, :, None, None], ij[None, None, :, :])]


def eri_s8(plan: EriPlan, basis: Basis, coords, omega=None) -> jax.Array:
    """Unique integrals packed as PySCF's ``mol.intor('int2e', aosym='s8')``.

    Element (ij|kl) with i >= j, k >= l, ij >= kl sits at ``ij*(ij+1)/2 + kl``, where
    ``ij = i*(i+1)/2 + j``.
    """
    return pack_s8(plan, basis, eri_blocks(plan, basis, coords, omega))


def eri_blocks(plan: EriPlan, basis: Basis, coords, omega=None) -> tuple:
    """The AO blocks (nq, na, nb, nc, nd) of every quartet class of a 4-centre ``plan``, in
    ``plan.classes`` order: what :func:`pack_s8` packs and :func:`blocks_energy` contracts (so
    that one forward pass, or one ``jax.vjp``, serves both)."""
    return tuple(v for _, _, v in class_blocks(plan, basis, coords, omega=omega))


def eri_blocks_pullback(plan: EriPlan, basis: Basis, coords, blocks_bar, omega=None):
    """The reverse pass of :func:`eri_blocks` in ``coords`` (the basis held fixed): dE/dR
    (natm, 3) for the cotangents ``blocks_bar`` of its blocks. Each class's cotangent goes back
    through the AO transform and the class kernel (:func:`.eri_kernel.class_cotangents`,
    written out for the small classes), summed per pair set, then through each pair set's
    Hermite expansion (:func:`.eri_kernel.hermite_pairs`, JAX's reverse pass) to the
    nuclei. Differentiable (forward mode: Hessians)."""
    data, pullbacks, bars = {}, {}, {}  # per (ket?, pair set): (p, P, G), its pullback, (dP, dG)

    def pairs(ps, key):
        if key not in data:
            data[key], pullbacks[key] = jax.vjp(
                lambda c: hermite_pairs(basis, c, ps, ket=key[0]), coords)
            bars[key] = (0.0, 0.0)
        return data[key]

    for cls, idx, rows, bar in zip(plan.classes, plan.index, plan.bra_rows, blocks_bar):
        bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
        bk, kk = (False, cls.bra), (True, cls.ket)
        hb, hk = pairs(bs, bk), pairs(ks, kk)
        ta, tb = _transforms(bs, basis.layout.cart)
        tc, td = _transforms(ks, basis.layout.cart)
        ct = jnp.einsum("qijkl,ai,bj,ck,dl->qabcd", bar, ta, tb, tc, td).reshape(
            cls.nq, hb[2].shape[2], hk[2].shape[2])
        d_pb, d_gb, d_pk, d_gk = class_cotangents(hb, hk, bs.la + bs.lb, ks.la + ks.lb, idx,
                                                  cls.nq, ct, omega, rows)
        bars[bk] = (bars[bk][0] + d_pb, bars[bk][1] + d_gb)
        bars[kk] = (bars[kk][0] + d_pk, bars[kk][1] + d_gk)
    return sum(pullbacks[key]((jnp.zeros_like(data[key][0]), *bars[key]))[0] for key in data)


def pack_s8(plan: EriPlan, basis: Basis, blocks) -> jax.Array:
    """PySCF's s8 packing (see :func:`eri_s8`) of :func:`eri_blocks`.

    Several elements of a block can share a packed slot (a diagonal shell pair holds (ab| and
    (ba|; a quartet of one pair with itself holds (ij|kl) and (kl|ij)): only the canonical one
    (i >= j, k >= l, ij >= kl there) is added, so the packing is a scatter-*add* and stays linear
    under AD (a scatter-set's derivative masks duplicates with operand-sized temporaries)."""
    n = basis.nao
    npair = n * (n + 1) // 2
    out = jnp.zeros(npair * (npair + 1) // 2, dtype=jnp.float64)
    for cls, quartets, v in zip(plan.classes, plan.quartets, blocks):
        i, j, k, l = _block_indices(_ao_offsets(plan, basis, None, cls, quartets), v.shape)
        bsh, ksh = _quartet_shells(plan, cls, quartets)
        ij = _tri(i, j)
        kl = _tri(k, l)
        keep = ((_col(bsh[:, 0] != bsh[:, 1]) | (i >= j))
                & (_col(ksh[:, 0] != ksh[:, 1]) | (k >= l))
                & (_col(quartets[:, 0] != quartets[:, 1]) | (cls.bra != cls.ket) | (ij >= kl)))
        out = out.at[_tri(ij, kl).ravel()].add(jnp.where(keep, v, 0.0).ravel())
    return out


def _quartet_shells(plan: EriPlan, cls: QuartetClass, quartets):
    """Shell indices (nq, 2) of the bra pair and of the ket pair of every quartet."""
    bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
    return jnp.asarray(bs.cls.shells)[quartets[:, 0]], jnp.asarray(ks.cls.shells)[quartets[:, 1]]


def _col(x):
    """Per-quartet (nq,) values broadcast against blocks (nq, na, nb, nc, nd)."""
    return x[:, None, None, None, None]


def _tri(i, j):
    """Packed lower-triangle index of (max, min)."""
    hi, lo = jnp.maximum(i, j), jnp.minimum(i, j)
    return hi * (hi + 1) // 2 + lo


def _add_windows(out, starts, blocks):
    """``out`` with each block added at its window: out[s_q0 : s_q0 + w0, s_q1 : ...] +=
    blocks[q] for ``starts`` (nq, k), ``blocks`` (nq, w0, ..., w_k-1). One index row per block,
    not per element (per-element indices, int64, took three times the blocks' memory:
    3.3 GB for caffeine/def2-TZVP's (ij|P)); its transpose is the gather of the windows."""
    k = starts.shape[1]
    dnums = jax.lax.ScatterDimensionNumbers(update_window_dims=tuple(range(1, k + 1)),
                                            inserted_window_dims=(),
                                            scatter_dims_to_operand_dims=tuple(range(k)))
    return jax.lax.scatter_add(out, starts, blocks, dnums,
                               mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)


def int3c2e(plan: EriPlan, basis: Basis, aux: Basis, coords, omega=None) -> jax.Array:
    """(ij|P) with P in the auxiliary basis, shape (nao, nao, naux) (PySCF ``int3c2e``)."""
    n, naux = basis.nao, aux.nao
    out = jnp.zeros((n, n, naux), dtype=jnp.float64)
    for cls, quartets, v in class_blocks(plan, basis, coords, aux, omega):
        i, j, p, _ = _ao_offsets(plan, basis, aux, cls, quartets)
        v = v[..., 0]
        bsh, _ = _quartet_shells(plan, cls, quartets)
        # A diagonal shell pair's block already holds both (ij| and (ji| (see pack_s8 on add).
        mirror = (bsh[:, 0] != bsh[:, 1])[:, None, None, None]
        out = _add_windows(out, jnp.stack([i, j, p], axis=1), v)
        out = _add_windows(out, jnp.stack([j, i, p], axis=1),
                           jnp.where(mirror, jnp.swapaxes(v, 1, 2), 0.0))
    return out


def pair_columns(plan: EriPlan, basis: Basis, ncol_b: int | None = None):
    """The columns of (ij|P) packed over the AO pairs of the shell pairs a "3c" ``plan`` keeps
    (host side, NumPy): each kept shell pair (i, j) owns na * nb consecutive columns, its block
    (a, b) row-major; (i, j) and (j, i) share them (a diagonal pair i = i keeps all na^2).

    Returns (``offsets``, ``cols``, ``ncol``): ``offsets`` per bra pair set, the first column
    of each of its pairs (-1: not kept); ``cols`` (nao, nao) int32, the column of every AO pair
    (pairs not kept: the last column, ``ncol_b - 1``, which stays zero); ``ncol`` the columns
    used. ``ncol_b`` (default ncol + 1) must exceed ncol."""
    loc = np.asarray(basis.layout.ao_loc)
    kept = [np.zeros(ps.cls.npair, bool) for ps in plan.bra_sets]
    for cls, q in zip(plan.classes, plan.quartets):
        kept[cls.bra][np.unique(np.asarray(q)[:, 0])] = True
    offsets, start = [], 0
    cols = np.full((basis.nao, basis.nao), -1, dtype=np.int64)
    for ps, k in zip(plan.bra_sets, kept):
        off = np.full(ps.cls.npair, -1, dtype=np.int64)
        for p in np.nonzero(k)[0]:
            i, j = ps.cls.shells[p]
            na, nb = loc[i + 1] - loc[i], loc[j + 1] - loc[j]
            block = start + np.arange(na * nb).reshape(na, nb)
            cols[loc[j]:loc[j + 1], loc[i]:loc[i + 1]] = block.T
            cols[loc[i]:loc[i + 1], loc[j]:loc[j + 1]] = block
            off[p] = start
            start += na * nb
        offsets.append(off)
    ncol_b = start + 1 if ncol_b is None else ncol_b
    if ncol_b <= start:
        raise ValueError(f"ncol_b = {ncol_b} leaves no zero column past {start}")
    cols[cols < 0] = ncol_b - 1
    return tuple(offsets), cols.astype(np.int32), start


def int3c2e_packed(plan: EriPlan, basis: Basis, aux: Basis, coords, offsets, shape,
                   omega=None) -> jax.Array:
    """(ij|P) as (naux, ncol) over the AO-pair columns of :func:`pair_columns` (``offsets``,
    per bra pair set, as device arrays), zero past the real ones in an array of ``shape``
    (naux_b >= naux, ncol_b > ncol): about half of :func:`int3c2e`'s (nao, nao, naux) without
    its screened pairs, written straight into its padded array. One program; for a tensor that
    fills the memory, :func:`add_packed_group` a group of quartets at a time."""
    out = jnp.zeros(shape, dtype=jnp.float64)
    for cls, quartets, v in class_blocks(plan, basis, coords, aux, omega):
        out = _add_packed(plan, basis, aux, cls, quartets, v, offsets, out)
    return out


def _add_packed(plan, basis, aux, cls, quartets, v, offsets, out):
    """``out`` (naux, ncol) + the (ij|P) blocks ``v`` (nq, na, nb, nc, 1) at their columns."""
    return _add_windows(out, _packed_starts(plan, basis, aux, cls, quartets, offsets),
                        _as_windows(v))


def _packed_starts(plan, basis, aux, cls, quartets, offsets):
    """(nq, 2): the first auxiliary row and packed column of each quartet's block."""
    _, _, p, _ = _ao_offsets(plan, basis, aux, cls, quartets)
    return jnp.stack([p, jnp.asarray(offsets[cls.bra])[quartets[:, 0]]], axis=1)


def _as_windows(v):
    """(ij|P) blocks (nq, na, nb, nc, 1) as their packed windows (nq, nc, na nb)."""
    nq, na, nb, nc = v.shape[:4]
    return jnp.moveaxis(v[..., 0].reshape(nq, na * nb, nc), 2, 1)


def packed_group_gradient(plan: EriPlan, basis: Basis, aux: Basis, coords, offsets, k: int,
                          group, abar, omega=None) -> jax.Array:
    """d/dR (natm, 3) of sum abar . (the group's packed (ij|P), :func:`add_packed_group`):
    the group's share of the integrals' reverse pass for a cotangent ``abar`` packed like
    them (its windows gathered as constants, so nothing of its size is formed)."""
    index, quartets = group
    sub = _group_class(plan.classes[k], group)

    def windows(c):
        return _as_windows(_class_values(plan, basis, aux, c, sub, index, omega))

    size = jax.eval_shape(windows, coords).shape[1:]
    dnums = jax.lax.GatherDimensionNumbers(offset_dims=(1, 2), collapsed_slice_dims=(),
                                           start_index_map=(0, 1))
    bar = jax.lax.gather(abar, _packed_starts(plan, basis, aux, sub, quartets, offsets), dnums,
                         size, mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)

    def contribution(c):
        return jnp.sum(windows(c) * bar)

    return jax.grad(contribution)(coords)


GROUP_BYTES = 256 * 2**20
"""AO values of one group of quartets of :func:`class_groups` (bytes, about)."""


def class_groups(plan: EriPlan, max_bytes: int | None = None) -> list:
    """A plan's classes cut into groups of whole chunks, each holding at most about
    ``max_bytes`` (default :data:`GROUP_BYTES`) of AO values (host side): [(class index,
    [(first chunk, first quartet, end quartet)], chunks per group, quartets per group)], all
    groups of a class one shape (a program per class); :func:`group_arrays` makes a group's
    arrays when it runs, so that the groups hold no second copy of the plan's index arrays. A
    quartet whose primitives straddle two groups is in both, each adding its part."""
    max_bytes = GROUP_BYTES if max_bytes is None else max_bytes
    out = []
    for k, (cls, idx) in enumerate(zip(plan.classes, plan.index)):
        bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
        per_quartet = 8 * 2 * ncart(bs.la) * ncart(bs.lb) * ncart(ks.la) * ncart(ks.lb)
        per_chunk = max(1.0, cls.nq / cls.nchunk) * per_quartet
        g = max(1, min(cls.nchunk, int(max_bytes // per_chunk)))
        if isinstance(idx, CompactIndex):
            cum, end = np.asarray(idx.cum)[:cls.nq + 1], int(idx.end)
            last = [min(end, (c0 + g) * cls.chunk) - 1 for c0 in range(0, cls.nchunk, g)]
            q1 = np.searchsorted(cum, last, side="right")  # one past the last position's quartet
            first = np.asarray(idx.first)
            spans = [(c0, int(first[c0]), int(e)) for c0, e in zip(range(0, cls.nchunk, g), q1)]
        else:
            qid = np.asarray(idx[2])
            spans = []
            for c0 in range(0, cls.nchunk, g):
                q = qid[c0:c0 + g]
                real = q[q < cls.nq]
                spans.append((c0, int(real.min()), int(real.max()) + 1))
        out.append((k, spans, g, max(q1 - q0 for _, q0, q1 in spans)))
    return out


def group_arrays(plan: EriPlan, k: int, span, g: int, nq_g: int) -> tuple:
    """(index, quartets) device arrays of one group of :func:`class_groups`: its chunks'
    (ip, iq, qid) (padded to ``g`` chunks) with the quartet ids made local to the group
    (padding: the discarded row ``nq_g``), or the group's :class:`CompactIndex`, and its
    quartets (nq_g, 2) (padded with its first, whose padding rows add zeros)."""
    cls = plan.classes[k]
    c0, q0, q1 = span
    quartets = np.asarray(plan.quartets[k])[q0:q1]
    quartets = np.concatenate([quartets, np.repeat(quartets[:1], nq_g - len(quartets), 0)])
    idx = plan.index[k]
    if isinstance(idx, CompactIndex):
        c = cls.chunk
        t0 = c0 * c
        cum = np.asarray(idx.cum)[q0:q1 + 1] - t0  # past the group: int32 max, then
        cum = np.concatenate([cum, np.full(nq_g + c + 1 - len(cum), np.iinfo(np.int32).max)])
        first = np.asarray(idx.first)[c0:c0 + g] - q0
        first = np.concatenate([first, np.zeros(g - len(first), first.dtype)])
        end = min(int(idx.end), (c0 + g) * c) - t0
        local = CompactIndex(*(jax.device_put(np.asarray(a, dtype=np.int32)) for a in (
            cum, first, end, quartets)), idx.bra_start, idx.ket_start, idx.ket_count, c)
        return local, local.quartets
    ip, iq, qid = (np.asarray(a)[c0:c0 + g] for a in idx)
    pad = ((0, g - len(ip)), (0, 0))
    ip, iq = np.pad(ip, pad), np.pad(iq, pad)
    qid = np.pad(qid, pad, constant_values=cls.nq)
    qid = np.where(qid < cls.nq, qid - q0, nq_g).astype(np.int32)
    return tuple(jax.device_put(a) for a in (ip, iq, qid)), jax.device_put(quartets)


def _group_class(cls: QuartetClass, group) -> QuartetClass:
    """The class ``cls`` cut to one group (index, quartets) of :func:`group_arrays`."""
    index, quartets = group
    return dataclasses.replace(cls, nq=quartets.shape[0], nchunk=chunk_count(index))


def add_packed_group(plan: EriPlan, basis: Basis, aux: Basis, coords, offsets, k: int, group,
                     out, omega=None) -> jax.Array:
    """``out`` (naux_b, ncol_b) + the (ij|P) of one group of class ``k``'s quartets
    (:func:`class_groups`), packed as :func:`int3c2e_packed`: the groups of every class summed
    into one array are that tensor (a program per class, ``k`` static; ``out`` donated by the
    caller, so that only one group's values are alive beside it)."""
    index, quartets = group
    sub = _group_class(plan.classes[k], group)
    v = _class_values(plan, basis, aux, coords, sub, index, omega)
    return _add_packed(plan, basis, aux, sub, quartets, v, offsets, out)


def int2c2e(plan: EriPlan, aux: Basis, coords, omega=None) -> jax.Array:
    """(P|Q) of the auxiliary basis, shape (naux, naux) (PySCF ``int2c2e``)."""
    n = aux.nao
    out = jnp.zeros((n, n), dtype=jnp.float64)
    for cls, quartets, v in class_blocks(plan, aux, coords, aux, omega):
        p, _, q, _ = _ao_offsets(plan, aux, aux, cls, quartets)
        v = v[:, :, 0, :, 0]
        mirror = ((quartets[:, 0] != quartets[:, 1]) | (cls.bra != cls.ket))[:, None, None]
        out = _add_windows(out, jnp.stack([p, q], axis=1), v)
        out = _add_windows(out, jnp.stack([q, p], axis=1),
                           jnp.where(mirror, jnp.swapaxes(v, 1, 2), 0.0))
    return out


def eri_energy(plan: EriPlan, basis: Basis, coords, dm_coul, dm_exch, c_exch, omega=None):
    """Two-electron energy from the unique shell quartets, without the (nao,)*4 tensor:

        E2 = 1/2 sum_ijkl (ij|kl) Dc_ij Dc_kl  -  c_exch sum_s sum_ijkl (ij|kl) Dx^s_il Dx^s_jk

    ``dm_coul`` (nao, nao) or None (no Coulomb term); ``dm_exch`` (nao, nao) or
    (nspin, nao, nao) or None (no exchange term); ``c_exch`` a scalar weight. The sum over all
    index orders is a sum over the unique shell quartets of the block times its number of
    distinct images, with the 2-particle density symmetrised over the 8 permutations. Its
    gradient with respect to ``coords`` (or exponents) is the ERI part of the analytic gradient
    at fixed densities: one reverse pass through the class kernels, no nao^4 cotangent (used by
    the forces)."""
    return blocks_energy(plan, basis, eri_blocks(plan, basis, coords, omega), dm_coul, dm_exch,
                         c_exch)


def blocks_energy(plan: EriPlan, basis: Basis, blocks, dm_coul, dm_exch, c_exch):
    """:func:`eri_energy` of precomputed :func:`eri_blocks` (linear in the blocks)."""
    dx = None if dm_exch is None else dm_exch.reshape((-1,) + dm_exch.shape[-2:])
    total = jnp.zeros(())
    for cls, quartets, v in zip(plan.classes, plan.quartets, blocks):
        i, j, k, l = _block_indices(_ao_offsets(plan, basis, None, cls, quartets), v.shape)
        gamma = jnp.zeros(v.shape)
        if dm_coul is not None:
            gamma = gamma + 0.5 * dm_coul[i, j] * dm_coul[k, l]
        if dx is not None:
            pair = dx[:, i, l] * dx[:, j, k] + dx[:, i, k] * dx[:, j, l]
            gamma = gamma - 0.5 * c_exch * jnp.sum(pair, axis=0)
        bsh, ksh = _quartet_shells(plan, cls, quartets)
        deg = (jnp.where(bsh[:, 0] != bsh[:, 1], 2.0, 1.0)
               * jnp.where(ksh[:, 0] != ksh[:, 1], 2.0, 1.0))
        if cls.bra == cls.ket:
            deg = deg * jnp.where(quartets[:, 0] != quartets[:, 1], 2.0, 1.0)
        else:
            deg = deg * 2.0
        total = total + jnp.sum(deg * jnp.sum(v * gamma, axis=(1, 2, 3, 4)))
    return total
