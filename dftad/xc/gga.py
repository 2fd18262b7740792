"""Generalised-gradient kernels: B88, PBE, PW91, LYP, the B97 power series (B97, B97-1, B97-2,
wB97X), and the short-range (erfc-attenuated) exchanges ITYH-B88 and wPBEh.

Units: Hartree and Bohr. Each kernel returns the energy per particle ``eps`` as a function of the
reduced variables in :class:`dftad.xc.common.Vars` (defined in :mod:`dftad.xc.common`); formulas
and constants follow libxc 7.0, equation numbers refer to the original papers.

Exchange kernels are spin-scaled, n eps_x = sum_s n_s eps_x^LDA(2 n_s) F(x_s), written as in
libxc as ``lda_x_spin(rs, +-z) * F(xs)`` per spin channel (a channel at or below the density
threshold contributes nothing).
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
    mphi,
    n_spin,
    opz_pow_n,
    screen_dens,
    screen_dens_zeta,
    z_thr,
)
from .lda import (
    PW_MOD_PARAMS,
    PW_PARAMS,
    lda_c_pw,
    lda_stoll_par,
    lda_stoll_perp,
    lda_x,
    lda_x_spin,
)

# the GGA components by dftad name, each registered below its kernel (collected with the
# other families' in dftad.xc.functional.COMPONENTS)
COMPONENTS: dict[str, Component] = {}


def gga_exchange(enhancement, p, v: Vars, *per_spin):
    """Spin-scaled exchange: sum_s [n_s > thr] lda_x_spin(rs, z_thr(+-zeta)) F(xs_s^2, ...),
    the enhancement factor F of xs_s^2 and of further per-spin variables ``per_spin`` (pairs
    (alpha, beta), e.g. the meta-GGAs' reduced tau)."""
    ex = 0.0
    for spin, xs2 in ((0, v.xs02), (1, v.xs12)):
        val = lda_x_spin(v.rs, z_thr(v, spin)) * enhancement(p, xs2, *(x[spin] for x in per_spin))
        ex = ex + jnp.where(screen_dens(v, spin), 0.0, val)
    return ex


# ---------------------------------------------------------------------------------------------
# Becke 88 exchange (libxc GGA_X_B88, id 106)
B88_PARAMS = {"beta": 0.0042, "gamma": 6.0}


def b88_enhancement(p, x2):
    """F(x) = 1 + beta/X_FACTOR_C x^2 / (1 + gamma beta x asinh(x)), x = |grad n_s|/n_s^(4/3)."""
    x = jnp.sqrt(x2)
    return 1.0 + p["beta"] / X_FACTOR_C * x2 / (1.0 + p["gamma"] * p["beta"] * x * jnp.arcsinh(x))


def gga_x_b88(p, v: Vars):
    """Becke 88 exchange (Phys. Rev. A 38, 3098 (1988))."""
    return gga_exchange(b88_enhancement, p, v)


COMPONENTS["gga_x_b88"] = Component("gga", gga_x_b88, B88_PARAMS, 1e-15, "GGA_X_B88")


# ---------------------------------------------------------------------------------------------
# PBE exchange (libxc GGA_X_PBE, id 101)
PBE_X_PARAMS = {"kappa": 0.8040, "mu": 0.2195149727645171}


def pbe_x_enhancement(p, x2):
    """F(s) = 1 + kappa (1 - kappa / (kappa + mu s^2)), s = X2S x (PRL 77, 3865 (1996))."""
    kappa = p["kappa"]
    return 1.0 + kappa * (1.0 - kappa / (kappa + p["mu"] * X2S**2 * x2))


def gga_x_pbe(p, v: Vars):
    """PBE exchange."""
    return gga_exchange(pbe_x_enhancement, p, v)


COMPONENTS["gga_x_pbe"] = Component("gga", gga_x_pbe, PBE_X_PARAMS, 1e-15, "GGA_X_PBE")


# ---------------------------------------------------------------------------------------------
# PW91 exchange (libxc GGA_X_PW91, id 109)
PW91_X_PARAMS = {
    "a": 0.19645, "b": 7.7956, "c": 0.2743, "d": -0.1508, "f": 0.004, "alpha": 100.0, "expo": 4.0,
}


def pw91_x_enhancement(p, x2):
    """F(s) = 1 + [(c + d e^(-alpha s^2)) s^2 - f s^expo] / [1 + s a asinh(b s) + f s^expo]."""
    s2 = X2S**2 * x2
    s = jnp.sqrt(s2)
    spow = s2 ** (p["expo"] / 2.0)
    num = (p["c"] + p["d"] * jnp.exp(-p["alpha"] * s2)) * s2 - p["f"] * spow
    den = 1.0 + s * p["a"] * jnp.arcsinh(p["b"] * s) + p["f"] * spow
    return 1.0 + num / den


def gga_x_pw91(p, v: Vars):
    """Perdew-Wang 91 exchange."""
    return gga_exchange(pw91_x_enhancement, p, v)


COMPONENTS["gga_x_pw91"] = Component("gga", gga_x_pw91, PW91_X_PARAMS, 1e-15, "GGA_X_PW91")


# ---------------------------------------------------------------------------------------------
# PBE correlation (libxc GGA_C_PBE, id 130)
PBE_C_PARAMS = {
    "beta": 0.06672455060314922,
    "gamma": (1.0 - math.log(2.0)) / PI**2,
    "BB": 1.0,
    "pw": PW_MOD_PARAMS,
}


def pbe_t2(v: Vars, z):
    """Squared reduced gradient of correlation, t = xt / (4 2^(1/3) phi sqrt(rs))."""
    phi = mphi(z)
    return v.xt2 / (16.0 * CBRT2**2 * phi**2 * v.rs)


def pbe_H(p, v: Vars, ec, beta):
    """Gradient correction of PBE, eq. (7)-(8): H = gamma phi^3 ln(1 + beta/gamma t^2 (1 + A t^2)
    / (1 + A t^2 + A^2 t^4)),  A = beta / gamma / (exp(-eps_c/(gamma phi^3)) - 1)."""
    gamma = p["gamma"]
    phi3 = mphi(v.z) ** 3
    t2 = pbe_t2(v, v.z)
    a = beta / (gamma * expm1_xc(-ec / (gamma * phi3)))
    f1 = t2 + p["BB"] * a * t2 * t2
    f2 = beta * f1 / (gamma * (1.0 + a * f1))
    return gamma * phi3 * log1p_xc(f2)


def gga_c_pbe(p, v: Vars):
    """PBE correlation: eps_c = eps_c^PW92(mod) + H(rs, z, t)."""
    ec = lda_c_pw(p["pw"], v)
    return ec + pbe_H(p, v, ec, p["beta"])


COMPONENTS["gga_c_pbe"] = Component("gga", gga_c_pbe, PBE_C_PARAMS, 1e-12, "GGA_C_PBE")


# ---------------------------------------------------------------------------------------------
# PW91 correlation (libxc GGA_C_PW91, id 134)
PW91_C_PARAMS = {
    "C_c0": 4.235e-3,
    "alpha": 0.09,
    "rg_a": (2.568, 23.266, 0.007389),
    "rg_b": (1.0, 8.723, 0.472),
    "C_xc0": 2.568e-3,
    "C_x": -0.001667,
    "pw": PW_PARAMS,
}
_PW91_NU = 16.0 / PI * (3.0 * PI**2) ** (1.0 / 3.0)
_PW91_HA1 = -100.0 * 4.0 / PI * (4.0 / (9.0 * PI)) ** (1.0 / 3.0)


def gga_c_pw91(p, v: Vars):
    """PW91 correlation: eps_c^PW92 + H0 + H1 (Perdew et al., PRB 46, 6671 (1992), eqs. 13-15).

    H0 = beta^2/(2 alpha) phi^3 ln(1 + 2alpha/beta (t^2 + A t^4)/(1 + A t^2 + A^2 t^4)),
    H1 = nu (C_c(rs) - C_c(0) - 3 C_x/7) phi^3 t^2 exp(-100 (4/pi)(4/(9 pi))^(1/3) rs phi^4 t^2),
    with nu = 16/pi (3 pi^2)^(1/3), beta = nu C_c0 and the Rasolt-Geldart Pade C_xc(rs).
    """
    ec = lda_c_pw(p["pw"], v)
    beta = _PW91_NU * p["C_c0"]
    c1 = beta**2 / (2.0 * p["alpha"])
    c2 = 2.0 * p["alpha"] / beta
    phi = mphi(v.z)
    phi3 = phi**3
    t2 = pbe_t2(v, v.z)
    a = c2 / expm1_xc(-2.0 * p["alpha"] * ec / (phi3 * beta**2))
    h0 = c1 * phi3 * log1p_xc(c2 * (t2 + a * t2 * t2) / (1.0 + a * t2 + a * a * t2 * t2))
    rs = v.rs
    ra, rb = p["rg_a"], p["rg_b"]
    cxc = (ra[0] + ra[1] * rs + ra[2] * rs**2) / (1000.0 * (rb[0] + rb[1] * rs + rb[2] * rs**2))
    h1 = (
        _PW91_NU * (cxc - p["C_xc0"] - 3.0 * p["C_x"] / 7.0)
        * phi3 * t2 * jnp.exp(_PW91_HA1 * rs * phi**4 * t2)
    )
    return ec + h0 + h1


COMPONENTS["gga_c_pw91"] = Component("gga", gga_c_pw91, PW91_C_PARAMS, 1e-12, "GGA_C_PW91")


# ---------------------------------------------------------------------------------------------
# Lee-Yang-Parr correlation (libxc GGA_C_LYP, id 131)
LYP_PARAMS = {"a": 0.04918, "b": 0.132, "c": 0.2533, "d": 0.349}
_LYP_CF = 3.0 / 10.0 * (3.0 * PI**2) ** (2.0 / 3.0)


def gga_c_lyp(p, v: Vars):
    """LYP correlation in the Miehlich et al. form (Chem. Phys. Lett. 157, 200 (1989)),

    written like libxc in rr = n^(-1/3), zeta and the reduced gradients.
    """
    a, b, c, d = p["a"], p["b"], p["c"], p["d"]
    z = v.z
    rr = v.rs / RS_FACTOR
    omega = b * jnp.exp(-c * rr) / (1.0 + d * rr)
    delta = (c + d / (1.0 + d * rr)) * rr
    aux6 = 1.0 / 2.0 ** (8.0 / 3.0)
    aux4 = aux6 / 4.0
    aux5 = aux4 / 18.0
    omz2 = 1.0 - z * z
    p83, m83 = opz_pow_n(z, 8.0 / 3.0), opz_pow_n(-z, 8.0 / 3.0)
    p113, m113 = opz_pow_n(z, 11.0 / 3.0), opz_pow_n(-z, 11.0 / 3.0)
    x0, x1 = v.xs02, v.xs12
    t1 = -omz2 / (1.0 + d * rr)
    t2 = -v.xt2 * (omz2 * (47.0 - 7.0 * delta) / 72.0 - 2.0 / 3.0)
    t3 = -_LYP_CF / 2.0 * omz2 * (p83 + m83)
    t4 = aux4 * omz2 * (2.5 - delta / 18.0) * (x0 * p83 + x1 * m83)
    t5 = aux5 * omz2 * (delta - 11.0) * (x0 * p113 + x1 * m113)
    t6 = -aux6 * (
        2.0 / 3.0 * (x0 * p83 + x1 * m83)
        - opz_pow_n(z, 2.0) * x1 * m83 / 4.0
        - opz_pow_n(-z, 2.0) * x0 * p83 / 4.0
    )
    return a * (t1 + omega * (t2 + t3 + t4 + t5 + t6))


COMPONENTS["gga_c_lyp"] = Component("gga", gga_c_lyp, LYP_PARAMS, 1e-14, "GGA_C_LYP")


# ---------------------------------------------------------------------------------------------
# B97 power series (libxc HYB_GGA_XC_B97, B97_1, B97_2: ids 407, 408, 410)
def b97_g(gamma, cc, x2):
    """Becke's series g(x) = sum_i c_i u^i,  u = gamma x^2 / (1 + gamma x^2)."""
    u = gamma * x2 / (1.0 + gamma * x2)
    g = cc[-1]
    for ci in reversed(cc[:-1]):
        g = g * u + ci
    return g


def b97_correlation(p, v: Vars):
    """Same-spin and opposite-spin PW92 correlation (Stoll partition) times B97 series."""
    par = lda_stoll_par(lda_c_pw, p["pw"], v, 0) * b97_g(p["gamma_ss"], p["c_ss"], v.xs02)
    par = par + lda_stoll_par(lda_c_pw, p["pw"], v, 1) * b97_g(p["gamma_ss"], p["c_ss"], v.xs12)
    perp = lda_stoll_perp(lda_c_pw, p["pw"], v)
    perp = perp * b97_g(p["gamma_ab"], p["c_ab"], (v.xs02 + v.xs12) / 2.0)
    return par + perp


_LDA_X1 = {"alpha": 1.0}


def gga_xc_b97(p, v: Vars):
    """B97-type exchange-correlation (Becke, JCP 107, 8554 (1997)):

    eps = sum_s eps_x^LDA(n_s) g_x(x_s) + sum_s eps_c^PW(n_s, 0) g_ss(x_s)
          + eps_c^ab g_ab(x_ab),  x_ab^2 = (x_a^2 + x_b^2)/2.
    """
    ex = lda_stoll_par(lda_x, _LDA_X1, v, 0) * b97_g(p["gamma_x"], p["c_x"], v.xs02)
    ex = ex + lda_stoll_par(lda_x, _LDA_X1, v, 1) * b97_g(p["gamma_x"], p["c_x"], v.xs12)
    return ex + b97_correlation(p, v)


def _b97_params(cx, css, cab):
    return {
        "c_x": cx, "c_ss": css, "c_ab": cab,
        "gamma_x": 0.004, "gamma_ss": 0.2, "gamma_ab": 0.006, "pw": PW_PARAMS,
    }


B97_PARAMS = _b97_params(
    (0.8094, 0.5073, 0.7481, 0.0, 0.0), (0.1737, 2.3487, -2.4868, 0.0, 0.0),
    (0.9454, 0.7471, -4.5961, 0.0, 0.0))
B97_1_PARAMS = _b97_params(
    (0.789518, 0.573805, 0.660975, 0.0, 0.0), (0.0820011, 2.71681, -2.87103, 0.0, 0.0),
    (0.955689, 0.788552, -5.47869, 0.0, 0.0))
B97_2_PARAMS = _b97_params(
    (0.827642, 0.04784, 1.76125, 0.0, 0.0), (0.585808, -0.691682, 0.394796, 0.0, 0.0),
    (0.999849, 1.40626, -7.4406, 0.0, 0.0))


COMPONENTS["gga_xc_b97"] = Component("gga", gga_xc_b97, B97_PARAMS, 1e-14, "HYB_GGA_XC_B97")
COMPONENTS["gga_xc_b97_1"] = Component("gga", gga_xc_b97, B97_1_PARAMS, 1e-14, "HYB_GGA_XC_B97_1")
COMPONENTS["gga_xc_b97_2"] = Component("gga", gga_xc_b97, B97_2_PARAMS, 1e-14, "HYB_GGA_XC_B97_2")


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
