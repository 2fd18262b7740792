"""Local (spin-)density approximation kernels: Slater exchange, VWN (VWN5 and RPA) and PW92
correlation, and the Stoll same-spin/opposite-spin partition of an LDA kernel.

Units: Hartree and Bohr. Kernels return the energy per particle ``eps(rs, zeta)`` of the reduced
variables :class:`dftad.xc.common.Vars` (defined in :mod:`dftad.xc.common`); formulas and
constants follow libxc 7.0.
"""

from __future__ import annotations

import jax.numpy as jnp

from .common import (
    CBRT2,
    LDA_X_FACTOR,
    PI,
    RS_FACTOR,
    Component,
    Vars,
    f_zeta,
    log1p_xc,
    n_total,
    opz_pow_n,
    screen_dens,
    screen_dens_zeta,
    spin_z,
)

# the LDA components by dftad name, each registered below its kernel (collected with the
# other families' in dftad.xc.functional.COMPONENTS)
COMPONENTS: dict[str, Component] = {}

# ---------------------------------------------------------------------------------------------
# Slater exchange  (libxc LDA_X, id 1)
LDA_X_PARAMS = {"alpha": 1.0}


def lda_x_spin(rs, z):
    """Slater exchange per particle of one spin channel, (1+z)^(4/3) 2^(-4/3) e_x^unif(rs)."""
    return LDA_X_FACTOR * opz_pow_n(z, 4.0 / 3.0) * 2.0 ** (-4.0 / 3.0) * (RS_FACTOR / rs)


def lda_x(p, v: Vars):
    """Slater exchange, eps_x = alpha sum_s -(3/4) (6/pi)^(1/3) n_s^(4/3) / n  (Hartree).

    Written per spin channel as ``lda_x_spin``; channels whose density is at or below the
    threshold contribute nothing. ``alpha`` = 1 is Dirac/Slater exchange.
    """
    ex = jnp.where(screen_dens(v, 0), 0.0, lda_x_spin(v.rs, v.z))
    ex = ex + jnp.where(screen_dens(v, 1), 0.0, lda_x_spin(v.rs, -v.z))
    return p["alpha"] * ex


COMPONENTS["lda_x"] = Component("lda", lda_x, LDA_X_PARAMS, 1e-15, "LDA_X")


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


COMPONENTS["lda_c_vwn"] = Component("lda", lda_c_vwn, VWN5_PARAMS, 1e-15, "LDA_C_VWN")
COMPONENTS["lda_c_vwn_rpa"] = Component("lda", lda_c_vwn_rpa, VWN_RPA_PARAMS, 1e-15,
                                        "LDA_C_VWN_RPA")


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


COMPONENTS["lda_c_pw"] = Component("lda", lda_c_pw, PW_PARAMS, 1e-15, "LDA_C_PW")
COMPONENTS["lda_c_pw_mod"] = Component("lda", lda_c_pw, PW_MOD_PARAMS, 1e-15, "LDA_C_PW_MOD")


# ---------------------------------------------------------------------------------------------
# Stoll partition of an LDA kernel into same-spin and opposite-spin parts (used by B97)
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
