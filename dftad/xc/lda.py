"""Local (spin-)density approximation kernels and the helpers every XC kernel shares.

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
"""

from __future__ import annotations

import math
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


# ---------------------------------------------------------------------------------------------
# libxc's arithmetic: libxc evaluates ln(1 + x) and exp(x) - 1 literally (not log1p/expm1). At
# low densities these forms lose digits (e.g. PW92's ln(1 + 1/(2A(...))) at rs ~ 1e3, PBE's
# ln(1 + beta t^2/gamma ...) for tiny t), and the accurate forms then differ from libxc by more
# than 1e-10 relative in the potentials. By default dftad uses libxc's forms, so that it agrees
# with libxc (and PySCF) to rounding; ``libxc_arithmetic(False)`` selects log1p/expm1. The
# switch is read when a function is traced (re-jit after changing it).
_LIBXC_ARITHMETIC = [True]


class libxc_arithmetic:  # noqa: N801 (used as a context manager)
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
    return k if abs(3.0 * p - k) < 1e-12 else None


def pow_pos(x, p):
    """x^p for x >= 0 with value 0 and zero derivatives of every order at x = 0 ("double where",
    so that derivatives of x^(5/3) etc. stay finite when 1 - zeta rounds to exactly 0)."""
    pos = x > 0.0
    xs = jnp.where(pos, x, 1.0)
    k = _thirds(p)
    return jnp.where(pos, xs**p if k is None else pow_thirds(xs, k), 0.0)


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


def spin_z(v: Vars, spin: int):
    """+zeta for the alpha channel, -zeta for the beta channel."""
    return v.z if spin == 0 else -v.z


def lda_x_spin(rs, z):
    """Slater exchange per particle of one spin channel, (1+z)^(4/3) 2^(-4/3) e_x^unif(rs)."""
    return LDA_X_FACTOR * opz_pow_n(z, 4.0 / 3.0) * 2.0 ** (-4.0 / 3.0) * (RS_FACTOR / rs)


def polarized(v: Vars, rs):
    """Variables of a fully spin-polarised (alpha) density with Wigner-Seitz radius ``rs``."""
    return v._replace(rs=rs, z=jnp.ones_like(rs), na=n_total(rs), nb=jnp.zeros_like(rs))


def lda_stoll_par(fn, p, v: Vars, spin: int):
    """Stoll same-spin part: (1+z)/2 * fn(n_s, zeta = 1) with n_s = (1+z) n / 2 (libxc)."""
    z = spin_z(v, spin)
    rs_s = v.rs * CBRT2 * opz_pow_n(z, -1.0 / 3.0)
    val = opz_pow_n(z, 1.0) / 2.0 * fn(p, polarized(v, rs_s))
    return jnp.where(screen_dens_zeta(v, spin), 0.0, val)


def lda_stoll_perp(fn, p, v: Vars):
    """Stoll opposite-spin part: fn(n, z) minus both same-spin parts."""
    return fn(p, v) - lda_stoll_par(fn, p, v, 0) - lda_stoll_par(fn, p, v, 1)


# ---------------------------------------------------------------------------------------------
# Slater exchange  (libxc LDA_X, id 1)
LDA_X_PARAMS = {"alpha": 1.0}


def lda_x(p, v: Vars):
    """Slater exchange, eps_x = alpha sum_s -(3/4) (6/pi)^(1/3) n_s^(4/3) / n  (Hartree).

    Written per spin channel as ``lda_x_spin``; channels whose density is at or below the
    threshold contribute nothing. ``alpha`` = 1 is Dirac/Slater exchange.
    """
    ex = jnp.where(screen_dens(v, 0), 0.0, lda_x_spin(v.rs, v.z))
    ex = ex + jnp.where(screen_dens(v, 1), 0.0, lda_x_spin(v.rs, -v.z))
    return p["alpha"] * ex


# ---------------------------------------------------------------------------------------------
# Vosko-Wilk-Nusair (libxc LDA_C_VWN = VWN5, id 7, and LDA_C_VWN_RPA, id 8)
# Constants of the original paper divided by two (Rydberg -> Hartree); index 0: paramagnetic,
# 1: ferromagnetic, 2: spin stiffness.
VWN5_PARAMS = {
    "A": (0.0310907, 0.01554535, -1.0 / (6.0 * PI**2)),
    "b": (3.72744, 7.06042, 1.13107),
    "c": (12.9352, 18.0578, 13.0045),
    "x0": (-0.10498, -0.32500, -0.0047584),
}
VWN_RPA_PARAMS = {
    "A": (0.0310907, 0.01554535, -1.0 / (6.0 * PI**2)),
    "b": (13.0720, 20.1231, 1.06835),
    "c": (42.7198, 101.578, 11.4813),
    "x0": (-0.409286, -0.743294, -0.228344),
}
FPP_VWN = 4.0 / (9.0 * (CBRT2 - 1.0))  # f''(0)


def _vwn_aux(A, b, c, x0, rs):
    """VWN interpolation in x = sqrt(rs), x^2 + b x + c = X(x):

    A [ ln(x^2/X) + (2b/Q - b x0/X(x0) * 2(2x0 + b)/Q) atan(Q/(2x + b))
        - b x0/X(x0) ln((x - x0)^2/X) ],   Q = sqrt(4c - b^2).
    """
    sq = jnp.sqrt(rs)
    q = jnp.sqrt(4.0 * c - b * b)
    fx = rs + b * sq + c
    f1 = 2.0 * b / q
    f2 = b * x0 / (x0 * x0 + b * x0 + c)
    f3 = 2.0 * (2.0 * x0 + b) / q
    return A * (
        jnp.log(rs / fx) + (f1 - f2 * f3) * jnp.arctan(q / (2.0 * sq + b))
        - f2 * jnp.log((sq - x0) ** 2 / fx)
    )


def _vwn_i(p, i, rs):
    return _vwn_aux(p["A"][i], p["b"][i], p["c"][i], p["x0"][i], rs)


def lda_c_vwn(p, v: Vars):
    """VWN5 correlation (libxc LDA_C_VWN): interpolation in zeta with the spin stiffness,

    eps = e_P + alpha_c f(z) (1 - z^4) / f''(0) + (e_F - e_P) f(z) z^4.
    """
    z = v.z
    fz = f_zeta(z)
    z4 = z**4
    e_p = _vwn_i(p, 0, v.rs)
    alpha_c = _vwn_i(p, 2, v.rs)
    return e_p + alpha_c * fz * (1.0 - z4) / FPP_VWN + (_vwn_i(p, 1, v.rs) - e_p) * fz * z4


def lda_c_vwn_rpa(p, v: Vars):
    """VWN RPA correlation (libxc LDA_C_VWN_RPA): eps = e_P (1 - f(z)) + e_F f(z)."""
    fz = f_zeta(v.z)
    return _vwn_i(p, 0, v.rs) * (1.0 - fz) + _vwn_i(p, 1, v.rs) * fz


# ---------------------------------------------------------------------------------------------
# Perdew-Wang 92 (libxc LDA_C_PW, id 12, and LDA_C_PW_MOD, id 13 used inside PBE)
# Index 0: paramagnetic, 1: ferromagnetic, 2: minus the spin stiffness.
PW_PARAMS = {
    "pp": (1.0, 1.0, 1.0),
    "a": (0.031091, 0.015545, 0.016887),
    "alpha1": (0.21370, 0.20548, 0.11125),
    "beta1": (7.5957, 14.1189, 10.357),
    "beta2": (3.5876, 6.1977, 3.6231),
    "beta3": (1.6382, 3.3662, 0.88026),
    "beta4": (0.49294, 0.62517, 0.49671),
    "fz20": 1.709921,
}
PW_MOD_PARAMS = dict(
    PW_PARAMS, a=(0.0310907, 0.01554535, 0.0168869), fz20=1.709920934161365617563962776245
)


def _pw_g(p, k, rs):
    """PW92 eq. (10): G = -2A (1 + a1 rs) ln(1 + 1/(2A Q)),
    Q = b1 rs^(1/2) + b2 rs + b3 rs^(3/2) + b4 rs^(p+1)."""
    a = p["a"][k]
    sq = jnp.sqrt(rs)
    den = p["beta1"][k] * sq + p["beta2"][k] * rs + p["beta3"][k] * rs * sq
    den = den + p["beta4"][k] * rs ** (p["pp"][k] + 1.0)
    return -2.0 * a * (1.0 + p["alpha1"][k] * rs) * log1p_xc(1.0 / (2.0 * a * den))


def lda_c_pw(p, v: Vars):
    """PW92 correlation, eq. (8): eps = G0 + z^4 f(z) (G1 - G0 + G2/f''(0)) - f(z) G2/f''(0)."""
    z = v.z
    fz = f_zeta(z)
    g0, g1, g2 = _pw_g(p, 0, v.rs), _pw_g(p, 1, v.rs), _pw_g(p, 2, v.rs)
    return g0 + z**4 * fz * (g1 - g0 + g2 / p["fz20"]) - fz * g2 / p["fz20"]
