"""Generalised-gradient kernels: B88, PBE, PW91, LYP and the B97 power series (B97, B97-1,
B97-2); the short-range kernels of range-separated hybrids are in :mod:`dftad.xc.gga_sr`.

Units: Hartree and Bohr. Each kernel returns the energy per particle ``eps`` as a function of the
reduced variables in :class:`dftad.xc.common.Vars` (defined in :mod:`dftad.xc.common`); formulas
and constants follow libxc 7.0, equation numbers refer to the original papers.

Exchange kernels are spin-scaled, n eps_x = sum_s n_s eps_x^LDA(2 n_s) F(x_s), written as in
libxc as ``lda_x_spin(rs, +-z) * F(xs)`` per spin channel (a channel at or below the density
threshold contributes nothing).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from .common import (
    CBRT2,
    PI,
    RS_FACTOR,
    X2S,
    X_FACTOR_C,
    Component,
    Vars,
    expm1_xc,
    log1p_xc,
    mphi,
    opz_pow_n,
    screen_dens,
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
