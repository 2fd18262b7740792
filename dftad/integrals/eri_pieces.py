"""Electron-repulsion integrals from compiled pieces that every molecule shares.

:mod:`.two_electron` evaluates a whole :class:`~.eri_plan.EriPlan` as one JAX function: under
``jax.jit`` that is one program per molecule, with the plan's shapes baked in. Here the same
integrals are driven from Python, chunk by chunk, through small jitted *pieces* whose shapes do
not depend on the molecule:

* :func:`_quartets` (and its reverse pass :func:`_quartets_grad`): the contracted integrals of
  one chunk of primitive quartets of a class (la, lb | lc, ld), from the raw data of each
  quartet's bra and ket primitive pair (exponents, centres, contraction coefficients, gathered
  on the host). A chunk holds B primitive quartets (fixed per class, :func:`chunk_size`) and
  whole contracted quartets only, so it is contracted inside the piece. These are the expensive
  pieces (the Hermite expansion and the Boys function), compiled once per class (and bucketed
  number of atoms) for every molecule and geometry.
* cheap pieces per chunk: the scatter of its AO blocks into PySCF's s8 packing
  (:func:`_pack`) and the two-particle density the gradient contracts (:func:`_gamma`), keyed by
  the class and the power-of-two bucket of nao.

Pieces are :class:`dftad.pieces.Piece` objects: kept in memory and, with the on-disk cache on,
as serialized executables that a later process loads without tracing or compiling.

Same formulas as :mod:`.eri_kernel` (:func:`~.eri_kernel.primitive_quartets`), the same plans,
the same numbers (``tests/test_pieces.py`` compares them to 1e-12). The whole-program path
stays for what differentiates through the integrals (implicit SCF derivatives, Hessians); this
one serves energies and forces driven from Python (:func:`dftad.energy.kernel_stepwise`,
:func:`dftad.forces.gradient_stepwise`): the first answer for a new molecule then compiles only
what it has not seen.
"""

from __future__ import annotations

import dataclasses
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, ao_transform, ncart, normalized_coefficients
from ..pieces import piece
from . import hermite
from .eri_kernel import hermite_of, primitive_quartets
from .eri_plan import MAX_CHUNK, EriPlan, PairSet, _chunk_size
from .two_electron import _bases, _block_indices, _tri, unpack_s8

RAW = 9
"""Columns of raw primitive-pair data: a, b, A (3), B (3), c'_a c'_b."""


def bucket(n: int, least: int = 8) -> int:
    """The power of two >= max(n, least): sizes padded to it share compiled pieces."""
    return max(least, 1 << max(0, int(n - 1).bit_length()))


# ---------------------------------------------------------------------- the pieces
def prim_pairs_of(rows) -> hermite.PrimPairs:
    """Gaussian product data of raw primitive-pair rows (:data:`RAW` columns), the coefficient
    times K_AB = exp(-ab/p |A - B|^2) (as :func:`.hermite.prim_pairs`)."""
    a, b, A, B, cc = rows[:, 0], rows[:, 1], rows[:, 2:5], rows[:, 5:8], rows[:, 8]
    ab = A - B
    k = jnp.exp(-a * b / (a + b) * jnp.sum(ab * ab, axis=-1))
    return hermite.PrimPairs(a, b, A, B, cc * k)


def _pairs(raw, la: int, lb: int, ket: bool):
    """(p, P, G) of raw primitive-pair rows."""
    return hermite_of(prim_pairs_of(raw), la, lb, ket)


def _chunk_integrals(ls, bra, ket, omega):
    la, lb, lc, ld = (max(l, 0) for l in ls)
    return primitive_quartets(_pairs(bra, la, lb, False), _pairs(ket, lc, ld, True), la + lb,
                              lc + ld, omega)


@piece((0,))
def _quartets(ls, bra, ket, local, omega):
    """Contracted cartesian integrals (B, nab, ncd) of a chunk: B primitive quartets with raw
    bra and ket pair rows ``bra``, ``ket`` (B, RAW), summed into the chunk's contracted quartets
    ``local`` (B,) (row r of the result: the chunk's r-th quartet); ``omega`` None (1/r12) or
    the erf attenuation."""
    v = _chunk_integrals(ls, bra, ket, omega)
    return jax.ops.segment_sum(v, local, num_segments=v.shape[0])


@piece((0, 7))
def _quartets_grad(ls, bra, ket, local, ct, atoms, omega, natm):
    """sum ct . d(integrals)/dR: the gradient (natm, 3) with respect to the nuclei for the
    cotangent ``ct`` (B, nab, ncd) of :func:`_quartets`; ``atoms`` (B, 4): the atoms of the
    centres A, B of each bra and of each ket pair."""

    def f(xb, xk):
        return _chunk_integrals(ls, bra.at[:, 2:8].set(xb), ket.at[:, 2:8].set(xk), omega)

    db, dk = jax.vjp(f, bra[:, 2:8], ket[:, 2:8])[1](ct[local])
    d = jnp.concatenate([db, dk], axis=1).reshape(-1, 3)  # (B * 4, 3) per centre
    return jnp.zeros((natm, 3)).at[atoms.reshape(-1)].add(d)


def _transforms(ls, cart):
    return [ao_transform(l, cart) if l >= 0 else np.ones((1, 1)) for l in ls]


def _to_ao(acc, ls, cart):
    """Cartesian class blocks (n, nab, ncd) to AO blocks (n, na, nb, nc, nd)."""
    t = _transforms(ls, cart)
    v = acc.reshape((acc.shape[0],) + tuple(x.shape[0] for x in t))
    return jnp.einsum("qabcd,ai,bj,ck,dl->qijkl", v, *t)


def _from_ao(g, ls, cart):
    """The transpose of :func:`_to_ao`: AO cotangents to cartesian ones (n, nab, ncd)."""
    t = _transforms(ls, cart)
    v = jnp.einsum("qijkl,ai,bj,ck,dl->qabcd", g, *t)
    return v.reshape(g.shape[0], v.shape[1] * v.shape[2], v.shape[3] * v.shape[4])


@piece((3, 4, 5), donate_argnums=(0,))
def _pack(s8, blocks, meta, ls, cart, same_set):
    """Add a chunk's contracted blocks (B, nab, ncd) to PySCF's s8 packing ``s8`` (only the
    canonical image of each element, as :func:`.two_electron.pack_s8`). ``meta`` (8, B): the
    four AO offsets, bra pair diagonal, ket pair diagonal, bra pair == ket pair, row valid."""
    v = _to_ao(blocks, ls, cart)
    i, j, k, l = _block_indices(meta[:4], v.shape)
    col = [m[:, None, None, None, None] != 0 for m in meta[4:]]
    ij, kl = _tri(i, j), _tri(k, l)
    keep = col[3] & (~col[0] | (i >= j)) & (~col[1] | (k >= l))
    if same_set:
        keep &= ~col[2] | (ij >= kl)
    dest = jnp.where(keep, _tri(ij, kl), s8.shape[0])
    return s8.at[dest.ravel()].add(v.ravel(), mode="drop")


@piece((4, 5, 6))
def _gamma(meta, dm_coul, dm_exch, c_exch, ls, cart, same_set):
    """The cotangent (B, nab, ncd) of a chunk's cartesian blocks for
    E2 = 1/2 sum (ij|kl) Dc_ij Dc_kl - c_exch sum_s (ij|kl) Dx_il Dx_jk (summed over all index
    orders, as :func:`.two_electron.blocks_energy`): the symmetrised two-particle density times
    each block's number of images, transformed back to cartesian functions."""
    shape = (meta.shape[1],) + tuple(x.shape[1] for x in _transforms(ls, cart))
    i, j, k, l = _block_indices(meta[:4], shape)
    gamma = jnp.zeros(shape)
    if dm_coul is not None:
        gamma = gamma + 0.5 * dm_coul[i, j] * dm_coul[k, l]
    if dm_exch is not None:
        dx = dm_exch.reshape((-1,) + dm_exch.shape[-2:])
        pair = dx[:, i, l] * dx[:, j, k] + dx[:, i, k] * dx[:, j, l]
        gamma = gamma - 0.5 * c_exch * jnp.sum(pair, axis=0)
    bdiag, kdiag, qdiag, valid = (m != 0 for m in meta[4:])
    deg = jnp.where(bdiag, 1.0, 2.0) * jnp.where(kdiag, 1.0, 2.0)
    deg = deg * (jnp.where(qdiag, 1.0, 2.0) if same_set else 2.0) * valid
    return _from_ao(gamma * deg[:, None, None, None, None], ls, cart)


_unpack_s8 = piece((1,))(unpack_s8)


# ---------------------------------------------------------------------- host-side layout
@dataclasses.dataclass
class Chunk:
    """One chunk of a class: primitive-pair rows of its quartets' bra and ket (B,) (padding -1),
    each one's contracted quartet within the chunk (B,), and ``meta`` (rows per contracted
    quartet, see :func:`_pack`)."""

    ip: np.ndarray
    iq: np.ndarray
    local: np.ndarray
    meta: np.ndarray


@dataclasses.dataclass
class _Class:
    ls: tuple  # (la, lb, lc, ld); -1 for the unit function of an auxiliary "pair"
    bra: int  # pair-set indices
    ket: int
    chunks: list


@dataclasses.dataclass
class _Layout:
    classes: list
    bra_sets: tuple
    ket_sets: tuple


_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _ls(ps: PairSet) -> tuple:
    return (ps.la, -1) if ps.single else (ps.la, ps.lb)


def chunk_size(ls) -> int:
    """Primitive quartets per chunk of the class ``ls``: the plan's chunk size for an unbounded
    class, so that it depends on the class alone."""
    from .hermite import hermite_indices

    lab, lcd = max(ls[0], 0) + max(ls[1], 0), max(ls[2], 0) + max(ls[3], 0)
    nab = ncart(ls[0]) * ncart(max(ls[1], 0))
    ncd = ncart(ls[2]) * ncart(max(ls[3], 0))
    hab, hcd = len(hermite_indices(lab)), len(hermite_indices(lcd))
    return min(_chunk_size(nab, ncd, hab, hcd, lab + lcd, 1 << 62), MAX_CHUNK)


def split(ip, iq, qid, meta, b: int) -> list[Chunk]:
    """Chunks of ``b`` primitive items (``ip``, ``iq``, sorted by their contracted item ``qid``)
    that never split a contracted item (``b`` is raised to a power of two holding the largest
    one); ``meta`` (m, nq): per contracted item, cut per chunk and padded with zeros."""
    nq = meta.shape[1]
    counts = np.bincount(qid, minlength=nq)
    b = max(b, bucket(int(counts.max(initial=1)), 1))
    cum = np.concatenate([[0], np.cumsum(counts)])
    out = []
    q = 0
    while q < nq:
        end = int(np.searchsorted(cum, cum[q] + b, side="right")) - 1
        lo, hi = cum[q], cum[end]

        def pad(x, fill, n=b):
            return np.concatenate([x, np.full(n - len(x), fill)]).astype(np.int32)

        m = np.zeros((meta.shape[0], b), np.int32)
        m[:, : end - q] = meta[:, q:end]
        out.append(Chunk(pad(ip[lo:hi], -1), pad(iq[lo:hi], -1), pad(qid[lo:hi] - q, 0), m))
        q = end
    return out


def _layout(plan: EriPlan, bra_basis: Basis, ket_basis: Basis) -> _Layout:
    """The plan's classes cut into :func:`split` chunks of :func:`chunk_size` (NumPy, once per
    plan)."""
    if plan in _LAYOUTS:
        return _LAYOUTS[plan]
    bloc = np.append(bra_basis.layout.ao_loc, 0)
    kloc = np.append(ket_basis.layout.ao_loc, 0)
    classes = []
    for cls, idx, quartets in zip(plan.classes, plan.index, plan.quartets):
        bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
        ip, iq, qid = (np.asarray(x).ravel() for x in idx)
        real = qid < cls.nq
        q = np.asarray(quartets)
        bsh, ksh = bs.cls.shells[q[:, 0]], ks.cls.shells[q[:, 1]]
        meta = np.stack([bloc[bsh[:, 0]], bloc[bsh[:, 1]], kloc[ksh[:, 0]], kloc[ksh[:, 1]],
                         bsh[:, 0] == bsh[:, 1], ksh[:, 0] == ksh[:, 1],
                         (q[:, 0] == q[:, 1]) & (cls.bra == cls.ket), np.ones(cls.nq)])
        ls = _ls(bs) + _ls(ks)
        chunks = split(ip[real], iq[real], qid[real], meta.astype(np.int32), chunk_size(ls))
        classes.append(_Class(ls, cls.bra, cls.ket, chunks))
    out = _Layout(classes, plan.bra_sets, plan.ket_sets)
    _LAYOUTS[plan] = out
    return out


def raw_pairs(basis: Basis, coords, ps: PairSet) -> tuple[np.ndarray, np.ndarray]:
    """Raw rows (a, b, A, B, c'_a c'_b) of the pair set's primitive pairs (NumPy, Bohr) and the
    atoms (n, 2) of their centres; a single shell paired with the unit function has b = 0,
    B = A."""
    lay = basis.layout
    atom = np.repeat(np.asarray(lay.shell_atom), lay.shell_nprim)
    exps = np.asarray(basis.exponents)
    coef = normalized_coefficients(basis, np)
    r = np.asarray(coords, dtype=np.float64)
    ia, ib = ps.cls.prims[:, 0], ps.cls.prims[:, 1]
    out = np.empty((len(ia), RAW))
    out[:, 0] = exps[ia]
    out[:, 2:5] = r[atom[ia]]
    if ps.single:
        ib = ia
        out[:, 1] = 0.0
        out[:, 8] = coef[ia]
    else:
        out[:, 1] = exps[ib]
        out[:, 8] = coef[ia] * coef[ib]
    out[:, 5:8] = r[atom[ib]]
    return out, np.stack([atom[ia], atom[ib]], axis=1).astype(np.int32)


def _rows(raw, idx):
    """The raw rows ``idx`` of a pair set (host gather); index -1 is a harmless padding row
    (a = b = 1, c = 0)."""
    out = raw[idx]
    out[idx < 0] = (1.0, 1.0) + (0.0,) * (RAW - 2)
    return out


# ---------------------------------------------------------------------- drivers
def pad_ao(a, nao_b: int) -> jax.Array | None:
    """``a`` (..., nao, nao) with zero rows and columns up to ``nao_b``, on the device (None
    stays None); ``device_put``, so no program is compiled per shape."""
    if a is None:
        return None
    a = np.asarray(a)
    n = nao_b - a.shape[-1]
    return jax.device_put(np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, n), (0, n)]))


def nao_bucket(nao: int) -> int:
    """The padded nao of the pieces that take AO-indexed arrays (at least 64, so that small
    molecules share them)."""
    return bucket(nao, 64)


# ---------------------------------------------------------------------- drivers
def chunk_blocks(plan: EriPlan, basis: Basis, coords, omega=None, aux: Basis | None = None):
    """Yield (class, chunk, contracted cartesian blocks (B, nab, ncd)) for every chunk of
    ``plan``; rows past the chunk's quartets are zero."""
    bra_basis, ket_basis = _bases(plan, basis, aux)
    lay = _layout(plan, bra_basis, ket_basis)
    raw_b = [raw_pairs(bra_basis, coords, ps)[0] for ps in lay.bra_sets]
    raw_k = [raw_pairs(ket_basis, coords, ps)[0] for ps in lay.ket_sets]
    omega = None if omega is None else jnp.asarray(omega, dtype=jnp.float64)
    for c in lay.classes:
        for ch in c.chunks:
            yield c, ch, _quartets(c.ls, _rows(raw_b[c.bra], ch.ip), _rows(raw_k[c.ket], ch.iq),
                                   ch.local, omega)


def eri(plan: EriPlan, basis: Basis, coords, omega=None, nao: int | None = None) -> jax.Array:
    """The full (nao,)*4 tensor (ij|kl) of a 4-centre ``plan`` (as
    :func:`.two_electron.eri`); ``nao`` >= the basis' nao pads it with zeros (at most
    :func:`nao_bucket` of it)."""
    npair = nao_bucket(basis.nao) * (nao_bucket(basis.nao) + 1) // 2
    s8 = jnp.asarray(np.zeros(npair * (npair + 1) // 2))
    cart = basis.layout.cart
    for c, ch, blocks in chunk_blocks(plan, basis, coords, omega):
        s8 = _pack(s8, blocks, ch.meta, c.ls, cart, c.bra == c.ket)
    return _unpack_s8(s8, basis.nao if nao is None else nao)


def gradient(plan: EriPlan, basis: Basis, coords, terms) -> jax.Array:
    """d E2 / d coords (natm, 3) (Hartree/Bohr) of the two-electron energy
    E2 = sum over ``terms`` (omega, dm_coul, dm_exch, c_exch) of
    :func:`.two_electron.eri_energy`, at fixed densities: the reverse pass through the class
    pieces (:func:`_quartets_grad`), chunk by chunk."""
    lay = _layout(plan, basis, basis)
    raw = [raw_pairs(basis, coords, ps) for ps in lay.bra_sets]
    natm = len(np.asarray(coords))
    natm_b = bucket(natm, 16)
    nao_b = nao_bucket(basis.nao)
    cart = basis.layout.cart
    grad = jnp.zeros((natm_b, 3))

    for omega, dm_coul, dm_exch, c_exch in terms:
        omega = None if omega is None else jnp.asarray(omega, dtype=jnp.float64)
        dm_coul, dm_exch = pad_ao(dm_coul, nao_b), pad_ao(dm_exch, nao_b)
        c_exch = jnp.asarray(c_exch, dtype=jnp.float64)
        for c in lay.classes:
            (rb, ab), (rk, ak) = raw[c.bra], raw[c.ket]
            for ch in c.chunks:
                ct = _gamma(ch.meta, dm_coul, dm_exch, c_exch, c.ls, cart, c.bra == c.ket)
                atoms = np.concatenate([ab[ch.ip], ak[ch.iq]], axis=1)
                grad = grad + _quartets_grad(c.ls, _rows(rb, ch.ip), _rows(rk, ch.iq), ch.local,
                                             ct, atoms, omega, natm_b)
    return np.asarray(grad)[:natm]


def schwarz(basis: Basis, coords, sets) -> list:
    """sqrt(max |(ab|ab)|) over the cartesian functions of every pair of every pair set
    (NumPy), by the class pieces on the diagonal quartets (ab|ab)."""
    out = []
    coords = np.asarray(coords, dtype=np.float64)
    for ps in sets:
        raw = raw_pairs(basis, coords, ps)[0]
        ls = _ls(ps) * 2
        n = ps.cls.npair
        start = np.searchsorted(ps.cls.pair_of_prim, np.arange(n + 1))
        counts = np.diff(start) ** 2
        qid = np.repeat(np.arange(n), counts)
        offset = np.arange(len(qid)) - np.repeat(np.cumsum(counts) - counts, counts)
        nk = np.repeat(np.diff(start), counts)
        ip, iq = start[qid] + offset // nk, start[qid] + offset % nk
        chunks = split(ip, iq, qid, np.arange(n)[None], chunk_size(ls))
        diag = np.zeros(n)
        for ch in chunks:
            v = np.asarray(_quartets(ls, _rows(raw, ch.ip), _rows(raw, ch.iq), ch.local, None))
            rows = ch.meta[0, : ch.local.max() + 1]
            diag[rows] = np.abs(np.diagonal(v[: len(rows)], axis1=1, axis2=2)).max(axis=1)
        out.append(np.sqrt(diag))
    return out
