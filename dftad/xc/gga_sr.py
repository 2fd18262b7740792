"""Short-range (erfc-attenuated) GGA kernels of range-separated hybrids: ITYH-B88 (CAM-B3LYP),
the wB97 family's short-range B97 exchange (wB97X) and wPBEh (LC-wPBE, HSE).

Units: Hartree and Bohr; each kernel returns the energy per particle ``eps`` of the reduced
variables in :class:`dftad.xc.common.Vars` and receives the functional's range-separation
parameter as ``p["omega"]`` (1/Bohr). Formulas and constants follow libxc 7.0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import erf, erfcx

from .common import (
    CBRT2,
    PI,
    RS_FACTOR,
    X2S,
    X_FACTOR_C,
    ZETA_THRESHOLD,
    Component,
    Vars,
    expm1_xc,
    log1p_xc,
    m_max,
    m_min,
    n_spin,
    opz_pow_n,
    screen_dens,
    screen_dens_zeta,
    z_thr,
)
from .gga import B88_PARAMS, _b97_params, b88_enhancement, b97_correlation, b97_g
from .lda import lda_x_spin

# the short-range GGA components by dftad name (collected in dftad.xc.functional.COMPONENTS)
COMPONENTS: dict[str, Component] = {}

# ---------------------------------------------------------------------------------------------
# erf attenuation of LDA exchange (Tawada et al., JCP 120, 8425 (2004))
# Large-a series of the attenuation function, coefficients of a^-2, a^-4, ..., a^-16 (libxc
# switches to it at a >= 1.35 and keeps orders up to a^-16).
_ATT_ERF_SERIES = (
    1.0 / 36.0, -1.0 / 960.0, 1.0 / 26880.0, -1.0 / 829440.0, 1.0 / 28385280.0,
    -1.0 / 1073479680.0, 1.0 / 44590694400.0, -1.0 / 2021444812800.0,
)
_ATT_ERF_CUT = 1.35


def attenuation_erf(a):
    """F(a) = 1 - 8/3 a [sqrt(pi) erf(1/(2a)) + (2a - 4a^3) exp(-1/(4a^2)) - 3a + 4a^3].

    The ratio of the short-range (erfc) to the full LDA exchange hole energy at a = omega/(2 k_F).
    For a >= 1.35 the large-a expansion sum_k c_k a^(-2k) (k = 1..8) is used, as in libxc.
    """
    a_lo = m_min(a, _ATT_ERF_CUT)
    aux2 = expm1_xc(-1.0 / (4.0 * a_lo**2))
    aux3 = 2.0 * a_lo**2 * aux2 + 0.5
    exact = 1.0 - 8.0 / 3.0 * a_lo * (
        jnp.sqrt(PI) * erf(1.0 / (2.0 * a_lo)) + 2.0 * a_lo * (aux2 - aux3)
    )
    u = 1.0 / m_max(a, _ATT_ERF_CUT) ** 2
    series = 0.0
    for ck in reversed(_ATT_ERF_SERIES):
        series = (series + ck) * u
    return jnp.where(a >= _ATT_ERF_CUT, series, exact)


# ---------------------------------------------------------------------------------------------
# short-range B88 exchange, Iikura-Tsuneda-Yanai-Hirao (libxc GGA_X_ITYH, id 529)
def gga_x_ityh(p, v: Vars):
    """Short-range (erfc) B88 exchange of CAM-B3LYP (Iikura et al., JCP 115, 3540 (2001)).

    eps = sum_s eps_x^LDA F_B88(x_s) F_att(a_s),  a_s = omega / (2 k_s),
    k_s = sqrt(9 pi / (2 X_FACTOR_C F_B88(x_s))) n_s^(1/3).
    """
    ex = 0.0
    for spin, xs2 in ((0, v.xs02), (1, v.xs12)):
        fb = b88_enhancement(p, xs2)
        zt = z_thr(v, spin)
        k = jnp.sqrt(9.0 * PI / (2.0 * X_FACTOR_C * fb)) * jnp.cbrt(n_spin(v.rs, zt))
        val = lda_x_spin(v.rs, zt) * attenuation_erf(p["omega"] / (2.0 * k)) * fb
        ex = ex + jnp.where(screen_dens(v, spin), 0.0, val)
    return ex


COMPONENTS["gga_x_ityh"] = Component("gga", gga_x_ityh, B88_PARAMS, 1e-14, "GGA_X_ITYH", 0.2)


# ---------------------------------------------------------------------------------------------
# wB97 family (libxc HYB_GGA_XC_WB97X, id 464): short-range B97 exchange + B97 correlation
_LDA_X_AX = -RS_FACTOR * X_FACTOR_C / 2.0 ** (4.0 / 3.0)


def lda_x_erf_pol(rs, omega):
    """Short-range LDA exchange per particle of a fully polarised density of radius ``rs``."""
    a = (4.0 / (9.0 * PI)) ** (1.0 / 3.0) * omega / 2.0 * rs / CBRT2
    return _LDA_X_AX * 2.0 ** (4.0 / 3.0) / rs * attenuation_erf(a)


def hyb_gga_xc_wb97(p, v: Vars):
    """wB97/wB97X (Chai and Head-Gordon, JCP 128, 084106 (2008)):

    eps = sum_s eps_x^(LDA,SR)(n_s; omega) g_x(x_s) + B97 correlation (same and opposite spin).
    """
    ex = 0.0
    for spin, z, xs2 in ((0, v.z, v.xs02), (1, -v.z, v.xs12)):
        opz = jnp.where(1.0 + z <= ZETA_THRESHOLD, ZETA_THRESHOLD, 1.0 + z)
        rs_s = v.rs * jnp.cbrt(2.0 / opz)
        val = opz / 2.0 * lda_x_erf_pol(rs_s, p["omega"]) * b97_g(p["gamma_x"], p["c_x"], xs2)
        ex = ex + jnp.where(screen_dens_zeta(v, spin), 0.0, val)
    return ex + b97_correlation(p, v)


WB97X_PARAMS = _b97_params(
    (8.42294e-01, 7.26479e-01, 1.04760e00, -5.70635e00, 1.32794e01),
    (1.00000e00, -4.33879e00, 1.82308e01, -3.17430e01, 1.72901e01),
    (1.00000e00, 2.37031e00, -1.13995e01, 6.58405e00, -3.78132e00),
)


COMPONENTS["gga_xc_wb97x"] = Component("gga", hyb_gga_xc_wb97, WB97X_PARAMS, 1e-14,
                                       "HYB_GGA_XC_WB97X", 0.3)


# ---------------------------------------------------------------------------------------------
# special functions for the HSE/wPBEh exchange hole
_EULER_GAMMA = 0.57721566490153286061
_E1_SERIES = tuple((-1.0) ** (k + 1) / (k * math.factorial(k)) for k in range(1, 41))
_E1_SWITCH = 2.0
_E1_CF_TERMS = 50


@jax.custom_jvp
def expint_e1_scaled(x):
    """exp(x) E1(x) for x > 0: power series for x <= 2, continued fraction
    1/(x + 1 - 1/(x + 3 - 4/(x + 5 - 9/(...)))) beyond (relative error ~1e-14)."""
    xs = jnp.where(x <= _E1_SWITCH, x, _E1_SWITCH)
    ser = 0.0
    for c in reversed(_E1_SERIES):
        ser = (ser + c) * xs
    small = jnp.exp(xs) * (-_EULER_GAMMA - jnp.log(xs) + ser)
    xl = jnp.where(x > _E1_SWITCH, x, 2.0 * _E1_SWITCH)
    t = xl + (2 * _E1_CF_TERMS + 1)
    for n in range(_E1_CF_TERMS, 0, -1):
        t = xl + (2 * n - 1) - n * n / t
    return jnp.where(x <= _E1_SWITCH, small, 1.0 / t)


@expint_e1_scaled.defjvp
def _expint_e1_scaled_jvp(primals, tangents):
    # d/dx [e^x E1(x)] = e^x E1(x) - 1/x, the same form libxc differentiates
    (x,), (dx,) = primals, tangents
    y = expint_e1_scaled(x)
    return y, (y - 1.0 / x) * dx


# ---------------------------------------------------------------------------------------------
# wPBEh short-range exchange of Heyd, Scuseria, Ernzerhof (libxc GGA_X_WPBEH, id 524), the
# semilocal part of LC-wPBE. Constants of the Ernzerhof-Perdew hole and of the erfc-integrated
# form of HSE (JCP 118, 8207 (2003); erratum 124, 219906 (2006); JCP 120, 7274 (2004)), with
# the s-rescaling of Henderson et al. (JCP 131, 044108 (2009), eq. 8) as libxc applies it.
_WA, _WB, _WC, _WD, _WE = 1.0161144, -0.37170836, -0.077215461, 0.57786348, -0.051955731
_HA = (0.00979681, 0.0410834, 0.187440, 0.00120824, 0.0347188)
_FC1, _FC2 = 6.4753871, 0.47965830
_EGA = (-0.02628417880, -0.07117647788, 0.08534541323)
_EA = (-1.128223946706117, 1.452736265762971, -1.243162299390327, 0.971824836115601,
       -0.568861079687373, 0.246880514820192, -0.065032363850763, 0.008401793031216)
_EG_SCUT = 0.08
"""E_G(s) is the closed expression above this s, its small-s series below."""
_W_CUT = 14.0
"""w = omega/k_F above which the Gaussian (large-w) form of the first term is used."""
_EB1_SMALL_W = 1.455915450052607
"""The hole's Gaussian exponent factor eb1 for w < ``_W_CUT`` (2 beyond), as in libxc."""
_SMAX = 8.572844
_S_SCALE_LO, _S_SCALE_HI = 1.0, 15.0
"""Henderson's rescaling leaves s below the first, interpolates between them, is s_max above."""
_S_MIN = 1e-15
"""Floor of the rescaled s, as in libxc: the hole is evaluated at s >= this."""


def _wpbeh_s_scaling(s):
    """Henderson's rescaling: s for s < 1, s - ln(1 + exp(s - s_max)) up to 15, s_max beyond."""
    sc = m_max(m_min(s, _S_SCALE_HI), _S_SCALE_LO)
    mid = sc - log1p_xc(jnp.exp(sc - _SMAX))
    return jnp.where(s < _S_SCALE_LO, s, jnp.where(s > _S_SCALE_HI, _SMAX, mid))


def _wpbeh_f0(w, s):
    """Enhancement factor F(w, s) of short-range wPBEh exchange, w = omega/k_F (libxc form)."""
    A, B, C, D, E = _WA, _WB, _WC, _WD, _WE
    s2 = s * s
    h = (_HA[0] * s2 + _HA[1] * s2 * s2) / (1.0 + _HA[2] * s2 * s2 + _HA[3] * s2 * s2 * s
                                              + _HA[4] * s2 * s2 * s2)
    fs = _FC1 * h + _FC2
    sqpi = math.sqrt(PI)
    aux1 = D + s2 * h

    # E_G(s): expression for s > _EG_SCUT, series below (the expression at s clipped to it)
    sg = m_max(s, _EG_SCUT)
    sg2 = sg * sg
    hg = (_HA[0] * sg2 + _HA[1] * sg2 * sg2) / (1.0 + _HA[2] * sg2 * sg2 + _HA[3] * sg2 * sg2 * sg
                                                  + _HA[4] * sg2 * sg2 * sg2)
    a1g = D + sg2 * hg
    a2g = 9.0 * hg * sg2 / (4.0 * A)
    ga = sqpi * (15.0 * E + 6.0 * C * (1.0 + (_FC1 * hg + _FC2) * sg2) * a1g + 4.0 * B * a1g**2
                 + 8.0 * A * a1g**3) / (16.0 * a1g**3.5)
    ga = ga - 0.75 * PI * math.sqrt(A) * erfcx(jnp.sqrt(a2g))
    gb = 15.0 * sqpi * sg2 / (16.0 * a1g**3.5)
    eg = jnp.where(s > _EG_SCUT, -(0.75 * PI + ga) / gb, _EGA[0] + _EGA[1] * s2 + _EGA[2] * s2 * s2)

    aux3 = aux1 + w * w
    term2 = (aux1**2 * B + aux1 * C + 2.0 * E + aux1 * s2 * C * fs + 2.0 * s2 * eg) / (
        2.0 * aux1**3)
    a3_52 = aux3**2.5
    term3 = -w * (4.0 * aux3**2 * B + 6.0 * aux3 * C + 15.0 * E + 6.0 * aux3 * s2 * C * fs
                  + 15.0 * s2 * eg) / (8.0 * aux1 * a3_52)
    term4 = -(w**3) * (aux3 * C + 5.0 * E + aux3 * s2 * C * fs + 5.0 * s2 * eg) / (
        2.0 * aux1**2 * a3_52)
    term5 = -(w**5) * (E + s2 * eg) / (aux1**3 * a3_52)

    def aux46(ww):
        eb1 = jnp.where(ww < _W_CUT, _EB1_SMALL_W, 2.0)
        a4 = s2 * h + eb1 * ww * ww
        return eb1, a4, D + a4

    # large w: Gaussian approximation (evaluated at w >= _W_CUT)
    wl = m_max(w, _W_CUT)
    _, a4l, a6l = aux46(wl)
    t1_large = -0.5 * A * (-expint_e1_scaled(9.0 * a4l / (4.0 * A)) + jnp.log(a6l) - jnp.log(a4l))

    # w <= _W_CUT: the full expression (evaluated at w clipped to _W_CUT)
    ws = m_min(w, _W_CUT)
    eb1, a4, a6 = aux46(ws)
    # f4..f9 are singular in aux4 -> 0 (s -> 0 at w = 0) but multiply w^3..w^8: at w = 0 they are
    # evaluated at a harmless aux4 and dropped (double where), keeping derivatives finite
    wpos = ws > 0.0
    a4f = jnp.where(wpos, a4, 1.0)
    a6f = D + a4f
    a5 = 9.0 * a4 / (4.0 * A)
    ea = _EA
    np1 = (-1.5 * ea[0] * math.sqrt(A) * ws + 27.0 * ea[2] * ws**3 / (8.0 * math.sqrt(A))
           - 243.0 * ea[4] * ws**5 / (32.0 * A**1.5) + 2187.0 * ea[6] * ws**7 / (128.0 * A**2.5))
    np2 = (-A + 9.0 * ea[1] * ws**2 / 4.0 - 81.0 * ea[3] * ws**4 / (16.0 * A)
           + 729.0 * ea[5] * ws**6 / (64.0 * A**2) - 6561.0 * ea[7] * ws**8 / (256.0 * A**3))
    t1 = 0.5 * (np1 * PI * erfcx(jnp.sqrt(a5)) - np2 * expint_e1_scaled(a5))
    f2 = 0.5 * ea[0] * sqpi * A / jnp.sqrt(a6)
    f3 = 0.5 * ea[1] * A / a6
    f4 = ea[2] * sqpi * (-9.0 / (8.0 * jnp.sqrt(a4f)) + 0.25 * A / a6f**1.5)
    f5 = (ea[3] / 128.0) * (-144.0 / a4f + 64.0 * A / a6f**2)
    f6 = ea[4] * (3.0 * sqpi * (3.0 * a6f**2.5 * (9.0 * a4f - 2.0 * A) + 4.0 * a4f**1.5 * A**2)) / (
        32.0 * a6f**2.5 * a4f**1.5 * A)
    f7 = ea[5] * (32.0 * A / a6f**3 + (-36.0 + 81.0 * s2 * h / A) / a4f**2) / 32.0
    f8 = ea[6] * (-3.0 * sqpi * (-40.0 * a4f**2.5 * A**3 + 9.0 * a6f**3.5 * (
        27.0 * a4f**2 - 6.0 * a4f * A + 4.0 * A**2))) / (128.0 * a6f**3.5 * a4f**2.5 * A**2)
    f9 = (324.0 * ea[5] * eb1 * a6f**4 * a4f * A + ea[7] * (
        384.0 * a4f**3 * A**3 + a6f**4 * (-729.0 * a4f**2 + 324.0 * a4f * A - 288.0 * A**2))) / (
        128.0 * a6f**4 * a4f**3 * A**2)
    t4t9 = (f4 * ws**3 + f5 * ws**4 + f6 * ws**5 + f7 * ws**6 + f8 * ws**7 + f9 * ws**8)
    t2t9 = f2 * ws + f3 * ws**2 + jnp.where(wpos, t4t9, 0.0)
    t10 = 0.5 * A * jnp.log(a4 / a6)
    term1 = jnp.where(w > _W_CUT, t1_large, t1 + t2t9 + t10)
    return -8.0 / 9.0 * (term1 + term2 + term3 + term4 + term5)


def gga_x_wpbeh(p, v: Vars):
    """Short-range (erfc) PBE exchange from the HSE exchange hole (omega = ``p['omega']``).

    eps = sum_s eps_x^LDA(n_s) F(omega / k_F,s, s_s),  k_F,s = (6 pi^2 n_s)^(1/3), with libxc's
    rescaled s (``_wpbeh_s_scaling``) floored at ``_S_MIN`` = 1e-15.
    """
    ex = 0.0
    for spin, xs2 in ((0, v.xs02), (1, v.xs12)):
        zt = z_thr(v, spin)
        kf = (3.0 * PI**2) ** (1.0 / 3.0) * opz_pow_n(zt, 1.0 / 3.0) * RS_FACTOR / v.rs
        s = m_max(_S_MIN, _wpbeh_s_scaling(X2S * jnp.sqrt(xs2)))
        val = lda_x_spin(v.rs, zt) * _wpbeh_f0(p["omega"] / kf, s)
        ex = ex + jnp.where(screen_dens(v, spin), 0.0, val)
    return ex


COMPONENTS["gga_x_wpbeh"] = Component("gga", gga_x_wpbeh, {}, 1e-14, "GGA_X_WPBEH", 0.4)
