"""Electron-repulsion integrals: 4-centre (ij|kl), 3-centre (ij|P) and 2-centre (P|Q).

McMurchie-Davidson (see :mod:`.hermite`). For primitive pairs ab (exponent p, centre P) and cd
(q, Q):

    (ab|cd) = 2 pi^(5/2) / (p q sqrt(p + q))
              sum_{tuv} E^{ab}_{tuv} sum_{t'u'v'} (-1)^(t'+u'+v') E^{cd}_{t'u'v'} R_{t+t',u+u',v+v'}(alpha, P - Q),
    alpha = p q / (p + q).

Organisation (DESIGN.md: setup on the Python side, pure JAX for the numbers):

* Shell pairs are grouped by angular momenta (la >= lb); a *quartet class* is a pair of pair
  classes. Only unique quartets are computed (8-fold symmetry: i >= j, k >= l, ij >= kl), and
  quartets whose Schwarz bound sqrt((ij|ij)(kl|kl)) is below ``threshold`` at the setup geometry
  are dropped (:func:`build_plan`). 3- and 2-centre integrals use the same kernel, with a
  "pair" made of one auxiliary shell and the unit function.
* Each class loops (``lax.scan``) over fixed-size chunks of primitive quartets: Hermite integrals
  R, two small batched matrix products, a scatter-add into the contracted quartets, then the
  cartesian-to-spherical transform. Shapes are static, memory per chunk is bounded, and the
  chunk body is rematerialised under reverse-mode AD.

The plan (:class:`EriPlan`) is a pytree: its index arrays are children (device arrays, not
compile-time constants) and its class structure is static, so ``jax.jit`` compiles once per
basis layout and plan and re-runs for any geometry, exponent or coefficient.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, BasisLayout, ao_transform, ncart, normalized_coefficients
from . import hermite
from .hermite import PairClass, PrimPairs

CHUNK_BYTES = 48 * 2**20
"""Working memory of one chunk of primitive quartets (bytes)."""

SCHWARZ_THRESHOLD = 1e-14
"""Quartets with sqrt((ij|ij)(kl|kl)) below this (Hartree) at the setup geometry are skipped."""

PRIM_THRESHOLD = 1e-16
"""Primitive pairs whose (ss|ss)-type bound |c_a c_b K_ab| sqrt(2 pi^2.5 / (p^2 sqrt(2p)))
is below this at the setup geometry are skipped."""


# ---------------------------------------------------------------------- pair sets
@dataclasses.dataclass(frozen=True, eq=False)
class PairSet:
    """A pair class of one basis (``single=False``) or single shells of a basis paired with the
    unit function (``single=True``, lb = 0), as used for auxiliary (density-fitting) functions."""

    cls: PairClass
    single: bool

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
    exps, coef, r = (np.asarray(x) for x in (basis.exponents, normalized_coefficients(basis), coords))
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


def _prim_data(basis: Basis, coords, ps: PairSet) -> PrimPairs:
    if not ps.single:
        return hermite.prim_pairs(basis, coords, ps.cls)
    lay = basis.layout
    atom_of_prim = np.repeat(np.asarray(lay.shell_atom), lay.shell_nprim)
    ia = ps.cls.prims[:, 0]
    a = basis.exponents[ia]
    A = coords[atom_of_prim[ia]]
    return PrimPairs(a, jnp.zeros_like(a), A, A, normalized_coefficients(basis)[ia])


def _transforms(ps: PairSet, cart: bool):
    tb = np.ones((1, 1)) if ps.single else ao_transform(ps.lb, cart)
    return ao_transform(ps.la, cart), tb


@functools.cache
def _sign(L: int) -> np.ndarray:
    return (-1.0) ** hermite.hermite_indices(L).sum(axis=1)


@functools.cache
def _r_index(lab: int, lcd: int) -> np.ndarray:
    """Flat index into the R cube (order L = lab + lcd) of (t+t', u+u', v+v'):
    shape (nherm(lab), nherm(lcd))."""
    hab, hcd = hermite.hermite_indices(lab), hermite.hermite_indices(lcd)
    return hermite.cube_index(lab + lcd, hab[:, None, :] + hcd[None, :, :])


def _hermite_pairs(basis, coords, ps: PairSet, ket: bool):
    """Per primitive pair: p, P and G = c K E^{ab}_{tuv} (npp, nherm, ncart_a * ncart_b)."""
    pp = _prim_data(basis, coords, ps)
    e3 = hermite.hermite_3d(hermite.cartesian_e(pp, ps.la, ps.lb), ps.la, ps.lb)
    g = e3 * pp.coef[:, None, None]
    if ket:
        g = g * _sign(ps.la + ps.lb)
    return pp.p, pp.P, jnp.swapaxes(g, 1, 2)


# ---------------------------------------------------------------------- the kernel
def _class_integrals(bra, ket, lab, lcd, ip, iq, qid, nq, omega=None):
    """Contracted cartesian integrals of one quartet class, (nq, nab, ncd).

    ``omega``: if given, the operator is erf(omega r12)/r12 (long-range Coulomb): alpha becomes
    alpha w^2 / (alpha + w^2) and the prefactor gains w / sqrt(alpha + w^2).

    ``bra``/``ket`` are (p, P, G) from :func:`_hermite_pairs`; ``ip``, ``iq``, ``qid`` are
    (nchunk, chunk) primitive-pair indices and contracted-quartet ids (``nq`` marks padding).
    """
    pb, Pb, Gb = bra
    pk, Pk, Gk = ket
    ridx = _r_index(lab, lcd)
    L = lab + lcd
    nab, ncd = Gb.shape[2], Gk.shape[2]

    @jax.checkpoint
    def chunk(acc, idx):
        i, j, q = idx
        p, qq = pb[i], pk[j]
        alpha = p * qq / (p + qq)
        pref = 2.0 * math.pi**2.5 / (p * qq * jnp.sqrt(p + qq))
        if omega is not None:
            w2 = omega * omega
            pref = pref * omega / jnp.sqrt(alpha + w2)
            alpha = alpha * w2 / (alpha + w2)
        r = hermite.hermite_r_cube(L, alpha, Pb[i] - Pk[j]).reshape(alpha.shape[0], -1)
        rm = r[:, ridx] * pref[:, None, None]  # (c, hab, hcd)
        tmp = jnp.einsum("ctu,cuk->ctk", rm, Gk[j])  # (c, hab, ncd)
        out = jnp.einsum("cta,ctk->cak", Gb[i], tmp)  # (c, nab, ncd)
        return acc.at[q].add(out), None

    acc = jnp.zeros((nq + 1, nab, ncd), dtype=jnp.float64)
    acc, _ = jax.lax.scan(chunk, acc, (ip, iq, qid))
    return acc[:nq]


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
    index: tuple  # per class: (ip, iq, qid) int32 arrays (nchunk, chunk)
    quartets: tuple  # per class: (nq, 2) int32 (bra pair id, ket pair id)

    def tree_flatten(self):
        return (self.index, self.quartets), (self.kind, self.bra_sets, self.ket_sets, self.classes)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux[0], aux[1], aux[2], aux[3], *children)


def _chunk_size(nab, ncd, hab, hcd, L, total):
    per = 8 * (hab * hcd + 2 * nab * hab + 2 * ncd * hcd + hab * ncd + 2 * nab * ncd + 3 * (L + 1) ** 3 + 16)
    c = max(16, min(4096, CHUNK_BYTES // per))
    c = 1 << int(math.log2(c))
    return max(1, min(c, 1 << max(0, math.ceil(math.log2(max(total, 1))))))


def _make_class(bra_i, ket_i, bs: PairSet, ks: PairSet, pairs: np.ndarray):
    """Primitive-quartet index lists for the contracted quartets ``pairs`` (nq, 2)."""
    bcls, kcls = bs.cls, ks.cls
    bstart = np.searchsorted(bcls.pair_of_prim, np.arange(bcls.npair + 1))
    kstart = np.searchsorted(kcls.pair_of_prim, np.arange(kcls.npair + 1))
    nb = np.diff(bstart)[pairs[:, 0]]
    nk = np.diff(kstart)[pairs[:, 1]]
    counts = nb * nk
    total = int(counts.sum())
    qid = np.repeat(np.arange(len(pairs)), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    nk_r = np.repeat(nk, counts)
    ip = bstart[pairs[:, 0]].repeat(counts) + offset // nk_r
    iq = kstart[pairs[:, 1]].repeat(counts) + offset % nk_r
    lab, lcd = bs.la + bs.lb, ks.la + ks.lb
    nab = ncart(bs.la) * ncart(bs.lb)
    ncd = ncart(ks.la) * ncart(ks.lb)
    hab, hcd = len(hermite.hermite_indices(lab)), len(hermite.hermite_indices(lcd))
    c = _chunk_size(nab, ncd, hab, hcd, lab + lcd, total)
    nchunk = max(1, -(-total // c))
    pad = nchunk * c - total
    ip = np.concatenate([ip, np.zeros(pad, int)]).reshape(nchunk, c).astype(np.int32)
    iq = np.concatenate([iq, np.zeros(pad, int)]).reshape(nchunk, c).astype(np.int32)
    qid = np.concatenate([qid, np.full(pad, len(pairs))]).reshape(nchunk, c).astype(np.int32)
    cls = QuartetClass(bra_i, ket_i, len(pairs), nchunk, c)
    return cls, (jnp.asarray(ip), jnp.asarray(iq), jnp.asarray(qid)), jnp.asarray(pairs.astype(np.int32))


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

    Remembered by value (:func:`_schwarz_key`): several setups of one molecule and basis (other
    functionals, restricted and unrestricted, density fitting) compile and run it once."""
    key = _schwarz_key(basis, coords, sets)
    if key not in _SCHWARZ_CACHE:
        if len(_SCHWARZ_CACHE) >= 32:
            _SCHWARZ_CACHE.pop(next(iter(_SCHWARZ_CACHE)))
        _SCHWARZ_CACHE[key] = _schwarz_uncached(basis, coords, sets)
    return [q.copy() for q in _SCHWARZ_CACHE[key]]


def _schwarz_uncached(basis, coords, sets):
    plans = []
    for ps in sets:
        n = ps.cls.npair
        plans.append(_make_class(0, 0, ps, ps, np.stack([np.arange(n), np.arange(n)], axis=1)))

    @jax.jit
    def diagonals(basis, coords, index):
        out = []
        for ps, (cls, _, _), idx in zip(sets, plans, index):
            h = _hermite_pairs(basis, coords, ps, ket=False)
            hk = _hermite_pairs(basis, coords, ps, ket=True)
            lab = ps.la + ps.lb
            v = _class_integrals(h, hk, lab, lab, *idx, cls.nq)
            out.append(jnp.abs(jnp.diagonal(v, axis1=1, axis2=2)).max(axis=1))
        return out

    diag = diagonals(basis, coords, [p[1] for p in plans])
    return [np.sqrt(np.asarray(d)) for d in diag]


def build_plan(basis: Basis, coords, aux: Basis | None = None, kind: str = "4c", threshold=SCHWARZ_THRESHOLD) -> EriPlan:
    """Plan the unique, non-negligible quartets for ``kind`` "4c", "3c" (needs ``aux``) or "2c"
    (of ``aux``, or of ``basis`` when ``aux`` is None). Screening uses the geometry ``coords``."""
    coords = jnp.asarray(coords, dtype=jnp.float64)
    def orbital_pairs():
        classes = _screen_prims(basis, coords, hermite.pair_classes(basis.layout), PRIM_THRESHOLD)
        return tuple(PairSet(c, False) for c in classes)

    if kind == "4c":
        bra_sets = orbital_pairs()
        ket_sets = bra_sets
        qb = qk = _schwarz(basis, coords, bra_sets)
        qk = qb
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
    classes, index, quartets = [], [], []
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
            if len(pairs) == 0:
                continue
            c, idx, q = _make_class(bi, ki, bs, ks, pairs)
            classes.append(c)
            index.append(idx)
            quartets.append(q)
    return EriPlan(kind, bra_sets, ket_sets, tuple(classes), tuple(index), tuple(quartets))


# ---------------------------------------------------------------------- class blocks
def class_blocks(plan: EriPlan, basis: Basis, coords, aux: Basis | None = None, omega=None):
    """Yield (QuartetClass, quartets, AO block (nq, na, nb, nc, nd)) for every class.

    ``omega`` (may be traced) selects the erf-attenuated operator erf(omega r12)/r12."""
    bra_basis = aux if plan.kind == "2c" and aux is not None else basis
    ket_basis = aux if plan.kind in ("3c", "2c") and aux is not None else basis
    cart = basis.layout.cart
    herm_b = {}
    herm_k = {}
    for cls, idx, quartets in zip(plan.classes, plan.index, plan.quartets):
        bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
        if cls.bra not in herm_b:
            herm_b[cls.bra] = _hermite_pairs(bra_basis, coords, bs, ket=False)
        if cls.ket not in herm_k:
            herm_k[cls.ket] = _hermite_pairs(ket_basis, coords, ks, ket=True)
        v = _class_integrals(herm_b[cls.bra], herm_k[cls.ket], bs.la + bs.lb, ks.la + ks.lb, *idx, cls.nq, omega)
        ta, tb = _transforms(bs, bra_basis.layout.cart)
        tc, td = _transforms(ks, ket_basis.layout.cart)
        v = v.reshape(cls.nq, ta.shape[0], tb.shape[0], tc.shape[0], td.shape[0])
        v = jnp.einsum("qabcd,ai,bj,ck,dl->qijkl", v, ta, tb, tc, td)
        yield cls, quartets, v
    del cart


def _ao_offsets(plan: EriPlan, basis: Basis, aux: Basis | None, cls: QuartetClass, quartets):
    """AO offsets (nq, 4) of the four functions of each quartet (-1 for the unit function)."""
    bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
    bra_basis = aux if plan.kind == "2c" and aux is not None else basis
    ket_basis = aux if plan.kind in ("3c", "2c") and aux is not None else basis
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
        keep = ((_col(bsh[:, 0] != bsh[:, 1]) | (i >= j)) & (_col(ksh[:, 0] != ksh[:, 1]) | (k >= l))
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


def int3c2e(plan: EriPlan, basis: Basis, aux: Basis, coords, omega=None) -> jax.Array:
    """(ij|P) with P in the auxiliary basis, shape (nao, nao, naux) (PySCF ``int3c2e``)."""
    n, naux = basis.nao, aux.nao
    out = jnp.zeros((n, n, naux), dtype=jnp.float64)
    for cls, quartets, v in class_blocks(plan, basis, coords, aux, omega):
        i, j, p, _ = _block_indices(_ao_offsets(plan, basis, aux, cls, quartets), v.shape)
        v = v[..., 0]
        i, j, p = i[..., 0], j[..., 0], p[..., 0]
        bsh, _ = _quartet_shells(plan, cls, quartets)
        # A diagonal shell pair's block already holds both (ij| and (ji| (see pack_s8 on add).
        mirror = (bsh[:, 0] != bsh[:, 1])[:, None, None, None]
        out = out.at[i, j, p].add(v).at[j, i, p].add(jnp.where(mirror, v, 0.0))
    return out


def int2c2e(plan: EriPlan, aux: Basis, coords, omega=None) -> jax.Array:
    """(P|Q) of the auxiliary basis, shape (naux, naux) (PySCF ``int2c2e``)."""
    n = aux.nao
    out = jnp.zeros((n, n), dtype=jnp.float64)
    for cls, quartets, v in class_blocks(plan, aux, coords, aux, omega):
        p, _, q, _ = _block_indices(_ao_offsets(plan, aux, aux, cls, quartets), v.shape)
        v = v[:, :, 0, :, 0]
        p, q = p[:, :, 0, :, 0], q[:, :, 0, :, 0]
        mirror = ((quartets[:, 0] != quartets[:, 1]) | (cls.bra != cls.ket))[:, None, None]
        out = out.at[p, q].add(v).at[q, p].add(jnp.where(mirror, v, 0.0))
    return out


def eri_energy(plan: EriPlan, basis: Basis, coords, dm_coul, dm_exch, c_exch, omega=None):
    """Two-electron energy from the unique shell quartets, without the (nao,)*4 tensor:

        E2 = 1/2 sum_ijkl (ij|kl) Dc_ij Dc_kl  -  c_exch sum_s sum_ijkl (ij|kl) Dx^s_il Dx^s_jk

    ``dm_coul`` (nao, nao) or None (no Coulomb term); ``dm_exch`` (nao, nao) or
    (nspin, nao, nao) or None (no exchange term); ``c_exch`` a scalar weight. The sum over all
    index orders is a sum over the unique shell quartets of the block times its number of
    distinct images, with the 2-particle density symmetrised over the 8 permutations. Its gradient with respect to ``coords``
    (or exponents) is the ERI part of the analytic gradient at fixed densities: one reverse pass
    through the class kernels, no nao^4 cotangent (used by the forces)."""
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
            gamma = gamma - 0.5 * c_exch * jnp.sum(dx[:, i, l] * dx[:, j, k] + dx[:, i, k] * dx[:, j, l], axis=0)
        bsh, ksh = _quartet_shells(plan, cls, quartets)
        deg = jnp.where(bsh[:, 0] != bsh[:, 1], 2.0, 1.0) * jnp.where(ksh[:, 0] != ksh[:, 1], 2.0, 1.0)
        if cls.bra == cls.ket:
            deg = deg * jnp.where(quartets[:, 0] != quartets[:, 1], 2.0, 1.0)
        else:
            deg = deg * 2.0
        total = total + jnp.sum(deg * jnp.sum(v * gamma, axis=(1, 2, 3, 4)))
    return total
