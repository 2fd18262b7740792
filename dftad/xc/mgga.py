"""Meta-GGA kernels: TPSS, SCAN and r2SCAN exchange and correlation.

Units: Hartree and Bohr. Kernels return the energy per particle from the reduced variables of
:class:`dftad.xc.common.Vars`; ``ts_s = tau_s / n_s^(5/3)`` with tau_s = 1/2 sum_i |grad phi_is|^2.
Formulas and constants follow libxc 7.0 (``maple/mgga_exc``), including its cut-offs of the SCAN
switching function where the exponential reaches machine epsilon.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .common import (
    CBRT2,
    DBL_EPSILON,
    K_FACTOR_C,
    MU_GE,
    PI,
    X2S,
    Component,
    Vars,
    expm1_xc,
    f_zeta,
    log1p_xc,
    m_max,
    m_min,
    mphi,
    opz_pow_n,
    pow_pos,
    pow_thirds,
    screen_dens_zeta,
    z_thr_zeta,
)
from .gga import PBE_C_PARAMS, gga_c_pbe, gga_exchange, pbe_t2
from .lda import PW_MOD_PARAMS, lda_c_pw

# the meta-GGA components by dftad name, each registered below its kernel (collected with the
# other families' in dftad.xc.functional.COMPONENTS)
COMPONENTS: dict[str, Component] = {}


def mgga_exchange(enhancement, p, v: Vars):
    """Spin-scaled exchange: sum_s [n_s > thr] lda_x_spin(rs, z_thr(+-zeta)) F(xs_s^2, ts_s)."""
    return gga_exchange(enhancement, p, v, (v.ts0, v.ts1))


def t_total(z, ts0, ts1):
    """tau / n^(5/3) of the total density from the spin channels' reduced tau."""
    return ts0 * pow_pos((1.0 + z) / 2.0, 5.0 / 3.0) + ts1 * pow_pos((1.0 - z) / 2.0, 5.0 / 3.0)


def _poly(coefs, x):
    """sum_k coefs[k] x^k (Horner)."""
    out = coefs[-1]
    for c in reversed(coefs[:-1]):
        out = out * x + c
    return out


# ---------------------------------------------------------------------------------------------
# TPSS (Tao, Perdew, Staroverov, Scuseria, PRL 91, 146401 (2003))
TPSS_X_PARAMS = {
    "b": 0.40, "c": 1.59096, "e": 1.537, "kappa": 0.8040, "mu": 0.21951, "BLOC_a": 2.0,
    "BLOC_b": 0.0,
}


def tpss_x_enhancement(p, x2, t):
    """TPSS exchange enhancement F = 1 + kappa - kappa^2/(kappa + x(p, z)), eqs. (5), (7), (10):

    p = s^2, z = tau_W/tau = x^2/(8 t), alpha = (t - x^2/8)/K_FACTOR_C,
    q_b = 9/20 (alpha - 1)/sqrt(1 + b alpha (alpha - 1)) + 2p/3.
    """
    kappa, e = p["kappa"], p["e"]
    pp = X2S**2 * x2
    zz = x2 / (8.0 * t)
    alpha = (t - x2 / 8.0) / K_FACTOR_C
    qb = 0.45 * (alpha - 1.0) / jnp.sqrt(1.0 + p["b"] * alpha * (alpha - 1.0)) + 2.0 * pp / 3.0
    num = (
        (MU_GE + p["c"] * zz ** (p["BLOC_a"] + p["BLOC_b"] * zz) / (1.0 + zz**2) ** 2) * pp
        + 146.0 / 2025.0 * qb**2
        - 73.0 / 405.0 * qb * jnp.sqrt(0.5 * (9.0 / 25.0 * zz**2 + pp**2))
        + MU_GE**2 / kappa * pp**2
        + 2.0 * jnp.sqrt(e) * MU_GE * 9.0 / 25.0 * zz**2
        + e * p["mu"] * pp**3
    )
    fx = num / (1.0 + jnp.sqrt(e) * pp) ** 2
    return 1.0 + kappa * (1.0 - kappa / (kappa + fx))


def mgga_x_tpss(p, v: Vars):
    """TPSS exchange."""
    return mgga_exchange(tpss_x_enhancement, p, v)


_TPSS_XI_DEN = (2.0 * (3.0 * PI**2) ** (1.0 / 3.0)) ** 2
_TPSS_C0_POLARIZED = 1e-12
"""1 - |zeta| at or below which libxc takes C0's fully polarised limit C0 + C1 + C2 + C3."""
TPSS_C_PARAMS = {
    "beta": 0.06672455060314922, "d": 2.8, "C0_c": (0.53, 0.87, 0.50, 2.26),
    "gamma": PBE_C_PARAMS["gamma"], "pw": PW_MOD_PARAMS,
}


def mgga_c_tpss(p, v: Vars):
    """TPSS correlation, eqs. (24)-(34): revPKZB with PBE correlation as the GGA,

    eps = eps_rev (1 + d eps_rev z^3),  z = tau_W/tau (capped at 1),
    eps_rev = eps_PBE(n_a, n_b) (1 + C z^2) - (1 + C) z^2 sum_s n_s/n max(eps_PBE(n_s, 0), eps_PBE),
    C(zeta, xi) = (C0 + C1 zeta^2 + C2 zeta^4 + C3 zeta^6) / (1 + xi^2 ((1+zeta)^-4/3
    + (1-zeta)^-4/3)/2)^4.
    """
    pbe_p = {"beta": p["beta"], "gamma": p["gamma"], "BB": 1.0, "pw": p["pw"]}

    def pbe(vv):
        return gga_c_pbe(pbe_p, vv)

    z = v.z
    zt = z_thr_zeta(z)
    cc = p["C0_c"]
    xi2 = (1.0 - zt**2) * (t_total(zt, v.xs02, v.xs12) - v.xt2) / _TPSS_XI_DEN
    den = 1.0 + xi2 * (pow_thirds(1.0 + zt, -4) + pow_thirds(1.0 - zt, -4)) / 2.0
    c00 = cc[0] + cc[1] * z**2 + cc[2] * z**4 + cc[3] * z**6
    c0 = jnp.where(1.0 - jnp.abs(z) <= _TPSS_C0_POLARIZED, cc[0] + cc[1] + cc[2] + cc[3],
                   c00 / den**4)
    aux = m_min(v.xt2 / (8.0 * t_total(z, v.ts0, v.ts1)), 1.0)

    e_zt = pbe(v._replace(z=zt))
    # same-spin parts: n_s/n max(eps_PBE(n_s, fully polarised), eps_PBE(n_a, n_b))
    rs_a = v.rs * jnp.cbrt(2.0 / (1.0 + zt))
    rs_b = v.rs * jnp.cbrt(2.0 / (1.0 - zt))
    e_a = pbe(v._replace(rs=rs_a, z=jnp.ones_like(z), xt2=v.xs02))
    e_b = pbe(v._replace(rs=rs_b, z=-jnp.ones_like(z), xt2=v.xs12))
    s0 = jnp.where(
        screen_dens_zeta(v, 0), e_zt * (1.0 + z) / 2.0, m_max(e_a, e_zt) * (1.0 + zt) / 2.0)
    s1 = jnp.where(
        screen_dens_zeta(v, 1), e_zt * (1.0 - z) / 2.0, m_max(e_b, e_zt) * (1.0 - zt) / 2.0)
    par = -(1.0 + c0) * aux**2 * (s0 + s1)
    perp = (1.0 + c0 * aux**2) * pbe(v)
    f0 = par + perp
    return f0 * (1.0 + p["d"] * f0 * aux**3)


COMPONENTS["mgga_x_tpss"] = Component("mgga", mgga_x_tpss, TPSS_X_PARAMS, 1e-15, "MGGA_X_TPSS")
COMPONENTS["mgga_c_tpss"] = Component("mgga", mgga_c_tpss, TPSS_C_PARAMS, 1e-15, "MGGA_C_TPSS")


# ---------------------------------------------------------------------------------------------
# SCAN (Sun, Ruzsinszky, Perdew, PRL 115, 036402 (2015))
SCAN_X_PARAMS = {"c1": 0.667, "c2": 0.8, "d": 1.24, "k1": 0.065, "h0x": 1.174, "a1": 4.9479}
_LOG_EPS = -math.log(DBL_EPSILON)


def scan_f_alpha(a, c1, c2, d):
    """SCAN switching function f(alpha) = exp(-c1 a/(1-a)) (a <= 1), -d exp(c2/(1-a)) (a > 1),

    set to zero where the exponential is below machine epsilon (libxc's cut-offs).
    """
    left_cut = _LOG_EPS / (_LOG_EPS + c1)
    a_l = m_min(left_cut, a)
    left = jnp.where(a > left_cut, 0.0, jnp.exp(-c1 * a_l / (1.0 - a_l)))
    lr = -jnp.log(DBL_EPSILON / jnp.abs(d))
    right_cut = (lr + c2) / lr
    a_r = m_max(right_cut, a)
    right = jnp.where(a < right_cut, 0.0, -d * jnp.exp(c2 / (1.0 - a_r)))
    return jnp.where(a <= 1.0, left, right)


def _scan_h1x(k1, y):
    return 1.0 + k1 * (1.0 - k1 / (k1 + y))


def _scan_gx(a1, pp):
    """g_x(s) = 1 - exp(-a1 / s^(1/2)) with s^(1/2) = p^(1/4)."""
    return 1.0 - jnp.exp(-a1 / jnp.sqrt(jnp.sqrt(pp)))


def scan_x_enhancement(p, x2, t):
    """SCAN exchange F = [h1x(y) (1 - f(alpha)) + h0x f(alpha)] g_x(s), eqs. (S1)-(S7)."""
    k1 = p["k1"]
    pp = X2S**2 * x2
    a = (t - x2 / 8.0) / K_FACTOR_C
    b2 = math.sqrt(5913.0 / 405000.0)
    b1 = (511.0 / 13500.0) / (2.0 * b2)
    b3 = 0.5
    b4 = MU_GE**2 / k1 - 1606.0 / 18225.0 - b1**2
    y = (
        MU_GE * pp + b4 * pp**2 * jnp.exp(-b4 * pp / MU_GE)
        + (b1 * pp + b2 * (1.0 - a) * jnp.exp(-b3 * (1.0 - a) ** 2)) ** 2
    )
    fa = scan_f_alpha(a, p["c1"], p["c2"], p["d"])
    return (_scan_h1x(k1, y) * (1.0 - fa) + p["h0x"] * fa) * _scan_gx(p["a1"], pp)


def mgga_x_scan(p, v: Vars):
    """SCAN exchange."""
    return mgga_exchange(scan_x_enhancement, p, v)


SCAN_C_PARAMS = {
    "c1": 0.64, "c2": 1.5, "d": 0.7,
    "b1c": 0.0285764, "b2c": 0.0889, "b3c": 0.125541,
    "chi_infty": 0.12802585262625815, "G_cnst": 2.363,
    "beta_a": 0.066724550603149220, "beta_b": 0.1, "beta_c": 0.1778,
    "gamma": PBE_C_PARAMS["gamma"], "pw": PW_MOD_PARAMS,
}


def _scan_eclda0(p, rs):
    return -p["b1c"] / (1.0 + p["b2c"] * jnp.sqrt(rs) + p["b3c"] * rs)


def _scan_gc(p, z):
    """Spin factor G_c(zeta) = (1 - 2.363 (2^(1/3) - 1) f(zeta)) (1 - zeta^12)."""
    return (1.0 - p["G_cnst"] * (CBRT2 - 1.0) * f_zeta(z)) * (1.0 - z**12)


def _scan_e0(p, v: Vars, s2):
    """eps_c^0 = (eps_c^LDA0 + H0) G_c: the alpha = 0 (single-orbital) limit, eqs. (S35)-(S41)."""
    ec0 = _scan_eclda0(p, v.rs)
    ginf = (1.0 + 4.0 * p["chi_infty"] * s2) ** (-0.25)
    h0 = p["b1c"] * log1p_xc(expm1_xc(-ec0 / p["b1c"]) * (1.0 - ginf))
    return (ec0 + h0) * _scan_gc(p, v.z)


def _beta_rs(p, rs):
    """Hu-Langreth beta(rs) = 0.066725 (1 + 0.1 rs)/(1 + 0.1778 rs)."""
    return p["beta_a"] * (1.0 + p["beta_b"] * rs) / (1.0 + p["beta_c"] * rs)


def _scan_alpha_c(v: Vars, eta=0.0):
    """alpha = (tau - tau_W)/(tau_unif d_s(zeta) + eta tau_W) from the reduced variables."""
    ds = t_total(v.z, jnp.ones_like(v.z), jnp.ones_like(v.z))
    return (t_total(v.z, v.ts0, v.ts1) - v.xt2 / 8.0) / (K_FACTOR_C * ds + eta * v.xt2 / 8.0)


def mgga_c_scan(p, v: Vars):
    """SCAN correlation eps = eps1 + f(alpha) (eps0 - eps1),

    eps1 = eps_PW92 + gamma phi^3 ln(1 + w1 (1 - (1 + 4 A t^2)^(-1/4))),
    w1 = exp(-eps_PW92/(gamma phi^3)) - 1, A = beta(rs)/(gamma w1).
    """
    gamma = p["gamma"]
    z = v.z
    ec = lda_c_pw(p["pw"], v)
    phi3 = mphi(z) ** 3
    t2 = pbe_t2(v, z)
    w1 = expm1_xc(-ec / (gamma * phi3))
    a = _beta_rs(p, v.rs) / (gamma * w1)
    g = (1.0 + 4.0 * a * t2) ** (-0.25)
    e1 = ec + gamma * phi3 * log1p_xc(w1 * (1.0 - g))
    s2 = X2S**2 * CBRT2**2 * v.xt2
    e0 = _scan_e0(p, v, s2)
    fa = scan_f_alpha(_scan_alpha_c(v), p["c1"], p["c2"], p["d"])
    return e1 + fa * (e0 - e1)


COMPONENTS["mgga_x_scan"] = Component("mgga", mgga_x_scan, SCAN_X_PARAMS, 1e-15, "MGGA_X_SCAN")
COMPONENTS["mgga_c_scan"] = Component("mgga", mgga_c_scan, SCAN_C_PARAMS, 1e-15, "MGGA_C_SCAN")


# ---------------------------------------------------------------------------------------------
# r2SCAN (Furness, Kaplan, Ning, Perdew, Sun, JPCL 11, 8208 (2020))
# rSCAN switching-function polynomials, coefficients of alpha^0 ... alpha^7
_RSCAN_FX = (1.0, -0.667, -0.4445555, -0.663086601049, 1.451297044490, -0.887998041597,
             0.234528941479, -0.023185843322)
_RSCAN_FC = (1.0, -0.64, -0.4352, -1.535685604549, 3.061560252175, -1.915710236206,
             0.516884468372, -0.051848879792)

_RSCAN_POLY_MAX = 2.5
"""alpha up to which r2SCAN's switching function is the rSCAN polynomial."""

R2SCAN_X_PARAMS = dict(SCAN_X_PARAMS, eta=0.001, dp2=0.361, fx=_RSCAN_FX)


def r2scan_f_alpha(a, c1, c2, d, ff):
    """r2SCAN switching function: exp(-c1 a/(1-a)) for a <= 0, the rSCAN polynomial on
    0 < a <= 2.5, -d exp(c2/(1-a)) beyond."""
    a_n = m_min(a, 0.0)
    neg = jnp.exp(-c1 * a_n / (1.0 - a_n))
    mid = _poly(ff, m_min(a, _RSCAN_POLY_MAX))
    a_l = m_max(a, _RSCAN_POLY_MAX)
    large = -d * jnp.exp(c2 / (1.0 - a_l))
    return jnp.where(a <= 0.0, neg, jnp.where(a <= _RSCAN_POLY_MAX, mid, large))


def r2scan_x_enhancement(p, x2, t):
    """r2SCAN exchange F = [h1x(x) + f(alpha_bar) (h0x - h1x(x))] g_x(s), eqs. (S6)-(S12):

    alpha_bar = (t - x^2/8)/(K_FACTOR_C + eta x^2/8),
    x(p) = (C_eta C2 exp(-p^2/dp2^4) + mu_GE) p.
    """
    k1, eta, ff = p["k1"], p["eta"], p["fx"]
    pp = X2S**2 * x2
    a = (t - x2 / 8.0) / (K_FACTOR_C + eta * x2 / 8.0)
    cn = 20.0 / 27.0 + eta * 5.0 / 3.0
    c2 = -sum((k + 1) * ff[k] for k in range(8)) * (1.0 - p["h0x"])
    xx = (cn * c2 * jnp.exp(-(pp**2) / p["dp2"] ** 4) + MU_GE) * pp
    h1 = _scan_h1x(k1, xx)
    fa = r2scan_f_alpha(a, p["c1"], p["c2"], p["d"], ff)
    return (h1 + fa * (p["h0x"] - h1)) * _scan_gx(p["a1"], pp)


def mgga_x_r2scan(p, v: Vars):
    """r2SCAN exchange."""
    return mgga_exchange(r2scan_x_enhancement, p, v)


R2SCAN_C_PARAMS = dict(SCAN_C_PARAMS, eta=0.001, dp2=0.361, fc=_RSCAN_FC)


def mgga_c_r2scan(p, v: Vars):
    """r2SCAN correlation eps = eps1 + f(alpha_bar) (eps0 - eps1), eqs. (S24)-(S34):

    eps1 = eps_PW92 + gamma phi^3 ln(1 + w1 (1 - (1 + 4 (y - dy))^(-1/4))), y = beta t^2/(gamma w1),
    dy = f'(1)/(27 gamma d_s phi^3 w1) [20 rs d(eps0_LSDA - eps_PW92)/drs
         - 45 eta (eps0_LSDA - eps_PW92)] s^2 exp(-s^4/dp2^4).
    """
    gamma, eta, ff = p["gamma"], p["eta"], p["fc"]
    z, rs = v.z, v.rs
    phi3 = mphi(z) ** 3
    t2 = pbe_t2(v, z)
    s2 = X2S**2 * CBRT2**2 * v.xt2
    ds = (opz_pow_n(z, 5.0 / 3.0) + opz_pow_n(-z, 5.0 / 3.0)) / 2.0

    def lsda_diff(r):  # eps_c^LSDA0 - eps_c^LSDA1 as a function of rs at fixed zeta
        vv = v._replace(rs=r)
        return _scan_eclda0(p, r) * _scan_gc(p, z) - lda_c_pw(p["pw"], vv)

    dlsda, ddlsda = jax.jvp(lsda_diff, (rs,), (jnp.ones_like(rs),))
    ec = lda_c_pw(p["pw"], v)
    w1 = expm1_xc(-ec / (gamma * phi3))
    dfc2 = sum(k * ff[k] for k in range(1, 8))
    dy = (
        dfc2 / (27.0 * gamma * ds * phi3 * w1) * (20.0 * rs * ddlsda - 45.0 * eta * dlsda)
        * s2 * jnp.exp(-(s2**2) / p["dp2"] ** 4)
    )
    y = _beta_rs(p, rs) * t2 / (gamma * w1)
    g = (1.0 + 4.0 * (y - dy)) ** (-0.25)
    e1 = ec + gamma * phi3 * log1p_xc(w1 * (1.0 - g))
    e0 = _scan_e0(p, v, s2)
    fa = r2scan_f_alpha(_scan_alpha_c(v, eta), p["c1"], p["c2"], p["d"], ff)
    return e1 + fa * (e0 - e1)


COMPONENTS["mgga_x_r2scan"] = Component("mgga", mgga_x_r2scan, R2SCAN_X_PARAMS, 1e-11,
                                        "MGGA_X_R2SCAN")
COMPONENTS["mgga_c_r2scan"] = Component("mgga", mgga_c_r2scan, R2SCAN_C_PARAMS, 1e-15,
                                        "MGGA_C_R2SCAN")
