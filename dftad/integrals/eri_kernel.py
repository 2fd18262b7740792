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
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, normalized_coefficients
from . import hermite
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


def primitive_quartets(bra, ket, lab, lcd, omega=None):
    """Cartesian integrals of a batch of primitive quartets, (c, nab, ncd): ``bra`` and ``ket``
    are (p, P, G) of each quartet's bra and ket pair (from :func:`hermite_pairs`, gathered per
    quartet), ``omega`` as in :func:`class_integrals`."""
    p, Pb, Gb = bra
    qq, Pk, Gk = ket
    alpha, pref = alpha_and_prefactor(p, qq, omega)
    r = hermite.hermite_r_cube(lab + lcd, alpha, Pb - Pk).reshape(alpha.shape[0], -1)
    rm = r[:, _r_index(lab, lcd)] * pref[:, None, None]  # (c, hab, hcd)
    tmp = jnp.einsum("ctu,cuk->ctk", rm, Gk)  # (c, hab, ncd)
    return jnp.einsum("cta,ctk->cak", Gb, tmp)  # (c, nab, ncd)


def class_integrals(bra, ket, lab, lcd, ip, iq, qid, nq, omega=None):
    """Contracted cartesian integrals of one quartet class, (nq, nab, ncd).

    ``omega``: if given, the operator is erf(omega r12)/r12 (long-range Coulomb): alpha becomes
    alpha w^2 / (alpha + w^2) and the prefactor gains w / sqrt(alpha + w^2) (omega = inf: 1/r12).

    ``bra``/``ket`` are (p, P, G) from :func:`hermite_pairs`; ``ip``, ``iq``, ``qid`` are
    (nchunk, chunk) primitive-pair indices and contracted-quartet ids (``nq`` marks padding,
    whose sums land in a discarded extra row).
    """
    nab, ncd = bra[2].shape[2], ket[2].shape[2]

    @jax.checkpoint
    def chunk(acc, idx):
        i, j, q = idx
        out = primitive_quartets([x[i] for x in bra], [x[j] for x in ket], lab, lcd, omega)
        return acc.at[q].add(out), None

    acc = jnp.zeros((nq + 1, nab, ncd), dtype=jnp.float64)
    acc, _ = jax.lax.scan(chunk, acc, (ip, iq, qid))
    return acc[:nq]
