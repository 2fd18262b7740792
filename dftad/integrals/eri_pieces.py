"""Electron-repulsion integrals from compiled pieces that every molecule shares.

:mod:`.two_electron` evaluates a whole :class:`~.eri_plan.EriPlan` as one JAX function: under
``jax.jit`` that is one program per molecule, with the plan's shapes baked in. Here the same
integrals are driven from Python, chunk by chunk, through small jitted *pieces* whose shapes do
not depend on the molecule:

* :func:`_hermite` (and its reverse pass :func:`_hermite_grad`): the Hermite expansion
  (p, P, G = c K E) of a block of :data:`PAIR_BLOCK` primitive pairs of a pair class (la, lb),
  from their raw data (exponents, centres, contraction coefficients). Computed once per pair
  set and geometry, kept on the host (:class:`HermiteRows`), gathered per chunk.
* :func:`_hermite_r`: the expensive part of a chunk of B primitive quartets (fixed per class,
  :func:`chunk_size`), the Boys function and the Hermite integrals R_tuv(alpha, P - Q) with
  their prefactor, keyed by the order L alone: the classes of one order share it (water's 21
  classes in def2-SVP need 11 programs, and the reverse pass of order L takes the forward piece
  of order L + 1).
* :func:`_quartets_to_s8` (and the reverse pass :func:`_quartets_grad`, written out): the
  contracted integrals of one chunk of a class (la, lb | lc, ld) from that R and the Hermite
  coefficients G of each quartet's bra and ket pair (:func:`_contract`: R G_ket per quartet,
  summed over the ket's primitives, then the bra's G once per bra primitive pair of each
  contracted quartet; a chunk holds whole contracted quartets only), added to PySCF's s8
  packing; keyed by the class and the power-of-two bucket of nao. Small programs per class.
  The reverse pass contracts the chunk's two-particle density (:func:`_gamma`) and stops at
  the pair data (the cotangents of P and G, summed per distinct pair of the chunk inside the
  piece, then per primitive pair on the host); the pair pieces take them to the nuclei. A
  chunk has room for B quartets but holds fewer groups (and contracted quartets): the
  forward piece's work per group (the bra's transform, the AO transform, the s8 scatter)
  runs in a ``while`` loop over the real groups only (:func:`_over_blocks`), not over B.
  The reverse pass stays per primitive quartet: the same loop there cost more compile time
  than it saved at run time for the molecules a cold start meets.

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
import functools
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, ao_transform, ncart, normalized_coefficients
from ..pieces import in_repeated_job, piece, quick_for, zeros
from . import hermite
from .eri_kernel import _sign, alpha_and_prefactor, as_omega
from .eri_plan import MAX_CHUNK, EriPlan, PairSet, _chunk_size
from .two_electron import _block_indices, _tri, unpack_s8

RAW = 9
"""Columns of raw primitive-pair data: a, b, A (3), B (3), c'_a c'_b."""

PAIR_BLOCK = 512
"""Primitive pairs per call of the pair pieces (:func:`_hermite`, :func:`_hermite_grad`)."""


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


def group(la: int) -> int:
    """The angular momentum L of the pieces that compute a pair class (la, lb <= la) (here the
    pair pieces, and :mod:`.one_electron_pieces`' classes): both shells' cartesian components
    padded to those of L (their powers and AO transforms are data, zero past the class's own,
    :func:`padded_shell`), so that classes share one compiled piece. The s, p and d classes
    share the d piece (one program instead of six); f and g classes have their own."""
    return max(la, 2)


def padded_shell(l: int, L: int, cart: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian powers (ncart(L), 3) of shell l (zero rows past its own) and its AO transform
    (ncart(L), nfun(L)), zero past its own (ncart(l), nfun(l)) block."""
    pows = np.zeros((ncart(L), 3), np.int32)
    pows[: ncart(l)] = hermite.cart_powers(l)
    t = ao_transform(l, cart)
    out = np.zeros((ncart(L), ao_transform(L, cart).shape[1]))
    out[: t.shape[0], : t.shape[1]] = t
    return pows, out


@functools.cache
def _pair_pows(la: int, lb: int) -> np.ndarray:
    """(2, ncart(L), 3) powers of a pair class padded to its :func:`group`."""
    L = group(la)
    return np.stack([padded_shell(la, L, False)[0], padded_shell(lb, L, False)[0]])


def _expansion(L: int, raw, centres, pows):
    """(P, G) (G: (n, nherm(2L), ncart(L)^2), padded) of raw rows with their centres A, B
    (columns 2:8) replaced by ``centres``."""
    pp = prim_pairs_of(raw.at[:, 2:8].set(centres))
    e3 = hermite.hermite_3d_of(hermite.cartesian_e(pp, L, L), pows[0], pows[1], 2 * L)
    g = e3.reshape(e3.shape[0], -1, e3.shape[-1]) * pp.coef[:, None, None]
    return pp.P, jnp.swapaxes(g, 1, 2)


@piece((0,))
def _hermite(L, raw, pows):
    """(p, P, G) (:func:`.eri_kernel.hermite_of`, G without the ket sign) of a block of raw
    primitive-pair rows (:data:`PAIR_BLOCK`, :data:`RAW`) of a pair class of the group L
    (:func:`group`), its cartesian components ``pows`` (:func:`_pair_pows`): G padded to
    (n, nherm(2L), ncart(L)^2) (:meth:`HermiteRows.of` cuts the class's part)."""
    return (raw[:, 0] + raw[:, 1],) + _expansion(L, raw, raw[:, 2:8], pows)


@piece((0, 6))
def _hermite_grad(L, raw, pows, d_p, d_g, atoms, natm):
    """The gradient (natm, 3) for the cotangents ``d_p`` (n, 3) of P and ``d_g`` of G (padded
    as :func:`_hermite`'s) of a block of raw rows; ``atoms`` (n, 2): the atoms of the centres
    A, B."""
    vjp = jax.vjp(lambda x: _expansion(L, raw, x, pows), raw[:, 2:8])[1]
    d = vjp((d_p, d_g))[0].reshape(-1, 3)  # (n * 2, 3) per centre
    return jnp.zeros((natm, 3)).at[atoms.reshape(-1)].add(d)


@piece((0,))
def _hermite_tangent(L, raw, pows, d_centres):
    """(dP, dG): the derivative of :func:`_hermite`'s (P, G) along a displacement of the
    centres, ``d_centres`` (n, 6) (dA, dB per row; Bohr)."""
    return jax.jvp(lambda x: _expansion(L, raw, x, pows), (raw[:, 2:8],), (d_centres,))[1]


@piece((0, 6), donate_argnums=(7,))
def _hermite_hessian(L, raw, pows, d_p, d_g, atoms, natm, hess):
    """``hess`` (natm * 3, natm * 3) plus the second derivatives of the pair expansion of a
    block of raw rows contracted with the cotangents ``d_p``, ``d_g`` (as
    :func:`_hermite_grad`'s), each row's 6 x 6 block (its centres A, B) at its atoms' rows
    (forward over reverse along the :data:`LOCAL` displacements)."""
    def grad(x):
        return jax.vjp(lambda y: _expansion(L, raw, y, pows), x)[1]((d_p, d_g))[0]

    x0 = raw[:, 2:8]
    units = jnp.broadcast_to(jnp.eye(LOCAL)[:, None, :], (LOCAL,) + x0.shape)
    d = jax.vmap(lambda t: jax.jvp(grad, (x0,), (t,))[1])(units)  # (6 columns, n, 6 rows)
    return _add_square(hess, _local_index(atoms, natm), jnp.transpose(d, (1, 2, 0)))


def _orders(ls) -> tuple[int, int]:
    """(la + lb, lc + ld) of a class (-1, the unit function of an auxiliary "pair", counts 0)."""
    la, lb, lc, ld = (max(l, 0) for l in ls)
    return la + lb, lc + ld


@functools.cache
def _r_columns(lab: int, lcd: int, axis: int | None = None) -> np.ndarray:
    """Columns (nherm(lab), nherm(lcd)) of :func:`_hermite_r`'s R of order lab + lcd (of order
    lab + lcd + 1 with ``axis``: one order up along it) that the bra and ket Hermite indices
    (t, u, v), (t', u', v') take: (t + t', u + u', v + v') (+ 1 along ``axis``)."""
    hab, hcd = hermite.hermite_indices(lab), hermite.hermite_indices(lcd)
    tuv = hab[:, None, :] + hcd[None, :, :]
    if axis is not None:
        tuv = tuv + np.eye(3, dtype=np.int64)[axis]
    cube = hermite.hermite_position(lab + lcd + (axis is not None))
    return cube[tuv[..., 0], tuv[..., 1], tuv[..., 2]]


@functools.cache
def _shifted(lab: int, lcd: int) -> tuple[np.ndarray, np.ndarray]:
    """(S (hab hcd, nherm(L)), up (3, nherm(L))) for sum_tt' W_tt' R_{t+t'+1_x} with
    L = lab + lcd: S sums W over the (t, t') of one t + t' (0/1 entries), ``up`` holds the
    column of R (order L + 1) of t + t' + 1_x."""
    cols = _r_columns(lab, lcd).ravel()
    up = np.stack([_r_columns(lab + lcd, 0, x)[:, 0] for x in range(3)])
    to_sum = np.zeros((len(cols), up.shape[1]))
    to_sum[np.arange(len(cols)), cols] = 1.0
    return to_sum, up


def _expand(pairs):
    """Per-quartet data from (the distinct pairs' data (a tuple), each quartet's row among
    them)."""
    data, row = pairs
    return tuple(x[row] for x in data)


@piece((0,))
def _hermite_r(L, bra, ket, omega):
    """pref R_tuv(alpha, P - Q), t + u + v <= L, (B, nherm(L)) of a chunk's B primitive
    quartets (:func:`.eri_kernel.alpha_and_prefactor`); ``bra``, ``ket``: ((p, P) of the
    chunk's distinct pairs, each quartet's row among them). The expensive part of a class (the
    Boys function and the R recursion), keyed by the order L alone: every class of that order
    (and, one order up, the reverse pass of the classes below) shares it."""
    (p, P), (q, Q) = _expand(bra), _expand(ket)
    alpha, pref = alpha_and_prefactor(p, q, omega)
    return hermite.hermite_r(L, alpha, P - Q) * pref[:, None]


def _signed_ket(ket_g, lcd):
    """Each quartet's ket G with (-1)^(t'+u'+v') on its Hermite index."""
    return _expand(ket_g)[0] * _sign(lcd)[:, None]


ROW_BLOCK = 256
"""Rows per step of the loops over a chunk's real rows (:func:`_over_blocks`)."""


def _over_blocks(count, size: int, step, init):
    """``init`` passed through ``step(start, size, acc)`` for the blocks of ``size`` rows that
    hold the first ``count`` (traced) rows: a ``while`` loop whose trip count is data, so that
    the work on a chunk's real rows (often a fraction of the rows it has room for) is done on
    those only."""
    return jax.lax.fori_loop(0, (count + size - 1) // size,
                             lambda b, acc: step(b * size, size, acc), init)


def _ket_contracted(r, ket_g, groups, lab: int, lcd: int):
    """Y_g = sum_{quartets c of group g} R_c G_ket,c (B, hab, ncd): the ket's primitives
    summed per group (one bra primitive pair of one contracted quartet, :class:`Chunk`)."""
    rm = r[:, _r_columns(lab, lcd)]  # (B, hab, hcd)
    x = jnp.einsum("ctu,cuk->ctk", rm, _signed_ket(ket_g, lcd))
    return jax.ops.segment_sum(x, groups[0], num_segments=x.shape[0])


def _per_group(ls, r, bra_g, ket_g, groups, step, init):
    """``init`` passed through ``step(v, local, acc)`` for the blocks of a chunk's real
    groups (:attr:`Chunk.groups`; :func:`_over_blocks`): v (size, nab, ncd) = G_bra,g^T Y_g
    (zero for padding groups), local: each group's contracted quartet."""
    lab, lcd = _orders(ls)
    y = _ket_contracted(r, ket_g, groups, lab, lcd)
    _, g_row, g_local, count = groups
    g_bra = bra_g[0][0]

    def block(start, size, acc):
        def cut(a):
            return jax.lax.dynamic_slice_in_dim(a, start, size)

        real = (start + jnp.arange(size) < count)[:, None, None]
        v = jnp.einsum("gta,gtk->gak", g_bra[cut(g_row)], cut(y) * real)
        return step(v, cut(g_local), acc)

    return _over_blocks(count, min(ROW_BLOCK, y.shape[0]), block, init)


def _contract(ls, r, bra_g, ket_g, groups):
    """Contracted cartesian integrals (B, nab, ncd) of a chunk (:func:`.eri_kernel.
    primitive_quartets` with R given): ``r`` from :func:`_hermite_r`, ``bra_g``, ``ket_g``:
    ((G of the chunk's distinct pairs,), each quartet's row), ``groups``: :attr:`Chunk.groups`.
    The ket's primitives are summed first (:func:`_ket_contracted`), so the bra's transform
    runs once per group, sum_g G_bra,g^T Y_g into the group's contracted quartet (row r of the
    result: the chunk's r-th quartet), not once per primitive quartet (:func:`_per_group`)."""
    shape = (len(groups[0]), bra_g[0][0].shape[2], ket_g[0][0].shape[2])
    return _per_group(ls, r, bra_g, ket_g, groups, lambda v, local, out: out.at[local].add(v),
                      jnp.zeros(shape))


@piece((0, 1, 2))
def _quartets_grad(ls, cart, same_set, r1, bra_g, ket_g, local, meta, dm_coul, dm_exch,
                   c_exch):
    """The cotangents (dP, dG of the distinct bra pairs, dP, dG of the distinct ket pairs) of
    the pair data for E2 (:func:`_gamma`) over a chunk, the reverse pass of :func:`_contract`
    written out: with ct the cotangent of a quartet's (ab|cd), W = G_bra^T ct G_ket,

        dG_bra = (R G_ket) ct^T,  dG_ket = R^T (G_bra ct),
        dP_x = sum_tt' W_tt' pref R_{t+t'+1_x} = -dQ_x,

    R one order up (``r1``: :func:`_hermite_r` of order lab + lcd + 1) giving the derivative
    in P - Q; alpha and the prefactor do not depend on the centres. Per primitive quartet
    (``local``: each one's contracted quartet), without the forward pass's loop over groups
    (:func:`_contract`): that loop made the 21 reverse-pass programs of a cold water run
    ~1.5 s of CPU dearer to compile, for 15-25% of their run time."""
    ct = _gamma(meta, dm_coul, dm_exch, c_exch, ls, cart, same_set)[local]  # (B, nab, ncd)
    d_p, d_gb, d_gk = _cotangents(ls, r1, _expand(bra_g)[0], _expand(ket_g)[0], ct)
    return _row_sums(bra_g, ket_g, d_p, d_gb, d_gk)


def _cotangents(ls, r1, gb, gk, ct):
    """Per primitive quartet, the cotangents (dP (B, 3), dG_bra (B, hab, nab), dG_ket (B, hcd,
    ncd)) of its pair data for the cotangent ``ct`` of its cartesian block (:func:`_quartets_grad`'s
    formulas; ``gb``, ``gk``: each quartet's G, the ket's without its sign; dQ = -dP)."""
    lab, lcd = _orders(ls)
    b = r1.shape[0]
    gk = gk * _sign(lcd)[:, None]
    rm = r1[:, _r_columns(lab, lcd)]
    d_gb = jnp.einsum("ctk,cak->cta", jnp.einsum("ctu,cuk->ctk", rm, gk), ct)
    u = jnp.einsum("cta,cak->ctk", gb, ct)  # (B, hab, ncd)
    d_gk = jnp.einsum("ctu,ctk->cuk", rm, u) * _sign(lcd)[:, None]
    w = jnp.einsum("ctk,cuk->ctu", u, gk)  # (B, hab, hcd)
    to_sum, up = _shifted(lab, lcd)
    d_p = jnp.einsum("cn,cxn->cx", w.reshape(b, -1) @ to_sum, r1[:, up])
    return d_p, d_gb, d_gk


def _row_sums(bra_g, ket_g, d_p, d_gb, d_gk):
    """:func:`_cotangents` summed per distinct pair row of the chunk: (dP, dG of the bra's
    rows, dP, dG of the ket's rows)."""
    def rows(pairs, d):
        data, row = pairs
        return jnp.zeros((data[0].shape[0],) + d.shape[1:]).at[row].add(d)

    return rows(bra_g, d_p), rows(bra_g, d_gb), rows(ket_g, -d_p), rows(ket_g, d_gk)


LOCAL = 6
"""Local displacements of a primitive pair: its centres A and B along x, y, z (the pair
pieces' ``d_centres`` columns)."""


def _local_index(atoms, natm: int):
    """(n, 6) rows of the Hessian (atom * 3 + x, in a natm * 3 square) that a pair's
    :data:`LOCAL` displacements move, from its centres' atoms ``atoms`` (n, 2)."""
    return (jnp.repeat(atoms, 3, axis=1) * 3 + jnp.tile(jnp.arange(3), 2)).astype(jnp.int32)


def _translated(d_bra, d_ket):
    """Derivatives along the 12 local displacements of a quartet's centres A, B, C, D (x, y, z
    each) from those along the first 9 (``d_bra``: A, B; ``d_ket``: C): the integrals depend on
    the centres' differences alone, so d/dD = -(d/dA + d/dB + d/dC)."""
    return jnp.concatenate([d_bra, d_ket, -(d_bra[:3] + d_bra[3:] + d_ket)])


def _add_square(hess, idx, h):
    """``hess`` (N, N) plus the blocks ``h`` (n, k, k) at rows and columns ``idx`` (n, k)."""
    n = hess.shape[0]
    flat = (idx[:, :, None] * n + idx[:, None, :]).ravel()
    return hess.reshape(-1).at[flat].add(h.ravel()).reshape(n, n)


@piece((0, 1, 2, 3), donate_argnums=(16,))
def _quartets_hessian(ls, cart, same_set, natm, r2, bra_g, bra_t, bra_atoms, ket_g, ket_t,
                      ket_atoms, local, meta, dm_coul, dm_exch, c_exch, hess):
    """A chunk's part of the Hessian of E2 (:func:`_gamma`) at fixed densities through the
    pair data, and :func:`_quartets_grad`'s cotangents: (those cotangents, ``hess`` (N, N),
    N = natm * 3, plus sum_q J_q^T (d^2 E_q / d pair data^2) J_q), J_q the derivatives of
    quartet q's bra and ket pair data along their 12 local displacements (``bra_t``, ``ket_t``:
    ((dP (n, 6, 3), dG (n, 6, ...)) of the distinct rows, each quartet's row),
    :meth:`HermiteRows.local_tangents`), added at the rows of the quartet's 4 centres' atoms
    (``bra_atoms``, ``ket_atoms`` (n, 2) per distinct row). Per quartet: its local gradient
    g_i = J_i . c_q (c_q: :func:`_cotangents`), differentiated in forward mode along 9 of the
    12 local displacements (the bra's 6 move R and G_bra, the ket's first centre's 3 R and
    G_ket; dR from R one order up, ``r2`` of order lab + lcd + 2), the 4th centre's by
    translation (:func:`_translated`). The pair data's own second derivatives, the other term,
    are :meth:`HermiteRows.hessian`'s."""
    lab, lcd = _orders(ls)
    ct = _gamma(meta, dm_coul, dm_exch, c_exch, ls, cart, same_set)[local]  # (B, nab, ncd)
    l1 = lab + lcd + 1
    r1 = r2[:, : len(hermite.hermite_indices(l1))]
    r2x = r2[:, np.stack([_r_columns(l1, 0, x)[:, 0] for x in range(3)])]  # (B, 3, nherm(l1))
    gb, gk = _expand(bra_g)[0], _expand(ket_g)[0]
    (tb_p, tb_g), (tk_p, tk_g) = _expand(bra_t), _expand(ket_t)  # (B, 6, 3), (B, 6, h, n)

    def local_grad(r, gb, gk):  # (B, 12): dE_q along each local displacement
        d_p, d_gb, d_gk = _cotangents(ls, r, gb, gk, ct)
        g_b = jnp.einsum("cix,cx->ci", tb_p, d_p) + jnp.einsum("cita,cta->ci", tb_g, d_gb)
        g_k = jnp.einsum("ciuk,cuk->ci", tk_g, d_gk) - jnp.einsum("cix,cx->ci", tk_p, d_p)
        return jnp.concatenate([g_b, g_k], axis=1)

    dr_b = jnp.einsum("cxn,cjx->jcn", r2x, tb_p)  # dR along the bra's displacements
    dr_k = -jnp.einsum("cxn,cjx->jcn", r2x, tk_p[:, :3])  # ... and the ket's first centre's
    h_b = jax.vmap(lambda dr, dg: jax.jvp(lambda r, g: local_grad(r, g, gk), (r1, gb),
                                          (dr, dg))[1])(dr_b, jnp.swapaxes(tb_g, 0, 1))
    h_k = jax.vmap(lambda dr, dg: jax.jvp(lambda r, g: local_grad(r, gb, g), (r1, gk),
                                          (dr, dg))[1])(dr_k, jnp.swapaxes(tk_g[:, :3], 0, 1))
    h = jnp.transpose(_translated(h_b, h_k), (1, 2, 0))  # (B, 12 rows, 12 columns)
    idx = jnp.concatenate([_local_index(bra_atoms[bra_g[1]], natm),
                           _local_index(ket_atoms[ket_g[1]], natm)], axis=1)
    d = _row_sums(bra_g, ket_g, *_cotangents(ls, r1, gb, gk, ct))
    return d, _add_square(hess, idx, h)


def _transforms(ls, cart):
    return [ao_transform(l, cart) if l >= 0 else np.ones((1, 1)) for l in ls]


def _scalar(t) -> float | None:
    """c where the transform ``t`` is c times the identity (s and p functions), else None."""
    if t.shape[0] != t.shape[1] or not np.array_equal(t, t[0, 0] * np.eye(len(t))):
        return None
    return float(t[0, 0])


def _legs(v, ts, transpose: bool):
    """``v`` (n, a, b, c, d) with the transform ``ts[k]`` applied to axis k + 1 (``transpose``:
    its transpose); a leg whose transform is a multiple of the identity only scales (fewer
    operations to run and to compile for the classes of s and p shells)."""
    scale = 1.0
    for k, t in enumerate(ts):
        c = _scalar(t)
        if c is not None:
            scale *= c
            continue
        v = jnp.moveaxis(jnp.tensordot(v, t.T if transpose else t, axes=([k + 1], [0])), -1, k + 1)
    return v * scale


def _to_ao(acc, ls, cart):
    """Cartesian class blocks (n, nab, ncd) to AO blocks (n, na, nb, nc, nd)."""
    t = _transforms(ls, cart)
    return _legs(acc.reshape((acc.shape[0],) + tuple(x.shape[0] for x in t)), t, False)


def _from_ao(g, ls, cart):
    """The transpose of :func:`_to_ao`: AO cotangents to cartesian ones (n, nab, ncd)."""
    v = _legs(g, _transforms(ls, cart), True)
    return v.reshape(g.shape[0], v.shape[1] * v.shape[2], v.shape[3] * v.shape[4])


_quartets = piece((0,))(_contract)
"""The contracted cartesian integrals of a chunk, as a piece (for :func:`schwarz`)."""


@piece((1, 2, 3), donate_argnums=(0,))
def _quartets_to_s8(s8, ls, cart, same_set, r, bra_g, ket_g, groups, meta):
    """Add a chunk's integrals (:func:`_contract`) to PySCF's s8 packing ``s8`` (only the
    canonical image of each element, as :func:`.two_electron.pack_s8`), group by group: each
    group's G_bra^T Y_g, in AO functions, added to its contracted quartet's elements (one loop
    over the real groups, :func:`_per_group`). ``meta`` (8, B): the four AO offsets, bra pair
    diagonal, ket pair diagonal, bra pair == ket pair, row valid, per contracted quartet."""

    def step(v, local, s8):
        v = _to_ao(v, ls, cart)
        m = meta[:, local]
        i, j, k, l = _block_indices(m[:4], v.shape)
        col = [x[:, None, None, None, None] != 0 for x in m[4:]]
        ij, kl = _tri(i, j), _tri(k, l)
        keep = col[3] & (~col[0] | (i >= j)) & (~col[1] | (k >= l))
        if same_set:
            keep &= ~col[2] | (ij >= kl)
        dest = jnp.where(keep, _tri(ij, kl), s8.shape[0])
        return s8.at[dest.ravel()].add(v.ravel(), mode="drop")

    return _per_group(ls, r, bra_g, ket_g, groups, step, s8)


def _gamma(meta, dm_coul, dm_exch, c_exch, ls, cart, same_set):
    """The cotangent (B, nab, ncd) of a chunk's cartesian blocks for
    E2 = 1/2 sum (ij|kl) Dc_ij Dc_kl - c_exch sum_s (ij|kl) Dx_il Dx_jk (summed over all index
    orders, as :func:`.two_electron.blocks_energy`): the symmetrised two-particle density times
    each block's number of images, transformed back to cartesian functions."""
    shape = (meta.shape[1],) + tuple(x.shape[1] for x in _transforms(ls, cart))
    gamma = _gamma_ao(meta, shape, dm_coul, dm_exch, c_exch, same_set)
    return _from_ao(gamma, ls, cart)


def _gamma_ao(meta, shape, dm_coul, dm_exch, c_exch, same_set, at=None):
    """:func:`_gamma` in AO functions (``shape``: (B, na, nb, nc, nd)); ``at`` (B,): each
    block's density is ``dm[at]`` of a stack of densities (restricted: no spin axis)."""
    i, j, k, l = _block_indices(meta[:4], shape)

    def get(dm, a, b):
        return dm[a, b] if at is None else dm[at[:, None, None, None, None], a, b]

    gamma = jnp.zeros(shape)
    if dm_coul is not None:
        gamma = gamma + 0.5 * get(dm_coul, i, j) * get(dm_coul, k, l)
    if dm_exch is not None and at is None:
        dx = dm_exch.reshape((-1,) + dm_exch.shape[-2:])
        pair = dx[:, i, l] * dx[:, j, k] + dx[:, i, k] * dx[:, j, l]
        gamma = gamma - 0.5 * c_exch * jnp.sum(pair, axis=0)
    elif dm_exch is not None:
        pair = get(dm_exch, i, l) * get(dm_exch, j, k) + get(dm_exch, i, k) * get(dm_exch, j, l)
        gamma = gamma - 0.5 * c_exch * pair
    bdiag, kdiag, qdiag, valid = (m != 0 for m in meta[4:])
    deg = jnp.where(bdiag, 1.0, 2.0) * jnp.where(kdiag, 1.0, 2.0)
    deg = deg * (jnp.where(qdiag, 1.0, 2.0) if same_set else 2.0) * valid
    return gamma * deg[:, None, None, None, None]


@piece((0, 1, 2, 3), donate_argnums=(14,))
def _fock_tangents(ls, cart, same_set, has_coul, r1, bra_g, bra_t, ket_g, ket_t, groups, meta,
                   ao_atom, dm, c_exch, fock):
    """``fock`` (natm * 3, nao_b, nao_b) plus a chunk's part of dG[D]/dy at fixed D for every
    nuclear displacement y, G[D] = dE2/dD (E2 of :func:`_gamma` with the restricted ``dm`` as
    its Coulomb (where ``has_coul``) and exchange density): the derivative of each contracted
    block along its 4 centres' 12 local displacements (forward mode through :func:`_contract`
    along 9: the bra's 6 move R and G_bra, the ket's first centre's 3 R and G_ket; the 4th by
    translation, :func:`_translated`; ``bra_t``, ``ket_t`` as :func:`_quartets_hessian`'s; dR
    from ``r1``, R one order up), contracted with the density
    into the rows of the atom each displacement moves (``ao_atom``: each AO's atom) as the
    gradient in a stack of densities, one per displacement, of sum <Gamma(dm_y), dI/dy>."""
    lab, lcd = _orders(ls)
    L = lab + lcd
    r = r1[:, : len(hermite.hermite_indices(L))]
    r1x = r1[:, np.stack([_r_columns(L, 0, x)[:, 0] for x in range(3)])]  # (B, 3, nherm(L))
    (gb, bra), (gk, ket) = (bra_g[0][0], bra_g[1]), (ket_g[0][0], ket_g[1])
    (tb_p, tb_g), (tk_p, tk_g) = bra_t[0], ket_t[0]  # per distinct row: (n, 6, 3), (n, 6, ...)

    def contract(r, gb, gk):
        return _contract(ls, r, ((gb,), bra), ((gk,), ket), groups)

    dr_b = jnp.einsum("cxn,cjx->jcn", r1x, tb_p[bra])  # dR along the bra's displacements
    dr_k = -jnp.einsum("cxn,cjx->jcn", r1x, tk_p[ket][:, :3])  # ... and the ket's first centre's
    v_b = jax.vmap(lambda dr, dg: jax.jvp(lambda r, g: contract(r, g, gk), (r, gb),
                                          (dr, dg))[1])(dr_b, jnp.swapaxes(tb_g, 0, 1))
    v_k = jax.vmap(lambda dr, dg: jax.jvp(lambda r, g: contract(r, gb, g), (r, gk),
                                          (dr, dg))[1])(dr_k, jnp.swapaxes(tk_g[:, :3], 0, 1))
    v = _translated(v_b, v_k)  # (12, B, nab, ncd): row r the chunk's r-th block
    centre = ao_atom[meta[:4]]  # (4, B): the atom of each block's 4 shells
    at = jnp.repeat(centre, 3, axis=0) * 3 + jnp.tile(jnp.arange(3), 4)[:, None]  # (12, B)
    stack = jnp.broadcast_to(dm, fock.shape)

    def block(start, size, fock):  # the chunk's real blocks only (rows first)
        m, x, a = (jax.lax.dynamic_slice_in_dim(y, start, size, axis=1) for y in (meta, v, at))
        x = jax.vmap(lambda x: _to_ao(x, ls, cart))(x)

        def e(stack):
            coul = stack if has_coul else None
            return jnp.sum(jax.vmap(lambda a, x: jnp.sum(
                _gamma_ao(m, x.shape, coul, stack, c_exch, same_set, a) * x))(a, x))

        return fock + jax.grad(e)(stack)

    count = jnp.sum(meta[7] != 0)
    return _over_blocks(count, min(ROW_BLOCK, meta.shape[1]), block, fock)


_unpack_s8 = piece((1,))(unpack_s8)


# ---------------------------------------------------------------------- host-side layout
@dataclasses.dataclass
class Chunk:
    """One chunk of a class: primitive-pair rows of its quartets' bra and ket (B,) (padding -1),
    each one's contracted quartet within the chunk (B,), and ``meta`` (rows per contracted
    quartet, see :func:`_quartets_to_s8`). With ``split(..., distinct=True)``, ``bra`` and
    ``ket`` are (the distinct rows, padded with -1 to :func:`distinct_caps`; each quartet's
    index among them (B,)): a chunk's 4096 quartets have a few dozen distinct bra pairs and
    typically a sixth as many distinct ket pairs as quartets, so the pair data moves, and the
    cotangents sum, per distinct pair."""

    ip: np.ndarray
    iq: np.ndarray
    local: np.ndarray
    meta: np.ndarray
    bra: tuple | None = None
    ket: tuple | None = None

    @functools.cached_property
    def groups(self) -> tuple:
        """(each quartet's group (B,), each group's distinct bra row (B,), each group's
        contracted quartet (B,), the number of groups ()): a group is a run of quartets of one
        bra primitive pair and one contracted quartet, which differ in the ket's primitives only
        (the plan lists a quartet's primitives bra first, so each such set is one run; were it
        cut in two, its two runs would add to the same quartet all the same). Padding quartets
        are in the group after the last, padding groups on row 0."""
        b = len(self.local)
        real = self.ip >= 0
        row, local = self.bra[1][real], self.local[real]
        new = np.diff(local.astype(np.int64) * b + row, prepend=-1) != 0
        n = int(new.sum())
        grp = np.full(b, n, np.int32)
        grp[real] = np.cumsum(new) - 1
        g_row, g_local = np.zeros((2, b), np.int32)
        g_row[:n], g_local[:n] = row[new], local[new]
        return grp, g_row, g_local, np.int32(n)

    @functools.cached_property
    def on_device(self) -> tuple:
        """(:attr:`groups`, meta, the bra's and the ket's quartet-to-distinct-row index, local)
        on the device, put there once: the layout (and its chunks) outlives a calculation, and
        each array put per call costs ~0.1 ms of host time."""
        return jax.device_put((self.groups, self.meta, self.bra[1], self.ket[1], self.local))


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


def split(ip, iq, qid, meta, b: int, distinct: bool = False) -> list[Chunk]:
    """Chunks of ``b`` primitive items (``ip``, ``iq``, sorted by their contracted item ``qid``)
    that never split a contracted item (``b`` is raised to a power of two holding the largest
    one); ``meta`` (m, nq): per contracted item, cut per chunk and padded with zeros.
    ``distinct``: also each chunk's distinct ``ip`` and ``iq`` rows (:class:`Chunk`), at most
    :func:`distinct_caps` of them (a chunk is cut shorter where it would hold more)."""
    nq = meta.shape[1]
    counts = np.bincount(qid, minlength=nq)
    b = max(b, bucket(int(counts.max(initial=1)), 1))
    cum = np.concatenate([[0], np.cumsum(counts)])
    caps = distinct_caps(b) if distinct else None

    def pad(x, fill):
        return np.concatenate([x, np.full(b - len(x), fill)]).astype(np.int32)

    out = []
    q = 0
    while q < nq:
        # at most b primitive items and b contracted ones (an item may have no primitives: a
        # shell pair whose primitive pairs were all screened out)
        end = min(int(np.searchsorted(cum, cum[q] + b, side="right")) - 1, q + b)
        while True:
            lo, hi = cum[q], cum[end]
            rows = pad(ip[lo:hi], -1), pad(iq[lo:hi], -1)
            found = [_distinct(r) for r in rows] if caps else []
            if end == q + 1 or all(len(r) <= c for (r, _), c in zip(found, caps or ())):
                break
            end = q + (end - q) // 2  # too many distinct rows: fewer contracted items
        m = np.zeros((meta.shape[0], b), np.int32)
        m[:, : end - q] = meta[:, q:end]
        ch = Chunk(*rows, pad(qid[lo:hi] - q, 0), m)
        if caps:  # padded to the caps (one contracted item past them: a larger shape)
            ch.bra, ch.ket = (_pad_rows(x, c) for x, c in zip(found, caps))
        out.append(ch)
        q = end
    return out


def distinct_caps(b: int) -> tuple[int, int]:
    """The most distinct bra and ket rows a chunk of ``b`` quartets holds (:func:`split`):
    quartets are sorted bra pair first, so a chunk has a few dozen distinct bra rows (at most
    92 seen in benzene/def2-SVP), and up to b distinct ket rows (1638 of 2048 seen)."""
    return min(b, max(b // 16, 256)), b


def _distinct(idx) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values of ``idx`` (>= -1), ascending; each element's index among them):
    ``np.unique(idx, return_inverse=True)`` without sorting when their range is small (a chunk's
    rows are near each other), which takes the layout of benzene's 2400 chunks from ~1.2 s to
    ~0.2 s."""
    lo, hi = int(idx.min()), int(idx.max())
    if hi - lo > 8 * len(idx):
        rows, where = np.unique(idx, return_inverse=True)
        return rows, where.astype(np.int32)
    seen = np.zeros(hi - lo + 1, bool)
    seen[idx - lo] = True
    rows = np.flatnonzero(seen) + lo
    return rows, (np.cumsum(seen) - 1)[idx - lo].astype(np.int32)


def _pad_rows(distinct, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_distinct`'s rows padded with -1 to ``cap`` (raised to a power of two where one
    contracted item alone has more)."""
    rows, where = distinct
    cap = cap if len(rows) <= cap else bucket(len(rows), cap)
    return np.concatenate([rows, np.full(cap - len(rows), -1)]).astype(np.int32), where


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
        chunks = split(ip[real], iq[real], qid[real], meta.astype(np.int32), chunk_size(ls),
                       distinct=True)
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


def _blocks_of(raw, atoms=None):
    """(start, raw rows, atoms) of :data:`PAIR_BLOCK`-row blocks of a pair set, the last one
    padded (padding rows: :func:`_rows`' harmless row, atom 0)."""
    for s in range(0, len(raw), PAIR_BLOCK):
        idx = np.arange(s, s + PAIR_BLOCK)
        idx[idx >= len(raw)] = -1
        at = None if atoms is None else np.where(idx[:, None] >= 0, atoms[idx], 0)
        yield s, _rows(raw, idx), at


@dataclasses.dataclass
class HermiteRows:
    """The Hermite data p (n + 1,), P (n + 1, 3), G (n + 1, nherm, nab) of the n primitive pairs
    of one pair set (NumPy, G without the ket sign), from the pair pieces (:func:`_hermite`),
    with the raw rows and centre atoms (n, 2) they came from (for :meth:`gradient`). Row n is
    padding (p = 2, P = 0, G = 0: integrals zero, nothing divided by zero), so that a chunk's
    padding index -1 gathers it."""

    ls: tuple  # (la, lb) of the pair class
    raw: np.ndarray
    atoms: np.ndarray
    p: np.ndarray
    P: np.ndarray
    G: np.ndarray
    _local: tuple | None = None  # :meth:`local_rows`' arrays, once asked for

    @classmethod
    def of(cls, basis: Basis, coords, ps: PairSet) -> HermiteRows:
        raw, atoms = raw_pairs(basis, coords, ps)
        ls = tuple(max(l, 0) for l in _ls(ps))
        L, pows = group(ls[0]), jax.device_put(_pair_pows(*ls))
        parts = [[np.asarray(x) for x in _hermite(L, rows, pows)]
                 for _, rows, _ in _blocks_of(raw)]
        p, P, G = (np.concatenate([b[i] for b in parts])[: len(raw)] for i in range(3))
        G = _cut(G, ls, L)
        return cls(ls, raw, atoms, np.append(p, 2.0), np.concatenate([P, np.zeros((1, 3))]),
                   np.concatenate([G, np.zeros((1,) + G.shape[1:])]))

    def rows(self, idx):
        """(p, P, G) of the rows ``idx`` (B,) (-1: the padding row), host-gathered and put on
        the device."""
        return jax.device_put((self.p[idx], self.P[idx], self.G[idx]))

    def local_rows(self, idx) -> tuple:
        """(dP, dG, atoms) of the rows ``idx`` (-1: the padding row, atoms 0) from
        :meth:`local_tangents` (computed once per instance), on the device."""
        if self._local is None:
            self._local = self.local_tangents() + (
                np.concatenate([self.atoms, np.zeros((1, 2), np.int32)]),)
        return jax.device_put(tuple(x[idx] for x in self._local))

    def local_tangents(self) -> tuple[np.ndarray, np.ndarray]:
        """(dP (n + 1, 6, 3), dG (n + 1, 6, nherm, nab)): the derivatives of every row's (P, G)
        along its :data:`LOCAL` displacements (A then B, x, y, z; :func:`_hermite_tangent`; the
        padding row zero)."""
        L, pows = group(self.ls[0]), jax.device_put(_pair_pows(*self.ls))
        n = len(self.raw)
        out = []
        for u in np.eye(LOCAL):
            d = np.broadcast_to(u, (PAIR_BLOCK, LOCAL))
            parts = [[np.asarray(x) for x in _hermite_tangent(L, rows, pows, d)]
                     for _, rows, _ in _blocks_of(self.raw)]
            dP, dG = (np.concatenate([b[i] for b in parts])[:n] for i in range(2))
            dG = _cut(dG, self.ls, L)
            out.append((np.concatenate([dP, np.zeros((1, 3))]),
                        np.concatenate([dG, np.zeros((1,) + dG.shape[1:])])))
        return tuple(np.stack([t[i] for t in out], axis=1) for i in range(2))

    def zeros(self):
        """Accumulators (dP, dG) for the cotangents of P and G (padding row included)."""
        return [np.zeros_like(self.P), np.zeros_like(self.G)]

    def gradient(self, d_p, d_g, natm: int) -> np.ndarray:
        """The gradient (natm, 3) for the cotangents ``d_p``, ``d_g`` (:meth:`zeros`; the
        padding row is ignored): the reverse pass of the pair pieces (summed on the host)."""
        L, pows = group(self.ls[0]), jax.device_put(_pair_pows(*self.ls))
        parts = [_hermite_grad(L, rows, pows, dp, dg, at, natm)
                 for (rows, at), dp, dg in self._cotangent_blocks(d_p, d_g)]
        return sum((np.asarray(g) for g in parts), np.zeros((natm, 3)))

    def hessian(self, d_p, d_g, natm: int, hess):
        """``hess`` (natm * 3, natm * 3, on the device) plus the pair expansion's second
        derivatives contracted with the cotangents ``d_p``, ``d_g`` (:func:`_hermite_hessian`)."""
        L, pows = group(self.ls[0]), jax.device_put(_pair_pows(*self.ls))
        for (rows, at), dp, dg in self._cotangent_blocks(d_p, d_g):
            hess = _hermite_hessian(L, rows, pows, dp, dg, at, natm, hess)
        return hess

    def _cotangent_blocks(self, d_p, d_g):
        """Per :data:`PAIR_BLOCK` block of the pair set: ((raw rows, atoms), dP, dG), the
        cotangents (padding row dropped) in the pair pieces' padded shape."""
        n = len(self.raw)
        d_g = _uncut(d_g[:n], self.ls, group(self.ls[0]))
        return zip(((rows, at) for _, rows, at in _blocks_of(self.raw, self.atoms)),
                   _blocks(d_p[:n]), _blocks(d_g))


def _blocks(x):
    """``x`` (n, ...) in :data:`PAIR_BLOCK`-row blocks, the last one padded with zeros (as
    :func:`_blocks_of`)."""
    for s in range(0, len(x), PAIR_BLOCK):
        out = np.zeros((PAIR_BLOCK,) + x.shape[1:])
        part = x[s:s + PAIR_BLOCK]
        out[: len(part)] = part
        yield out


def _cut(g, ls, L):
    """The class (la, lb)'s part (n, nherm(la+lb), ncart_a ncart_b) of G padded to the group
    L (:func:`_hermite`): the Hermite indices of order <= la + lb come first."""
    na, nb, nc = ncart(ls[0]), ncart(ls[1]), ncart(L)
    nh = len(hermite.hermite_indices(sum(ls)))
    g = g.reshape(g.shape[0], g.shape[1], nc, nc)[:, :nh, :na, :nb]
    return np.ascontiguousarray(g).reshape(g.shape[0], nh, na * nb)


def _uncut(g, ls, L):
    """:func:`_cut`'s transpose: the class's part put in zeros of the padded shape."""
    na, nb, nc = ncart(ls[0]), ncart(ls[1]), ncart(L)
    out = np.zeros((g.shape[0], len(hermite.hermite_indices(2 * L)), nc, nc))
    out[:, : g.shape[1], :na, :nb] = g.reshape(g.shape[0], g.shape[1], na, nb)
    return out.reshape(out.shape[0], out.shape[1], nc * nc)


def _chunk_args(ls, ch: Chunk, herm_b: HermiteRows, herm_k: HermiteRows, omega, up: int = 0,
                quick: bool = False):
    """(R, bra G, ket G): the arguments of the class pieces for the chunk ``ch`` of the class
    ``ls`` besides the chunk's own arrays. R (:func:`_hermite_r`, ``up`` orders above the
    class's: 1 for the reverse pass) from the (p, P) of the bra's and the ket's distinct rows;
    G as ((G of the distinct rows,), each quartet's row), on the device. ``quick``: R's quick
    executable (:func:`is_quick`)."""
    bra, ket = ch.on_device[2:4]
    (pb, qb, gb), (pk, qk, gk) = herm_b.rows(ch.bra[0]), herm_k.rows(ch.ket[0])
    r = _hermite_r(sum(_orders(ls)) + up, ((pb, qb), bra), ((pk, qk), ket), omega, quick=quick)
    return r, ((gb,), bra), ((gk,), ket)


# ---------------------------------------------------------------------- padding
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


def is_quick(basis: Basis) -> bool:
    """Whether the class pieces (R, the contraction, its reverse pass) of a molecule in
    ``basis`` run their quick executables
    (:func:`dftad.pieces.quick_for`: small molecules, which call each class a few times; not
    inside a :func:`dftad.pieces.repeated_job`)."""
    return quick_for(nao_bucket(basis.nao)) and not in_repeated_job()


# ---------------------------------------------------------------------- drivers
def eri(plan: EriPlan, basis: Basis, coords, omega=None, nao: int | None = None) -> jax.Array:
    """The full (nao,)*4 tensor (ij|kl) of a 4-centre ``plan`` (as
    :func:`.two_electron.eri`); ``nao`` >= the basis' nao pads it with zeros (at most
    :func:`nao_bucket` of it)."""
    npair = nao_bucket(basis.nao) * (nao_bucket(basis.nao) + 1) // 2
    s8 = zeros((npair * (npair + 1) // 2,))  # on the device (273 MB for nao 72's bucket)
    cart = basis.layout.cart
    lay = _layout(plan, basis, basis)
    herm = [HermiteRows.of(basis, coords, ps) for ps in lay.bra_sets]
    omega = as_omega(omega)
    quick = is_quick(basis)
    for c in lay.classes:
        for ch in c.chunks:
            args = _chunk_args(c.ls, ch, herm[c.bra], herm[c.ket], omega, quick=quick)
            s8 = _quartets_to_s8(s8, c.ls, cart, c.bra == c.ket, *args, *ch.on_device[:2],
                                 quick=quick)
    return _unpack_s8(s8, basis.nao if nao is None else nao)


def _add_rows(acc, c, ch, d):
    """Add a chunk's pair-data cotangents ``d`` (:func:`_quartets_grad`'s outputs, per distinct
    pair of the chunk) to the accumulators ``acc`` (per pair set, :meth:`HermiteRows.zeros`)."""
    for (d_p, d_g), s, (rows, _) in ((d[:2], c.bra, ch.bra), (d[2:], c.ket, ch.ket)):
        real = rows >= 0  # distinct rows: no index repeats
        for a, x in zip(acc[s], (d_p, d_g)):
            a[rows[real]] += np.asarray(x)[real]


def gradient(plan: EriPlan, basis: Basis, coords, terms, sample: bool = False) -> jax.Array:
    """d E2 / d coords (natm, 3) (Hartree/Bohr) of the two-electron energy
    E2 = sum over ``terms`` (omega, dm_coul, dm_exch, c_exch) of
    :func:`.two_electron.eri_energy`, at fixed densities: the reverse pass through the class
    pieces (:func:`_quartets_grad`), chunk by chunk, to the pair data, then through the pair
    pieces (:meth:`HermiteRows.gradient`) to the nuclei. ``sample``: the first chunk of each class
    only, a part of the sum that runs every piece the whole one does (to compile them ahead,
    :func:`dftad.forces.compile_ahead`)."""
    lay = _layout(plan, basis, basis)
    herm = [HermiteRows.of(basis, coords, ps) for ps in lay.bra_sets]
    acc = [h.zeros() for h in herm]
    nao_b = nao_bucket(basis.nao)
    cart = basis.layout.cart
    quick = is_quick(basis)

    pending = None  # one chunk behind, so that the host sums while the device computes
    for omega, dm_coul, dm_exch, c_exch in terms:
        omega = as_omega(omega)
        dm_coul, dm_exch = pad_ao(dm_coul, nao_b), pad_ao(dm_exch, nao_b)
        c_exch = jax.device_put(np.float64(c_exch))  # no program for a host scalar
        for c in lay.classes:
            for ch in c.chunks[:1] if sample else c.chunks:
                args = _chunk_args(c.ls, ch, herm[c.bra], herm[c.ket], omega, 1, quick)
                d = _quartets_grad(c.ls, cart, c.bra == c.ket, *args, ch.on_device[4],
                                   ch.on_device[1], dm_coul, dm_exch, c_exch, quick=quick)
                if pending is not None:
                    _add_rows(acc, *pending)
                pending = c, ch, d
    if pending is not None:
        _add_rows(acc, *pending)
    natm = len(np.asarray(coords))
    natm_b = bucket(natm, 16)
    grad = sum((h.gradient(d_p, d_g, natm_b) for h, (d_p, d_g) in zip(herm, acc)),
               np.zeros((natm_b, 3)))
    return grad[:natm]


# ---------------------------------------------------------------------- derivatives along
# nuclear displacements (Hessians)
def fock_tangents(plan: EriPlan, basis: Basis, coords, terms, nao: int | None = None):
    """dG[D]/dy (natm, 3, nao, nao) at fixed D along every nuclear displacement y (Hartree/Bohr),
    G[D] = dE2/dD for E2 of a restricted density (``terms`` as :func:`gradient`'s, each
    operator's Coulomb density None or its exchange density D): for Hartree-Fock
    J^y[D] - 1/2 K^y[D] (J and K of D with the derivative integrals), the two-electron part of
    the first-order Fock matrix, built from the integrals' derivatives along their centres'
    local displacements without the derivative tensors (:func:`_fock_tangents`); ``nao`` >=
    the basis' pads the AO axes (at most :func:`nao_bucket`)."""
    lay = _layout(plan, basis, basis)
    herm = [HermiteRows.of(basis, coords, ps) for ps in lay.bra_sets]
    nao_b = nao_bucket(basis.nao)
    cart = basis.layout.cart
    quick = is_quick(basis)
    natm = len(np.asarray(coords))
    natm_b = bucket(natm, 16)
    ao_atom = np.zeros(nao_b, np.int32)
    ao_atom[: basis.nao] = basis.layout.ao_atom
    ao_atom = jax.device_put(ao_atom)
    fock = zeros((3 * natm_b, nao_b, nao_b))
    for omega, dm_coul, dm_exch, c_exch in terms:
        omega = as_omega(omega)
        dm = pad_ao(dm_exch if dm_exch is not None else dm_coul, nao_b)
        c_exch = jax.device_put(np.float64(c_exch if dm_exch is not None else 0.0))
        for c in lay.classes:
            for ch in c.chunks:
                r1, gb, gk = _chunk_args(c.ls, ch, herm[c.bra], herm[c.ket], omega, 1, quick)
                tb, tk = herm[c.bra].local_rows(ch.bra[0]), herm[c.ket].local_rows(ch.ket[0])
                fock = _fock_tangents(c.ls, cart, c.bra == c.ket, dm_coul is not None, r1, gb,
                                      (tb[:2], gb[1]), gk, (tk[:2], gk[1]), ch.on_device[0],
                                      ch.on_device[1], ao_atom, dm, c_exch, fock)
    fock = np.asarray(fock)[: 3 * natm]
    fock = 0.5 * (fock + fock.transpose(0, 2, 1))  # the derivative along symmetric D
    n = basis.nao if nao is None else nao
    return fock[:, :n, :n].reshape(natm, 3, n, n)


def hessian(plan: EriPlan, basis: Basis, coords, terms) -> np.ndarray:
    """The Hessian (natm, 3, natm, 3) of E2 (as :func:`gradient`'s ``terms``) at fixed densities
    (Hartree/Bohr^2): per primitive quartet, the second derivatives along the 12 displacements
    of its 4 centres (:func:`_quartets_hessian`), added at their atoms, plus the pair
    expansions' second derivatives at the accumulated cotangents (:meth:`HermiteRows.hessian`).
    One pass over the chunks for every atom: the work per quartet does not grow with the
    molecule, where forward mode along each nuclear displacement (3 natm of them) did."""
    lay = _layout(plan, basis, basis)
    herm = [HermiteRows.of(basis, coords, ps) for ps in lay.bra_sets]
    acc = [h.zeros() for h in herm]
    nao_b = nao_bucket(basis.nao)
    cart = basis.layout.cart
    quick = is_quick(basis)
    natm = len(np.asarray(coords))
    natm_b = bucket(natm, 16)
    hess = zeros((3 * natm_b, 3 * natm_b))
    pending = None
    for omega, dm_coul, dm_exch, c_exch in terms:
        omega = as_omega(omega)
        dm_coul, dm_exch = pad_ao(dm_coul, nao_b), pad_ao(dm_exch, nao_b)
        c_exch = jax.device_put(np.float64(c_exch))
        for c in lay.classes:
            for ch in c.chunks:
                r2, gb, gk = _chunk_args(c.ls, ch, herm[c.bra], herm[c.ket], omega, 2, quick)
                tb, tk = herm[c.bra].local_rows(ch.bra[0]), herm[c.ket].local_rows(ch.ket[0])
                d, hess = _quartets_hessian(
                    c.ls, cart, c.bra == c.ket, natm_b, r2, gb, (tb[:2], gb[1]), tb[2], gk,
                    (tk[:2], gk[1]), tk[2], ch.on_device[4], ch.on_device[1], dm_coul, dm_exch,
                    c_exch, hess)
                if pending is not None:
                    _add_rows(acc, *pending)
                pending = c, ch, d
    if pending is not None:
        _add_rows(acc, *pending)
    for h, (d_p, d_g) in zip(herm, acc):
        hess = h.hessian(d_p, d_g, natm_b, hess)
    hess = np.asarray(hess).reshape(natm_b, 3, natm_b, 3)
    return hess[:natm, :, :natm]


def schwarz(basis: Basis, coords, sets) -> list:
    """sqrt(max |(ab|ab)|) over the cartesian functions of every pair of every pair set
    (NumPy), by the class pieces on the diagonal quartets (ab|ab)."""
    out = []
    coords = np.asarray(coords, dtype=np.float64)
    quick = quick_for(nao_bucket(basis.nao))  # by size alone: the bounds are remembered by value
    for ps in sets:
        herm = HermiteRows.of(basis, coords, ps)
        ls = _ls(ps) * 2
        n = ps.cls.npair
        start = np.searchsorted(ps.cls.pair_of_prim, np.arange(n + 1))
        counts = np.diff(start) ** 2
        qid = np.repeat(np.arange(n), counts)
        offset = np.arange(len(qid)) - np.repeat(np.cumsum(counts) - counts, counts)
        nk = np.repeat(np.diff(start), counts)
        ip, iq = start[qid] + offset // nk, start[qid] + offset % nk
        chunks = split(ip, iq, qid, np.arange(n)[None], chunk_size(ls), distinct=True)
        diag = np.zeros(n)
        for ch in chunks:
            args = _chunk_args(ls, ch, herm, herm, as_omega(None), quick=quick)
            v = np.asarray(_quartets(ls, *args, ch.on_device[0], quick=quick))
            rows = ch.meta[0, : ch.local.max() + 1]
            diag[rows] = np.abs(np.diagonal(v[: len(rows)], axis1=1, axis2=2)).max(axis=1)
        out.append(np.sqrt(diag))
    return out
