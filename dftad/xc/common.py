"""The variables, arithmetic and screening every XC kernel shares, and the record kernels are
registered with (:class:`Component`).

Units: Hartree and Bohr. Every kernel in :mod:`dftad.xc` follows libxc's convention and returns
the energy *per particle* ``eps(rs, zeta, ...)``; :mod:`dftad.xc.functional` multiplies by the
density to give the energy per volume ``e = n * eps`` that is integrated on the grid.

The variables are those of libxc's maple sources (``maple/util.mpl``)::

    n     = n_a + n_b                           total density
    zeta  = (n_a - n_b) / n                     spin polarisation
    rs    = (3 / (4 pi n))^(1/3)                Wigner-Seitz radius
    xs_s  = |grad n_s| / n_s^(4/3)              reduced spin gradient (kernels get xs_s^2)
    xt    = |grad n| / n^(4/3)                  reduced total gradient (kernels get xt^2)
    ts_s  = tau_s / n_s^(5/3)                   reduced kinetic energy density

Kernels are written from the formulas in libxc 7.0 (the version PySCF 2.14 links), including its
screening of tiny spin densities and of |zeta| -> 1 (``zeta_threshold`` = DBL_EPSILON), so that
energies and potentials agree with libxc to rounding. Piecewise definitions use the "double where"
pattern: the branch that is not selected is evaluated at a harmless argument, so neither values nor
derivatives of any order become NaN.

The numbers below are not physical constants (those live in :mod:`dftad.constants`): they are
libxc's numerical thresholds and the pure-number factors of the uniform electron gas
(``util.h``/``util.mpl``), written as libxc defines them so that every kernel rounds like libxc.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

# ---------------------------------------------------------------------------------------------
# constants (libxc util.h / util.mpl)
DBL_EPSILON = 2.220446049250313e-16
ZETA_THRESHOLD = DBL_EPSILON
"""libxc's default ``zeta_threshold``: 1 +- zeta below it is replaced by it."""
TAU_THRESHOLD = 1e-20
"""libxc's default ``tau_threshold``."""

PI = math.pi
RS_FACTOR = (3.0 / (4.0 * PI)) ** (1.0 / 3.0)
X_FACTOR_C = 3.0 / 8.0 * (3.0 / PI) ** (1.0 / 3.0) * 4.0 ** (2.0 / 3.0)
LDA_X_FACTOR = -X_FACTOR_C
K_FACTOR_C = 3.0 / 10.0 * (6.0 * PI**2) ** (2.0 / 3.0)
X2S = 1.0 / (2.0 * (6.0 * PI**2) ** (1.0 / 3.0))
MU_GE = 10.0 / 81.0
CBRT2 = 2.0 ** (1.0 / 3.0)

_THIRDS_TOL = 1e-12
"""An exponent p within this of k/3 (k an integer) is evaluated as the exact power x^(k/3)."""


class Vars(NamedTuple):
    """Reduced density variables of one grid batch (all arrays of the same shape).

    ``xt2``, ``xs02``, ``xs12`` are the *squares* of libxc's xt, xs0, xs1 (so that functionals
    that depend on gradients only through squares never take a square root). ``na``, ``nb`` are
    the spin densities (after libxc's bounds), used to screen spin channels exactly as libxc
    does; ``dthr`` is the density threshold of the kernel being evaluated (a Python float).
    """

    rs: jnp.ndarray
    z: jnp.ndarray
    xt2: jnp.ndarray
    xs02: jnp.ndarray
    xs12: jnp.ndarray
    ts0: jnp.ndarray
    ts1: jnp.ndarray
    na: jnp.ndarray
    nb: jnp.ndarray
    dthr: float


class Component(NamedTuple):
    """One semilocal building block, equal to one libxc functional.

    ``kernel(params, Vars) -> eps`` returns the energy per particle; ``dens_threshold`` is libxc's
    value for this functional. ``omega`` is None for full-range kernels; for short-range
    (erfc-attenuated) kernels it is the range-separation parameter a functional string without
    ``RSH(...)`` gets (libxc's default for ITYH and wB97X; LC-wPBE's 0.4 for wPBEh, whose libxc
    default is 0, i.e. no attenuation), and the kernel receives the functional's omega as
    ``params['omega']``.
    """

    family: str
    kernel: Callable
    params: dict
    dens_threshold: float
    libxc: str
    omega: float | None = None

    @property
    def uses_omega(self) -> bool:
        """True for short-range kernels, which read ``params['omega']``."""
        return self.omega is not None


# ---------------------------------------------------------------------------------------------
# libxc's arithmetic: libxc evaluates ln(1 + x) and exp(x) - 1 literally (not log1p/expm1). At
# low densities these forms lose digits (e.g. PW92's ln(1 + 1/(2A(...))) at rs ~ 1e3, PBE's
# ln(1 + beta t^2/gamma ...) for tiny t), and the accurate forms then differ from libxc by more
# than 1e-10 relative in the potentials. By default dftad uses libxc's forms, so that it agrees
# with libxc (and PySCF) to rounding; ``libxc_arithmetic(False)`` selects log1p/expm1. The
# switch is read when a function is traced (re-jit after changing it).
_LIBXC_ARITHMETIC = [True]


class libxc_arithmetic:
    """Context manager: ``with libxc_arithmetic(False): ...`` evaluates with log1p/expm1."""

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)

    def __enter__(self):
        self.saved = _LIBXC_ARITHMETIC[0]
        _LIBXC_ARITHMETIC[0] = self.enabled
        return self

    def __exit__(self, *exc):
        _LIBXC_ARITHMETIC[0] = self.saved
        return False


def log1p_xc(x):
    """ln(1 + x): as libxc evaluates it (default) or ``log1p``."""
    return jnp.log(1.0 + x) if _LIBXC_ARITHMETIC[0] else jnp.log1p(x)


def expm1_xc(x):
    """exp(x) - 1: as libxc evaluates it (default) or ``expm1``."""
    return jnp.exp(x) - 1.0 if _LIBXC_ARITHMETIC[0] else jnp.expm1(x)


# ---------------------------------------------------------------------------------------------
# piecewise helpers (maple's my_piecewise3 / m_max / m_min with libxc's tie-breaking)
def m_max(a, b):
    """max(a, b) with the derivative of ``b`` at ties, like libxc's ``m_max``."""
    return jnp.where(a > b, a, b)


def m_min(a, b):
    """min(a, b) with the derivative of ``b`` at ties, like libxc's ``m_min``."""
    return jnp.where(a > b, b, a)


def pow_thirds(x, k: int):
    """x^(k/3) for x > 0 and integer k, from cbrt and integer powers (as libxc's generated code
    does): far more accurate than exp(k/3 ln x), which loses ~|ln x| eps."""
    q, r = divmod(abs(k), 3)
    c = jnp.cbrt(x)
    out = x**q * c**r if q else c**r
    return out if k >= 0 else 1.0 / out


def _thirds(p):
    """k if p == k/3 for an integer k, else None."""
    k = round(3.0 * p)
    return k if abs(3.0 * p - k) < _THIRDS_TOL else None


def pow_pos(x, p):
    """x^p for x >= 0 with value 0 and zero derivatives of every order at x = 0 ("double where",
    so that derivatives of x^(5/3) etc. stay finite when 1 - zeta rounds to exactly 0)."""
    pos = x > 0.0
    xs = jnp.where(pos, x, 1.0)
    k = _thirds(p)
    return jnp.where(pos, xs**p if k is None else pow_thirds(xs, k), 0.0)


# ---------------------------------------------------------------------------------------------
# densities and spin polarisation, with libxc's screening
def n_total(rs):
    """Density of Wigner-Seitz radius ``rs``: n = (RS_FACTOR / rs)^3."""
    return (RS_FACTOR / rs) ** 3


def n_spin(rs, z):
    """Spin density (1 + z) n / 2."""
    return (1.0 + z) * n_total(rs) / 2.0


def opz_pow_n(z, p):
    """(1 + z)^p, with 1 + z replaced by ``ZETA_THRESHOLD`` when it is smaller (libxc)."""
    opz = 1.0 + z
    base = jnp.where(opz <= ZETA_THRESHOLD, ZETA_THRESHOLD, opz)
    k = _thirds(p)
    return base**p if k is None else pow_thirds(base, k)


def spin_z(v: Vars, spin: int):
    """+zeta for the alpha channel, -zeta for the beta channel."""
    return v.z if spin == 0 else -v.z


def z_thr(v: Vars, spin: int = 0):
    """+-zeta (``spin`` 0: +, 1: -) pulled back from +-1 by ``ZETA_THRESHOLD`` (libxc's
    ``z_thr``). As in libxc's generated code, 1 +- zeta is tested as 2 n_s / n (with 1/n taken
    once): a tiny channel can round 1 - zeta above the threshold while 2 n_b / n is below it, and
    then only the thresholded zeta, whose derivative is zero, gives libxc's potentials."""
    n_inv = 1.0 / (v.na + v.nb)
    own, other = (v.na, v.nb) if spin == 0 else (v.nb, v.na)
    return jnp.where(
        2.0 * own * n_inv <= ZETA_THRESHOLD,
        ZETA_THRESHOLD - 1.0,
        jnp.where(2.0 * other * n_inv <= ZETA_THRESHOLD, 1.0 - ZETA_THRESHOLD, spin_z(v, spin)),
    )


def z_thr_zeta(z):
    """zeta pulled back from +-1 by ``ZETA_THRESHOLD``, with 1 +- zeta tested as such (libxc's
    ``z_thr`` where its generated code keeps zeta whole, as in TPSS correlation's C0)."""
    return jnp.where(
        1.0 + z <= ZETA_THRESHOLD,
        ZETA_THRESHOLD - 1.0,
        jnp.where(1.0 - z <= ZETA_THRESHOLD, 1.0 - ZETA_THRESHOLD, z),
    )


def f_zeta(z):
    """Spin interpolation f(z) = ((1+z)^(4/3) + (1-z)^(4/3) - 2) / (2^(4/3) - 2)."""
    return (opz_pow_n(z, 4.0 / 3.0) + opz_pow_n(-z, 4.0 / 3.0) - 2.0) / (2.0 ** (4.0 / 3.0) - 2.0)


def mphi(z):
    """phi(z) = ((1+z)^(2/3) + (1-z)^(2/3)) / 2 of PW91/PBE correlation."""
    return (opz_pow_n(z, 2.0 / 3.0) + opz_pow_n(-z, 2.0 / 3.0)) / 2.0


def screen_dens(v: Vars, spin: int):
    """True where spin channel ``spin`` (0: alpha, 1: beta) is at or below the threshold."""
    return (v.na if spin == 0 else v.nb) <= v.dthr


def screen_dens_zeta(v: Vars, spin: int):
    """``screen_dens`` or 1 +- zeta = 2 n_s / n at or below ``ZETA_THRESHOLD``."""
    ns = v.na if spin == 0 else v.nb
    return (ns <= v.dthr) | (2.0 * ns * (1.0 / (v.na + v.nb)) <= ZETA_THRESHOLD)
