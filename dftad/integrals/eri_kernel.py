"""The McMurchie-Davidson kernel of one ERI quartet class, in JAX: contracted cartesian (ab|cd).

For primitive pairs ab (exponent p, centre P) and cd (q, Q), with the Hermite expansion
coefficients E of :mod:`.hermite`:

    (ab|cd) = 2 pi^(5/2) / (p q sqrt(p + q))
              sum_{tuv} E^{ab}_{tuv} sum_{t'u'v'} (-1)^(t'+u'+v') E^{cd}_{t'u'v'}
              R_{t+t',u+u',v+v'}(alpha, P - Q),
    alpha = p q / (p + q).

:func:`hermite_pairs` gives, per primitive pair of a pair set (a pair class of one basis, or
single auxiliary shells paired with the unit function), p, P and G = c K E (the ket's G carries
the sign (-1)^(t'+u'+v')). :func:`class_integrals` loops (``lax.scan``) over fixed-size chunks of
primitive quartets: Hermite integrals R, two small batched matrix products and a scatter-add into
the contracted quartets. Shapes are static, memory per chunk is bounded, and the chunk body is
rematerialised under reverse-mode AD. Which quartets, and the chunks, come from
:mod:`.eri_plan`; the AO transform and the assembly into tensors from :mod:`.two_electron`.
:func:`class_cotangents` is the kernel's reverse pass in the pair data (what the forces take),
written out with the quartets on the last axis for the small classes.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, normalized_coefficients
from . import hermite
from .eri_plan import WRITTEN_MAX_L, chunk_indices, scan_inputs
from .hermite import PrimPairs


def _prim_data(basis: Basis, coords, ps) -> PrimPairs:
    """Gaussian product data of the pair set ``ps`` (an :class:`.eri_plan.PairSet`); a single
    shell paired with the unit function has b = 0 and B = A."""
    if not ps.single:
        return hermite.prim_pairs(basis, coords, ps.cls)
    lay = basis.layout
    atom_of_prim = np.repeat(np.asarray(lay.shell_atom), lay.shell_nprim)
    ia = ps.cls.prims[:, 0]
    a = basis.exponents[ia]
    A = coords[atom_of_prim[ia]]
    return PrimPairs(a, jnp.zeros_like(a), A, A, normalized_coefficients(basis)[ia])


@functools.cache
def _sign(L: int) -> np.ndarray:
    """(-1)^(t+u+v) for every Hermite index of order <= L."""
    return (-1.0) ** hermite.hermite_indices(L).sum(axis=1)


@functools.cache
def _r_index(lab: int, lcd: int) -> np.ndarray:
    """Flat index into the R cube (order L = lab + lcd) of (t+t', u+u', v+v'):
    shape (nherm(lab), nherm(lcd))."""
    hab, hcd = hermite.hermite_indices(lab), hermite.hermite_indices(lcd)
    return hermite.cube_index(lab + lcd, hab[:, None, :] + hcd[None, :, :])


def hermite_pairs(basis: Basis, coords, ps, ket: bool):
    """Per primitive pair of the pair set ``ps``: p, P and G = c K E^{ab}_{tuv}, shape
    (npp, ncart_a * ncart_b, nherm); ``ket`` multiplies G by (-1)^(t+u+v)."""
    return hermite_of(_prim_data(basis, coords, ps), ps.la, ps.lb, ket)


def hermite_of(pp: PrimPairs, la: int, lb: int, ket: bool):
    """:func:`hermite_pairs` of given primitive-pair data ``pp`` (shells la, lb)."""
    e3 = hermite.hermite_3d(hermite.cartesian_e(pp, la, lb), la, lb)
    g = e3 * pp.coef[:, None, None]
    if ket:
        g = g * _sign(la + lb)
    return pp.p, pp.P, jnp.swapaxes(g, 1, 2)


def alpha_and_prefactor(p, q, omega=None):
    """alpha = p q / (p + q) and 2 pi^(5/2) / (p q sqrt(p + q)) of primitive quartets (bra and
    ket exponents ``p``, ``q``); with ``omega`` (erf attenuation) as in :func:`class_integrals`.

    The attenuation is written through t = 1 / omega^2: alpha / (1 + alpha t) and
    pref / sqrt(1 + alpha t), so that omega = inf (t = 0) is the plain Coulomb operator exactly
    (alpha / 1 and pref / sqrt(1) round to themselves): both operators of a range-separated
    functional run through one traced kernel (:func:`per_operator`)."""
    alpha = p * q / (p + q)
    pref = 2.0 * math.pi**2.5 / (p * q * jnp.sqrt(p + q))
    if omega is not None:
        s = 1.0 + alpha / (omega * omega)
        pref = pref / jnp.sqrt(s)
        alpha = alpha / s
    return alpha, pref


def as_omega(omega):
    """The operator as the kernels take it: omega of erf(omega r12)/r12 (float64), 1/r12 (None)
    as omega = inf (exact, :func:`alpha_and_prefactor`), a host scalar then (no program), so
    that both operators of a range-separated functional share one kernel."""
    return np.float64(np.inf) if omega is None else jnp.asarray(omega, dtype=jnp.float64)


def per_operator(integrals, omegas) -> tuple:
    """``tuple(integrals(w) for w in omegas)``, traced once: each w None (1/r12) or omega
    (erf(omega r12)/r12). With several operators, 1/r12 is erf(omega r12)/r12 at omega = inf
    (:func:`as_omega`) and ``integrals`` is vmapped over the omegas: a
    range-separated functional compiles every class kernel once, not once per operator (the
    parts that do not depend on omega, such as the Hermite pairs, are not batched)."""
    if len(omegas) == 1:
        return (integrals(omegas[0]),)
    w = jnp.stack([as_omega(x) for x in omegas])
    out = jax.vmap(integrals)(w)
    return tuple(jax.tree.map(lambda x, i=i: x[i], out) for i in range(len(omegas)))


LAST_AXIS_MAX_FLOPS = 600
"""Classes whose contraction costs at most this many multiply-adds per primitive quartet
(hab hcd ncd + nab ncd hab), and whose ket is not an s pair, compute their values with the
quartets on the last axis (:func:`_quartets_last`): benzene/def2-SVP's (ps|ps) (84) 3x,
(pp|ps) (390) and (ds|ps) (300) 1.5x faster, jitted alone; above, slower ((dp|ps) (1320)
1.1x, (ds|pp) (1440) 1.5x, (pp|pp) (1710) 1.7x), and for (xx|ss), whose products are
matrix-vector ones already (``benchmarks/RESULTS.md``)."""


def primitive_quartets(bra, ket, lab, lcd, omega=None):
    """Cartesian integrals of a batch of primitive quartets, (c, nab, ncd): ``bra`` and ``ket``
    are (p, P, G) of each quartet's bra and ket pair (from :func:`hermite_pairs`, gathered per
    quartet), ``omega`` as in :func:`class_integrals`. Small classes
    (:data:`LAST_AXIS_MAX_FLOPS`) compute the values with the quartets on the last axis
    (:func:`_quartets_last`), their derivatives (any order) through :func:`_quartets_first`."""
    (hab, nab), (hcd, ncd) = bra[2].shape[1:], ket[2].shape[1:]
    if ncd > 1 and hab * ncd * (hcd + nab) <= LAST_AXIS_MAX_FLOPS:
        return _quartets(bra, ket, omega, lab, lcd)
    return _quartets_first(bra, ket, lab, lcd, omega)


def _quartets_first(bra, ket, lab, lcd, omega=None):
    """:func:`primitive_quartets` as two batched matrix products per quartet (R G_ket, then
    G_bra^T (R G_ket)); differentiable (R's derivatives from its custom rule)."""
    p, Pb, Gb = bra
    qq, Pk, Gk = ket
    alpha, pref = alpha_and_prefactor(p, qq, omega)
    r = hermite.hermite_r_cube(lab + lcd, alpha, Pb - Pk).reshape(alpha.shape[0], -1)
    rm = r[:, _r_index(lab, lcd)] * pref[:, None, None]  # (c, hab, hcd)
    tmp = jnp.einsum("ctu,cuk->ctk", rm, Gk)  # (c, hab, ncd)
    return jnp.einsum("cta,ctk->cak", Gb, tmp)  # (c, nab, ncd)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _quartets(bra, ket, omega, lab, lcd):
    """:func:`_quartets_last`'s values, :func:`_quartets_first`'s derivatives (any order)."""
    return _quartets_last(bra, ket, lab, lcd, omega)


@_quartets.defjvp
def _quartets_jvp(lab, lcd, primals, tangents):
    def first(b, k, w):
        return _quartets_first(b, k, lab, lcd, w)

    return _quartets(*primals, lab, lcd), jax.jvp(first, primals, tangents)[1]


def _quartets_last(bra, ket, lab, lcd, omega=None):
    """:func:`primitive_quartets` with the quartets on the last axis: pref R_tuv as (c,) rows
    (:func:`.hermite.hermite_r_rows`), G as (hermite, cartesian, c), and the two products as
    sums of broadcast products that XLA fuses and vectorises across the quartets, Y = pref R
    G_ket (:func:`_ket_products`), then sum_t G_bra,t (x) Y_t, each stored whole
    (:func:`_stored`). Values only: JAX's reverse pass of the broadcasts reduces over leading
    axes (slow on XLA's CPU backend), so :func:`_quartets` differentiates
    :func:`_quartets_first` instead."""
    p, Pb, Gb = bra
    q, Pk, Gk = ket
    gb, gk = jnp.moveaxis(Gb, 0, -1), jnp.moveaxis(Gk, 0, -1)  # (hab, nab, c), (hcd, ncd, c)

    def ket_part(p, q, x, gk):
        # _ket_products(_pref_r(...)) computes the same, 3% slower here (benzene def2-SVP ERI
        # blocks 1.94 vs 1.88 s, alternating): R's rows as a list, pref after the products
        alpha, pref = alpha_and_prefactor(p, q, omega)
        r = hermite.hermite_r_rows(lab + lcd, alpha, *x)
        at = _r_rows_at(lab, lcd).tolist()
        return jnp.stack([sum(r[i] * gk[u] for u, i in enumerate(row)) for row in at]) * pref

    def bra_part(gb, y):  # (nab, ncd, c)
        return sum(gb[t][:, None, :] * y[t][None, :, :] for t in range(gb.shape[0]))

    y = _stored(ket_part, p, q, (Pb - Pk).T, gk)
    return jnp.moveaxis(_stored(bra_part, gb, y), -1, 0)


def _pref_r(order, p, q, x, omega):
    """pref R_tuv(alpha, x) of every Hermite index up to ``order``, (nherm, c), x = P - Q (3, c)
    (:func:`alpha_and_prefactor`)."""
    alpha, pref = alpha_and_prefactor(p, q, omega)
    return jnp.stack(hermite.hermite_r_rows(order, alpha, *x)) * pref


def _ket_products(r, gk, at):
    """Y_t = sum_u R_{t+u} G_ket,u, (hab, ncd, c), from R's rows ``r`` (nherm, c), ``gk``
    (hcd, ncd, c) and the positions ``at`` (hab, hcd) of t + u in ``r``
    (:func:`_r_rows_at`)."""
    return sum(r[at][:, u, None, :] * gk[None, u] for u in range(gk.shape[0]))


def class_integrals(bra, ket, lab, lcd, index, nq, omega=None):
    """Contracted cartesian integrals of one quartet class, (nq, nab, ncd).

    ``omega``: if given, the operator is erf(omega r12)/r12 (long-range Coulomb): alpha becomes
    alpha w^2 / (alpha + w^2) and the prefactor gains w / sqrt(alpha + w^2) (omega = inf: 1/r12).

    ``bra``/``ket`` are (p, P, G) from :func:`hermite_pairs`; ``index`` the class's chunks:
    (ip, iq, qid), (nchunk, chunk) primitive-pair indices and contracted-quartet ids (``nq``
    marks padding, whose sums land in a discarded extra row), or an
    :class:`.eri_plan.CompactIndex` from which each chunk's are made
    (:func:`.eri_plan.chunk_indices`).
    """
    nab, ncd = bra[2].shape[2], ket[2].shape[2]

    @jax.checkpoint
    def chunk(acc, x):
        i, j, q = chunk_indices(index, x)
        out = primitive_quartets([x[i] for x in bra], [x[j] for x in ket], lab, lcd, omega)
        return acc.at[q].add(out), None

    acc = jnp.zeros((nq + 1, nab, ncd), dtype=jnp.float64)
    acc, _ = jax.lax.scan(chunk, acc, scan_inputs(index))
    return acc[:nq]


# ---------------------------------------------------------------------- the reverse pass
def class_cotangents(bra, ket, lab, lcd, index, nq, ct, omega=None, bra_rows=()):
    """The reverse pass of :func:`class_integrals` in the pair centres and Hermite coefficients
    (the exponents held fixed, as for nuclear derivatives): (dP_bra, dG_bra, dP_ket, dG_ket)
    for the cotangent ``ct`` (nq, nab, ncd) of its result. ``index``: as
    :func:`class_integrals`' (a :class:`.eri_plan.CompactIndex` takes JAX's reverse pass).

    Classes of order lab + lcd <= :data:`~.eri_plan.WRITTEN_MAX_L` take it written out
    (:func:`_written_cotangents`, 1.3-3.4x faster than JAX's reverse pass of the class kernel,
    whose batched products of a few elements per quartet vectorise poorly); the others JAX's.
    Under forward mode (Hessians) it is JAX's reverse pass for every class, values and
    derivatives: the written form is not traced there."""
    p, q = bra[0], ket[0]

    def reference(Pb, Gb, Pk, Gk, ct, omega, index):
        def f(Pb, Gb, Pk, Gk):
            return class_integrals((p, Pb, Gb), (q, Pk, Gk), lab, lcd, index, nq, omega)

        return jax.vjp(f, Pb, Gb, Pk, Gk)[1](ct)

    args = (bra[1], bra[2], ket[1], ket[2], ct, omega, index)
    if lab + lcd > WRITTEN_MAX_L or not isinstance(index, tuple):
        return reference(*args)

    @jax.custom_jvp
    def written(*args):
        return _written_cotangents(p, q, lab, lcd, *args, bra_rows)

    @written.defjvp
    def _(primals, tangents):  # differentiated: JAX's reverse pass, values and derivatives
        return jax.jvp(reference, primals, tangents)

    return written(*args)


def _stored(f, *operands):
    """f(*operands), computed and stored whole: inside a ``lax.cond`` whose predicate holds for
    any number (x == x, false only for NaN: NaNs out then) and which XLA cannot fold, so that it
    neither fuses f into the consumers of its result (which read it in another order, element
    by element, recomputing it per element) nor the gathers of its operands into every product
    that reads them."""
    x = jax.tree.leaves(operands)[0].reshape(-1)[0]
    nan = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan), jax.eval_shape(f, *operands))
    return jax.lax.cond(x == x, f, lambda *_: nan, *operands)


@functools.cache
def _r_rows_at(lab: int, lcd: int, axis: int | None = None) -> np.ndarray:
    """Position in :func:`.hermite.hermite_r_rows` of order lab + lcd (one order up with
    ``axis``) of (t + t', u + u', v + v') (+ 1 along ``axis``) for every bra and ket Hermite
    index: (nherm(lab), nherm(lcd))."""
    hab, hcd = hermite.hermite_indices(lab), hermite.hermite_indices(lcd)
    tuv = hab[:, None, :] + hcd[None, :, :]
    if axis is not None:
        tuv = tuv + np.eye(3, dtype=np.int64)[axis]
    pos = hermite.hermite_position(lab + lcd + (axis is not None))
    return pos[tuv[..., 0], tuv[..., 1], tuv[..., 2]]


def _quartet_cotangents(bra, ket, ct, lab: int, lcd: int, omega):
    """One chunk of :func:`_written_cotangents`, with the quartets on the last axis: ``bra``,
    ``ket`` (p (c,), P (c, 3), G^T (hermite, cartesian, c)), ``ct`` (nab, ncd, c). With
    Y = pref R G_ket and U = G_bra ct (both (hab, ncd, c)), W = U G_ket^T (hab, hcd, c):

        dG_bra = Y ct^T,  dG_ket = pref R^T U,  dP_x = sum_tu W_tu pref R_{t+u+1_x} = -dQ_x

    (R one order up gives its derivative in P - Q), each written as sums of broadcast products
    over the small axes, stored stage by stage (:func:`_stored`). Returns dP (3, c), dG_bra
    (hab, nab, c), dG_ket (hcd, ncd, c)."""
    (p, pb, gb), (q, pk, gk) = bra, ket
    hab, nab = gb.shape[:2]
    hcd, ncd = gk.shape[:2]
    at, up = _r_rows_at(lab, lcd), np.stack([_r_rows_at(lab, lcd, x) for x in range(3)])

    def hermite_r(p, q, x):  # pref R_tuv, order lab + lcd + 1, (nherm, c)
        return _pref_r(lab + lcd + 1, p, q, x, omega)

    def y_and_u(r, gb, gk, ct):
        return _ket_products(r, gk, at), sum(gb[:, a, None, :] * ct[None, a] for a in range(nab))

    def bra_g(y, ct):
        return sum(y[:, None, k, :] * ct[None, :, k, :] for k in range(ncd))

    def ket_g(r, u):
        return sum(r[at][t, :, None, :] * u[t, None] for t in range(hab))

    def centre(r, u, gk):
        w = sum(u[:, None, k, :] * gk[None, :, k, :] for k in range(ncd))  # (hab, hcd, c)
        ru = r[up]  # (3, hab, hcd, c)
        return sum(w[t, v] * ru[:, t, v] for t in range(hab) for v in range(hcd))

    r = _stored(hermite_r, p, q, (pb - pk).T)
    y, u = _stored(y_and_u, r, gb, gk, ct)
    return _stored(centre, r, u, gk), _stored(bra_g, y, ct), _stored(ket_g, r, u)


def _written_cotangents(p, q, lab, lcd, Pb, Gb, Pk, Gk, ct, omega, index, bra_rows):
    """:func:`class_cotangents` written out, a ``lax.scan`` over the chunks
    (:func:`_quartet_cotangents`). The ket's cotangents are added per quartet (scatter-adds);
    the bra's, when the plan has ``bra_rows`` (:func:`.eri_plan.bra_rows_of`: a chunk holds few
    distinct bra pairs), summed per distinct pair as one matrix product with the quartets'
    0/1 membership first."""
    hab, nab = Gb.shape[1:]
    ct_t = jnp.moveaxis(jnp.concatenate([ct, jnp.zeros((1,) + ct.shape[1:])]), 0, -1)
    gb_t, gk_t = jnp.moveaxis(Gb, 0, -1), jnp.moveaxis(Gk, 0, -1)

    def chunk(acc, x):
        i, j, k, *local = x  # local: (loc, rows) of bra_rows, or nothing
        d_p, d_gb, d_gk = _quartet_cotangents((p[i], Pb[i], gb_t[..., i]),
                                              (q[j], Pk[j], gk_t[..., j]), ct_t[..., k],
                                              lab, lcd, omega)
        bp, bg, kp, kg = acc
        kp, kg = kp.at[j].add(-d_p.T), kg.at[j].add(jnp.moveaxis(d_gk, -1, 0))
        if not bra_rows:
            return (bp.at[i].add(d_p.T), bg.at[i].add(jnp.moveaxis(d_gb, -1, 0)), kp, kg), None
        loc, rows = local
        member = (loc[None, :] == jnp.arange(rows.shape[0])[:, None]).astype(d_p.dtype)
        per_row = jnp.concatenate([d_p, d_gb.reshape(hab * nab, -1)]) @ member.T  # (., D)
        return (bp.at[rows].add(per_row[:3].T),
                bg.at[rows].add(per_row[3:].T.reshape(-1, hab, nab)), kp, kg), None

    init = (jnp.zeros_like(Pb), jnp.zeros_like(Gb), jnp.zeros_like(Pk), jnp.zeros_like(Gk))
    acc, _ = jax.lax.scan(chunk, init, tuple(index) + tuple(bra_rows))
    return acc
