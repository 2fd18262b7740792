"""The Boys function F_n(T) = int_0^1 u^(2n) exp(-T u^2) du, float64-accurate, with a custom JVP.

Evaluation (relative error ~1e-15 for 0 <= n <= NMAX and all T >= 0):

* T < T_SWITCH: a 7-term Taylor expansion of F_nmax around the nearest tabulated point T_k
  (spacing 0.05),  F_n(T_k + d) = sum_j F_{n+j}(T_k) (-d)^j / j!,  followed by the downward
  recursion  F_n = (2T F_{n+1} + exp(-T)) / (2n + 1),  which only adds positive terms (stable).
* T >= T_SWITCH: F_0 = sqrt(pi/T) erf(sqrt(T)) / 2 and the upward recursion
  F_{n+1} = ((2n + 1) F_n - exp(-T)) / (2T), which is stable once exp(-T) << (2n+1) F_n.

The table is built at import from the series

    F_n(T) = exp(-T) sum_i (2T)^i / ((2n+1)(2n+3)...(2n+2i+1))

at a high order (where it converges monotonically) and the same downward recursion.

Derivatives: dF_n/dT = -F_{n+1}, so :func:`boys` has a custom JVP that evaluates one order higher
and AD never differentiates the series or the branches.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

NMAX = 32
"""Highest order supported (g functions, their second derivatives and i-function aux bases)."""

NDERIV = 8
"""Orders above NMAX reachable by differentiating (each derivative needs one more order)."""

T_SWITCH = 40.0
"""Below this T the table and the downward recursion are used; at and above, erf and the upward
recursion."""

TAYLOR_TERMS = 7
"""Terms of the Taylor expansion around the nearest tabulated point."""

TABLE_STEP = 0.05
"""Spacing of the tabulated T_k."""

_SERIES_EXTRA_ORDERS = 60
"""The table's series is summed at this many orders above the highest tabulated one, where its
terms fall fast (2T < 2n + 3 on the whole table), and the downward recursion brings it down."""

_SERIES_MAX_TERMS = 400
_SERIES_RTOL = 1e-18
"""The series stops when a term is below this fraction of the sum (or after
``_SERIES_MAX_TERMS`` terms)."""


def _boys_table() -> np.ndarray:
    """F_n(T_k) for T_k = k * TABLE_STEP <= T_SWITCH + step,
    n = 0 .. NMAX + NDERIV + TAYLOR_TERMS."""
    t = np.arange(0.0, T_SWITCH + 2 * TABLE_STEP, TABLE_STEP)
    n_high = NMAX + NDERIV + TAYLOR_TERMS + _SERIES_EXTRA_ORDERS
    # series for F_{n_high}: terms decrease monotonically since 2T < 2 n_high + 3
    term = np.ones_like(t) / (2 * n_high + 1)
    total = term.copy()
    for i in range(1, _SERIES_MAX_TERMS):
        term = term * 2 * t / (2 * n_high + 2 * i + 1)
        total += term
        if np.all(term < _SERIES_RTOL * total):
            break
    expt = np.exp(-t)
    f = np.empty((NMAX + NDERIV + TAYLOR_TERMS + 1, t.size))
    fn = expt * total
    for n in range(n_high - 1, -1, -1):
        fn = (2 * t * fn + expt) / (2 * n + 1)
        if n < f.shape[0]:
            f[n] = fn
    return f.T.copy()  # (nT, n)


_TABLE = _boys_table()
_INV_FACT = np.array([1.0 / math.factorial(j) for j in range(TAYLOR_TERMS)])


def _boys_small(nmax: int, t) -> list:
    """Taylor + downward recursion, valid for 0 <= t < T_SWITCH: [F_0, .., F_nmax]."""
    k = jnp.clip(jnp.round(t / TABLE_STEP), 0, _TABLE.shape[0] - 1).astype(jnp.int32)
    d = t - k * TABLE_STEP
    coef = jnp.asarray(_TABLE[:, nmax : nmax + TAYLOR_TERMS] * _INV_FACT)[k]  # (..., terms)
    f = coef[..., TAYLOR_TERMS - 1]
    for j in range(TAYLOR_TERMS - 2, -1, -1):  # Horner in (-d)
        f = coef[..., j] - d * f
    expt = jnp.exp(-t)
    out = [f]
    for n in range(nmax - 1, -1, -1):
        f = (2 * t * f + expt) / (2 * n + 1)
        out.append(f)
    return out[::-1]


def _boys_large(nmax: int, t) -> list:
    """erf + upward recursion, valid for t >= T_SWITCH (t is clamped there): [F_0, .., F_nmax]."""
    t = jnp.maximum(t, T_SWITCH)
    expt = jnp.exp(-t)
    f = 0.5 * jnp.sqrt(jnp.pi / t) * jax.scipy.special.erf(jnp.sqrt(t))
    out = [f]
    inv2t = 0.5 / t
    for n in range(nmax):
        f = ((2 * n + 1) * f - expt) * inv2t
        out.append(f)
    return out


def _branches(nmax: int, t):
    """(T < T_SWITCH, both branches' [F_0, .., F_nmax] at ``t``)."""
    if not 0 <= nmax <= NMAX + NDERIV:
        raise ValueError(f"Boys function order {nmax} outside 0..{NMAX + NDERIV}")
    t = jnp.asarray(t, dtype=jnp.float64)
    small = t < T_SWITCH
    return (small, _boys_small(nmax, jnp.where(small, t, 0.0)),
            _boys_large(nmax, jnp.where(small, T_SWITCH, t)))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def boys(nmax: int, t):
    """F_0(T) .. F_nmax(T) stacked on a new last axis; ``t`` >= 0 of any shape."""
    small, lo, hi = _branches(nmax, t)
    return jnp.where(small[..., None], jnp.stack(lo, axis=-1), jnp.stack(hi, axis=-1))


def boys_rows(nmax: int, t) -> list:
    """[F_0(T), .., F_nmax(T)], each of ``t``'s shape: :func:`boys` without the stacked last
    axis of a few elements, which XLA's CPU loops handle poorly (2-5x slower for orders
    1-5); equal to it to an ulp (XLA may fuse the two forms' multiply-adds differently).
    Values only (not differentiated: :func:`.hermite.hermite_r_rows` serves a reverse pass)."""
    small, lo, hi = _branches(nmax, t)
    return [jnp.where(small, a, b) for a, b in zip(lo, hi)]


@boys.defjvp
def _boys_jvp(nmax, primals, tangents):
    (t,), (dt,) = primals, tangents
    f = boys(nmax + 1, t)
    return f[..., :-1], -f[..., 1:] * jnp.asarray(dt)[..., None]
