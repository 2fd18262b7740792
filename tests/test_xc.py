"""XC functionals vs libxc (through PySCF), NaN-safety, parameter derivatives, jit/vmap.

Reference: ``pyscf.dft.libxc.eval_xc`` (libxc 7.0). Tolerance: 1e-10 relative with a 1e-12 absolute
floor, on exc (per particle), vrho, vsigma and vtau (dftad's from AD of the energy density).

Where the comparison is restricted, and why (measured, see the module's helpers):

* libxc's ln(1 + x) and exp(x) - 1 (dftad uses the same forms by default): where x is tiny
  they lose digits in a piecewise-constant way; points where dftad's evaluation with these forms
  and with log1p/expm1 differ by more than a tenth of the tolerance are left out (mostly
  n < 1e-10 with small gradients, where libxc's PBE-type corrections are off by up to 1e-2).
* libxc's own rounding noise. For each point libxc is evaluated at inputs perturbed by +-delta
  (relative, random sign per input, delta = 1e-13 ... 1e-11); the second difference of its
  outputs measures its rounding noise (the smooth part is O(delta^2)), and points where that
  noise exceeds a tenth of the tolerance are left out. This removes e.g. low-density points of
  erfc-attenuated B88 (ITYH), whose vsigma loses digits to cancellation between the
  enhancement factor and the attenuation in libxc and dftad alike.
* The kink of TPSS correlation at tau_W/tau = 1 (libxc caps the ratio at 1): at tau = tau_W
  exactly, rounding decides the branch (derivatives differ by orders of magnitude), so points
  within 1e-8 of the cap are left out for functionals with TPSS correlation.
* wPBEh exchange (the semilocal part of LC-wPBE, libxc GGA_X_WPBEH): its erfc-integrated HSE
  hole formula cancels catastrophically for 2.5 < omega/k_F,s < 14 (up to 6 digits lost in the
  enhancement factor, in libxc and dftad alike: checked against mpmath below) and its
  s-derivative for s < 5e-3; such points are left out of the libxc comparison and the formula is
  checked against a 50-digit evaluation instead.
* Spin polarisation: |zeta| <= 1 - 1e-4 in the random sets (libxc's derivatives lose digits as
  (1 - |zeta|)^-1 eps through its zeta chain rule). Fully polarised points (n_b = 0) are checked
  separately, each output value where libxc's is quiet (the potentials of the empty channel are
  mostly noise in libxc: for B3LYP vrho_b is quiet at 40% of the points, for wB97X at 2%), and
  TPSS correlation's vsigma_bb only where libxc's C0 takes its |zeta| -> 1 limit.
* Molecular grids: points with n >= 1e-8 (see ``molecular_mask``); and for PBE-type correlation
  (PBE, PW91, TPSS, SCAN, r2SCAN) points where the gradient correction cancels the LDA
  correlation to less than 1% (tails with s > 100, ``correlation_cancellation_mask``).
* Sums of components (named functionals) are compared relative to the sum of the magnitudes of
  the weighted components (e.g. PBE's vsigma, where exchange and correlation cancel to 1e-8).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import fd_directional
from jax.flatten_util import ravel_pytree
from pyscf import dft, gto
from pyscf.dft import libxc

from dftad.xc import COMPONENTS, NAMED, Functional, eval_xc, libxc_arithmetic, parse_xc
from dftad.xc.gga_sr import _wpbeh_f0

RTOL, ATOL = 1e-10, 1e-12
# libxc's default omega for the short-range components (used when comparing them alone)
LIBXC_OMEGA = {"gga_x_ityh": 0.2, "gga_xc_wb97x": 0.3, "gga_x_wpbeh": 0.0}
NVAR = {"lda": 1, "gga": 4, "mgga": 6}

NAMED_STRINGS = [
    "lda,vwn", "svwn", "blyp", "pbe", "pw91", "b3lyp", "b3lyp5", "pbe0", "b97", "b97-1", "b97-2",
    "camb3lyp", "wb97x", "lc_wpbe", "tpss", "scan", "r2scan",
    ".2*HF + .08*LDA + .72*B88, .81*LYP + .19*VWN",
]


# ------------------------------------------------------------------------------------------------
# densities
def random_density(n, spin, seed=0, lo=-10.0, hi=3.0):
    """PySCF-layout densities: n log-uniform in [1e-10, 1e3], reduced gradient s log-uniform in
    [1e-3, 10], tau = tau_W + alpha tau_unif with alpha in [0, 4] (exactly 0 and 1 included)."""
    rng = np.random.default_rng(seed)
    if spin == 0:
        r = 10 ** rng.uniform(lo, hi, n)
        s = 10 ** rng.uniform(-3, 1, n)
        sig = (2 * (3 * math.pi**2) ** (1 / 3) * s * r ** (4 / 3)) ** 2
        a = rng.uniform(0, 4, n)
        a[::7], a[1::7] = 0.0, 1.0
        out = np.zeros((6, n))
        out[0], out[1] = r, np.sqrt(sig)
        out[5] = sig / (8 * r) + a * 0.3 * (3 * math.pi**2) ** (2 / 3) * r ** (5 / 3)
        return out
    out = np.zeros((2, 6, n))
    cos = rng.uniform(-1, 1, n)
    ntot = 10 ** rng.uniform(lo, hi, n)
    zeta = rng.uniform(-1, 1, n) * (1 - 1e-4)
    for k in range(2):
        r = ntot * (1 + (1 - 2 * k) * zeta) / 2
        s = 10 ** rng.uniform(-3, 1, n)
        sig = (2 * (6 * math.pi**2) ** (1 / 3) * s * r ** (4 / 3)) ** 2
        a = rng.uniform(0, 4, n)
        a[::7], a[1::7] = 0.0, 1.0
        out[k, 0] = r
        out[k, 5] = sig / (8 * r) + a * 0.3 * (6 * math.pi**2) ** (2 / 3) * r ** (5 / 3)
        g = np.sqrt(sig)
        if k == 0:
            out[0, 1] = g
        else:
            out[1, 1], out[1, 2] = g * cos, g * np.sqrt(1 - cos * cos)
    return out


_MOL = {
    "water": "O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692",
    "benzene": """C 0 1.3970 0; C 1.2098 0.6985 0; C 1.2098 -0.6985 0; C 0 -1.3970 0;
        C -1.2098 -0.6985 0; C -1.2098 0.6985 0; H 0 2.4810 0; H 2.1486 1.2405 0;
        H 2.1486 -1.2405 0; H 0 -2.4810 0; H -2.1486 -1.2405 0; H -2.1486 1.2405 0""",
}
_MOL_CACHE = {}


def molecular_density(name, spin, level=1):
    """PySCF rho (rho, grad, laplacian, tau rows) of a def2-SVP initial-guess density on a PySCF
    grid; spin=1 uses the cation doublet (different alpha and beta densities)."""
    key = (name, spin, level)
    if key not in _MOL_CACHE:
        mol = gto.M(atom=_MOL[name], basis="def2-svp", charge=spin, spin=spin, verbose=0)
        grids = dft.gen_grid.Grids(mol)
        grids.level = level
        grids.build()
        ao = dft.numint.eval_ao(mol, grids.coords, deriv=2)
        if spin == 0:
            dm = dft.RKS(mol).get_init_guess()
            rho = dft.numint.eval_rho(mol, ao, dm, xctype="MGGA")
        else:
            dma, dmb = dft.UKS(mol).get_init_guess()
            rho = np.stack([dft.numint.eval_rho(mol, ao, d, xctype="MGGA") for d in (dma, dmb)])
        _MOL_CACHE[key] = rho
    return _MOL_CACHE[key]


MOL_MIN_DENSITY = 1e-8


def molecular_mask(x, spin):
    """Molecular grid points with n >= 1e-8. Further out the initial-guess densities have reduced
    gradients s > 100, where PBE-type gradient corrections cancel the LDA correlation to 6 or
    more digits (eps_c + H -> 0), so libxc's and dftad's potentials there are rounding noise."""
    if x.ndim == spin + 1:  # LDA layout: (ngrid,) or (2, ngrid)
        n = x if spin == 0 else x[0] + x[1]
    else:
        n = x[0] if spin == 0 else x[0, 0] + x[1, 0]
    return n >= MOL_MIN_DENSITY


_PBE_LIKE = {"gga_c_pbe", "gga_c_pw91", "mgga_c_tpss", "mgga_c_scan", "mgga_c_r2scan"}


def correlation_cancellation_mask(f, x, spin):
    """Points where PBE-type gradient corrections do not cancel the LDA correlation.

    For t -> infinity (molecular tails: s > 100) H -> -eps_c^LDA, and eps_c = eps_c^LDA + H keeps
    only a fraction of the digits of either term (libxc and dftad alike: their potentials then
    differ by up to 1e-7 relative). Points where |eps_c^PBE| < 1e-2 |eps_c^PW92| are left out of
    the comparison for functionals with such a correlation."""
    if not _PBE_LIKE.intersection(f.components):
        return np.ones(x.shape[-1], bool)
    full = np.abs(ours(component_functional("gga_c_pbe"), x, spin)[0])
    lda = np.abs(ours(component_functional("lda_c_pw_mod"), for_family(x, spin, "lda"), spin)[0])
    return full >= 1e-2 * lda


def for_family(rho, spin, family):
    nv = NVAR[family]
    x = rho[:nv] if spin == 0 else rho[:, :nv]
    if nv == 1:
        x = x[0] if spin == 0 else x[:, 0]
    return np.ascontiguousarray(x)


# ------------------------------------------------------------------------------------------------
# comparison machinery
def _flat(out):
    v = list(out[1]) + [None] * 4
    return [out[0], v[0], v[1], v[3]]


def libxc_reference(xc, x, spin, omega=None, alpha_only=False, per_element=False):
    """libxc's (exc, vrho, vsigma, vtau) and a mask of points where its rounding noise is small
    (``alpha_only``: judged on exc and the first column of each potential; ``per_element``: one
    mask per output, of that output's shape, judging each value on its own)."""
    ref = _flat(libxc.eval_xc(xc, x, spin=spin, deriv=1, omega=omega))
    rng = np.random.default_rng(7)
    npt = x.shape[-1]
    quiet = np.ones(npt, bool)
    quiet_el = [None if b is None else np.ones(np.shape(b), bool) for b in ref]
    for delta in (1e-13, 1e-12, 1e-11, 1e-11):
        pert = delta * rng.uniform(0.5, 1.0, x.shape) * rng.choice([-1.0, 1.0], x.shape)
        rp = _flat(libxc.eval_xc(xc, x * (1 + pert), spin=spin, deriv=1, omega=omega))
        rm = _flat(libxc.eval_xc(xc, x * (1 - pert), spin=spin, deriv=1, omega=omega))
        for i, (b, bp, bm) in enumerate(zip(ref, rp, rm)):
            if b is None:
                continue
            noisy_el = np.abs(bp + bm - 2 * b) > 0.1 * (RTOL * np.abs(b) + ATOL)
            quiet_el[i] &= ~noisy_el
            if alpha_only and i > 0:
                noisy_el = noisy_el[:, 0]
            quiet &= ~noisy_el.reshape(npt, -1).any(axis=1)
    return ref, (quiet_el if per_element else quiet)


def ours(f, x, spin):
    return [None if v is None else np.asarray(v) for v in eval_xc(f, x, spin=spin)]


def compare(f, xc, x, spin, omega=None, mask=None, max_excluded=None):
    """Assert dftad == libxc on the reliable points; return the max relative errors.

    The more expensive exclusions (libxc's ln(1 + x) forms, the component scale of sums) are
    only evaluated when the plain comparison finds points off; the outcome is the same as
    computing them up front.
    """
    if max_excluded is None:  # libxc's wPBEh is noisy at small s and 2.5 < w < 14 (see top)
        max_excluded = 0.5 if "gga_x_wpbeh" in f.components else 0.35
    ref, quiet = libxc_reference(xc, x, spin, omega)
    got = ours(f, x, spin)
    npt = x.shape[-1]

    def check(keep, scale):
        bad, errs = np.zeros(npt, bool), {}
        for i, name in enumerate(("exc", "vrho", "vsigma", "vtau")):
            a, b = got[i], ref[i]
            if b is None:
                continue
            assert a is not None, name
            a, b = a.reshape(b.shape), np.asarray(b)
            mag = np.abs(b) if scale is None else np.maximum(np.abs(b), scale[i].reshape(b.shape))
            err = np.abs(a - b)
            off = (err > RTOL * mag + ATOL).reshape(npt, -1).any(axis=1) & keep
            if off.any():
                errs[name + " points off"] = int(off.sum())
            bad |= off
            # reported: max relative error where |value| >= ATOL / RTOL (there the relative
            # criterion is the binding one; below it the 1e-12 absolute floor is)
            big = mag >= ATOL / RTOL
            rel = np.where(big, err / np.where(big, mag, 1.0), 0.0).reshape(npt, -1).max(axis=1)
            errs[name] = float(np.max(rel[keep], initial=0.0))
        return bad, errs

    keep = quiet if mask is None else quiet & mask
    bad, errs = check(keep, None)
    if bad.any():
        # libxc's ln(1 + x) / exp(x) - 1 lose digits where x is tiny; rounding then decides
        # (piecewise constant, invisible to the perturbation test): leave out points where these
        # forms and log1p/expm1 differ by more than a tenth of the tolerance in dftad
        with libxc_arithmetic(False):
            accurate = ours(f, x, spin)
        for a, b in zip(got, accurate):
            if a is not None:
                d = np.abs(a - b)
                quiet &= ~(d > 0.1 * (RTOL * np.abs(b) + ATOL)).reshape(npt, -1).any(axis=1)
        keep = quiet if mask is None else quiet & mask
        scale = None
        if len(f.components) > 1:  # magnitude of the weighted components, for sums that cancel
            parts = []
            for name, w in zip(f.components, f.params["weights"]):
                g = Functional.from_components([(name, float(w))], omega=float(f.omega))
                parts.append([None if v is None else np.abs(v) for v in ours(g, x, spin)])
            scale = [None if got[i] is None else sum(p[i] for p in parts if p[i] is not None)
                     for i in range(4)]
        bad, errs = check(keep, scale)
    assert quiet.mean() >= 1 - max_excluded, f"{xc}: libxc noisy at {np.sum(~quiet)} points"
    assert keep.sum() >= min(100, keep.size // 2), f"{xc}: only {keep.sum()} points compared"
    assert not bad.any(), f"{xc} spin={spin}: {errs}"
    return errs


def tpss_kink_mask(x, spin):
    """Points away from tau_W/tau = 1 (the capped ratio in TPSS correlation)."""
    if spin == 0:
        n, sig, tau = x[0], np.sum(x[1:4] ** 2, 0), x[5]
    else:
        n = x[0, 0] + x[1, 0]
        g = x[0, 1:4] + x[1, 1:4]
        sig, tau = np.sum(g * g, 0), x[0, 5] + x[1, 5]
    ratio = sig / (8 * n * np.maximum(tau, 1e-300))
    return np.abs(ratio - 1) > 1e-8


def wpbeh_mask(x, spin, omega):
    """Points where every spin channel of wPBEh exchange is numerically well conditioned."""
    chans = [(x[0] / 2, np.sum(x[1:4] ** 2, 0) / 4)] if spin == 0 else [
        (x[k, 0], np.sum(x[k, 1:4] ** 2, 0)) for k in range(2)]
    ok = np.ones(x.shape[-1], bool)
    for n, sig in chans:
        with np.errstate(divide="ignore", invalid="ignore"):  # empty channels: n = 0
            kf = (6 * math.pi**2 * n) ** (1 / 3)
            w = omega / kf
            s = np.sqrt(sig) / (2 * kf * n)
        ok &= (n < 1e-14) | (((w < 2.5) | (w > 14)) & (s > 5e-3))
    return ok


def masks_for(f, x, spin):
    mask = correlation_cancellation_mask(f, x, spin)
    if "mgga_c_tpss" in f.components:
        mask &= tpss_kink_mask(x, spin)
    if "gga_x_wpbeh" in f.components:
        mask &= wpbeh_mask(x, spin, float(f.omega))
    return mask


def component_functional(name):
    return Functional.from_components([(name, 1.0)], omega=LIBXC_OMEGA.get(name, 0.0))


# ------------------------------------------------------------------------------------------------
# accuracy vs libxc
@pytest.mark.parametrize("npt, seed", [
    (1500, 11), pytest.param(40000, 101, marks=pytest.mark.slow, id="large")])
@pytest.mark.parametrize("spin", [0, 1])
@pytest.mark.parametrize("name", list(COMPONENTS))
def test_component_random(name, spin, npt, seed):
    comp = COMPONENTS[name]
    f = component_functional(name)
    x = for_family(random_density(npt, spin, seed=seed + spin), spin, comp.family)
    compare(f, comp.libxc, x, spin, mask=masks_for(f, x, spin))


@pytest.mark.parametrize("spin", [0, 1])
@pytest.mark.parametrize("xc", NAMED_STRINGS)
def test_named_random(xc, spin):
    f = parse_xc(xc)
    x = for_family(random_density(1500, spin, seed=23 + spin), spin, f.family)
    compare(f, xc, x, spin, mask=masks_for(f, x, spin))


@pytest.mark.parametrize("spin", [0, 1])
@pytest.mark.parametrize("xc", ["b3lyp", "lc_wpbe", "scan"])
def test_named_water(xc, spin):
    f = parse_xc(xc)
    x = for_family(molecular_density("water", spin), spin, f.family)
    compare(f, xc, x, spin, mask=masks_for(f, x, spin) & molecular_mask(x, spin))


@pytest.mark.parametrize("xc", ["b3lyp", "scan"])
def test_named_benzene(xc):
    f = parse_xc(xc)
    x = for_family(molecular_density("benzene", 0), 0, f.family)
    compare(f, xc, x, 0, mask=masks_for(f, x, 0) & molecular_mask(x, 0))


@pytest.mark.slow
@pytest.mark.parametrize("spin", [0, 1])
@pytest.mark.parametrize("mol", ["water", "benzene"])
@pytest.mark.parametrize("xc", NAMED_STRINGS)
def test_named_molecules_full(xc, mol, spin):
    f = parse_xc(xc)
    x = for_family(molecular_density(mol, spin, level=3), spin, f.family)
    compare(f, xc, x, spin, mask=masks_for(f, x, spin) & molecular_mask(x, spin))


FULLY_POLARIZED = ["b3lyp", "lc_wpbe"]
FULLY_POLARIZED_SLOW = ["scan", "wb97x", "pbe", "r2scan", "tpss", "camb3lyp", "b97-1", "pw91"]


@pytest.mark.parametrize("xc", FULLY_POLARIZED + [
    pytest.param(x, marks=pytest.mark.slow) for x in FULLY_POLARIZED_SLOW])
def test_fully_polarized(xc):
    """rho_b = 0 exactly: exc and every potential, the beta ones included, equal libxc's (which
    raises rho_b, sigma_bb and tau_b to its thresholds) and are finite. The beta potentials there
    depend on how 1 - zeta ~ 1e-14 rounds (VWN's vrho_b by 1e-8, SCAN's vtau_b by 1e-2 per ulp
    of n_a), so points where libxc itself moves under 1e-13 relative perturbations are left out,
    as everywhere in this file."""
    f = parse_xc(xc)
    x = for_family(random_density(600, 1, seed=5), 1, f.family)
    x[1] = 0.0
    x = x[:, :, x[0, 0] > 1e-8] if x.ndim == 3 else x[:, x[0] > 1e-8]
    ref, quiet = libxc_reference(xc, x, 1, per_element=True)
    mask = masks_for(f, x, 1)
    got = ours(f, x, 1)
    for i in range(4):
        if ref[i] is None:
            continue
        assert np.all(np.isfinite(got[i]))
        a = got[i].reshape(ref[i].shape)
        keep = quiet[i] & (mask if i == 0 else mask[:, None])
        for col in range(1 if i == 0 else a.shape[1]):
            k = keep if i == 0 else keep[:, col]
            if i == 2 and col == 2 and "mgga_c_tpss" in f.components:
                # TPSS correlation's C0(zeta) has a derivative that diverges as |zeta| -> 1;
                # libxc switches C0 to its limit where 1 - |zeta| <= 1e-12 and is noise above
                # (its "severe numerical instabilities"): at n_b = 0 (raised to 1e-15), 1 - zeta
                # = 2e-15 / n_a, so vsigma_bb is compared where n_a >= 2e-3 only
                k = k & (2e-15 / x[0, 0] <= 1e-12)
            if i == 0 or col == 0:  # exc and the occupied channel: libxc is accurate there
                assert k.mean() > 0.5, (i, col, k.mean())
            b_col, a_col = (ref[i], a) if i == 0 else (ref[i][:, col], a[:, col])
            np.testing.assert_allclose(a_col[k], b_col[k], rtol=RTOL, atol=ATOL)


def test_wpbeh_formula_mpmath():
    """The wPBEh enhancement factor equals a 50-digit evaluation of libxc's formula to the
    rounding that formula allows (it loses up to ~6 digits for 5 < w < 14; measured bounds)."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    from dftad.xc import gga_sr as gga

    def f0(w, s):  # libxc maple/gga_exc/gga_x_wpbeh.mpl, term by term, in mpmath
        A, B, C, D, E = (mp.mpf(repr(v)) for v in (gga._WA, gga._WB, gga._WC, gga._WD, gga._WE))
        ha = [mp.mpf(repr(v)) for v in gga._HA]
        ea = [mp.mpf(repr(v)) for v in gga._EA]
        s2 = s * s
        H = (ha[0] * s2 + ha[1] * s2**2) / (1 + ha[2] * s2**2 + ha[3] * s2**2 * s + ha[4] * s2**3)
        F = mp.mpf(repr(gga._FC1)) * H + mp.mpf(repr(gga._FC2))
        a1 = D + s2 * H
        a2 = 9 * H * s2 / (4 * A)
        if s > mp.mpf(repr(gga._EG_SCUT)):
            Ga = mp.sqrt(mp.pi) * (15 * E + 6 * C * (1 + F * s2) * a1 + 4 * B * a1**2
                                   + 8 * A * a1**3) / (16 * a1 ** mp.mpf(3.5))
            Ga -= 3 * mp.pi / 4 * mp.sqrt(A) * mp.exp(a2) * mp.erfc(mp.sqrt(a2))
            Gb = 15 * mp.sqrt(mp.pi) * s2 / (16 * a1 ** mp.mpf(3.5))
            EG = -(3 * mp.pi / 4 + Ga) / Gb
        else:
            ega = [mp.mpf(repr(v)) for v in gga._EGA]
            EG = ega[0] + ega[1] * s2 + ega[2] * s2**2
        a3 = a1 + w * w
        eb1 = mp.mpf("1.455915450052607") if w < 14 else mp.mpf(2)
        a4 = s2 * H + eb1 * w * w
        a5 = 9 * a4 / (4 * A)
        a6 = D + a4
        t2 = (a1**2 * B + a1 * C + 2 * E + a1 * s2 * C * F + 2 * s2 * EG) / (2 * a1**3)
        t3 = -w * (4 * a3**2 * B + 6 * a3 * C + 15 * E + 6 * a3 * s2 * C * F + 15 * s2 * EG) / (
            8 * a1 * a3 ** mp.mpf(2.5))
        t4 = -(w**3) * (a3 * C + 5 * E + a3 * s2 * C * F + 5 * s2 * EG) / (
            2 * a1**2 * a3 ** mp.mpf(2.5))
        t5 = -(w**5) * (E + s2 * EG) / (a1**3 * a3 ** mp.mpf(2.5))
        e1s = mp.exp(a5) * mp.e1(a5)
        if w > 14:
            t1 = -A / 2 * (-e1s + mp.log(a6) - mp.log(a4))
        else:
            sa = mp.sqrt(A)
            np1 = (-1.5 * ea[0] * sa * w + 27 * ea[2] * w**3 / (8 * sa)
                   - 243 * ea[4] * w**5 / (32 * A**1.5) + 2187 * ea[6] * w**7 / (128 * A**2.5))
            np2 = (-A + 9 * ea[1] * w**2 / 4 - 81 * ea[3] * w**4 / (16 * A)
                   + 729 * ea[5] * w**6 / (64 * A**2) - 6561 * ea[7] * w**8 / (256 * A**3))
            sp = mp.sqrt(mp.pi)
            t1 = (np1 * mp.pi * mp.exp(a5) * mp.erfc(mp.sqrt(a5)) - np2 * e1s) / 2
            fs = [ea[0] * sp * A / (2 * mp.sqrt(a6)), ea[1] * A / (2 * a6),
                  ea[2] * sp * (-9 / (8 * mp.sqrt(a4)) + A / (4 * a6**1.5)),
                  ea[3] / 128 * (-144 / a4 + 64 * A / a6**2),
                  ea[4] * 3 * sp * (3 * a6**2.5 * (9 * a4 - 2 * A) + 4 * a4**1.5 * A**2)
                  / (32 * a6**2.5 * a4**1.5 * A),
                  ea[5] * (32 * A / a6**3 + (-36 + 81 * s2 * H / A) / a4**2) / 32,
                  ea[6] * (-3 * sp * (-40 * a4**2.5 * A**3 + 9 * a6**3.5 * (
                      27 * a4**2 - 6 * a4 * A + 4 * A**2))) / (128 * a6**3.5 * a4**2.5 * A**2),
                  (324 * ea[5] * eb1 * a6**4 * a4 * A + ea[7] * (384 * a4**3 * A**3 + a6**4 * (
                      -729 * a4**2 + 324 * a4 * A - 288 * A**2))) / (128 * a6**4 * a4**3 * A**2)]
            t1 = t1 + sum(c * w ** (k + 1) for k, c in enumerate(fs)) + A / 2 * mp.log(a4 / a6)
        return -mp.mpf(8) / 9 * (t1 + t2 + t3 + t4 + t5)

    for w, tol in [(0.0, 1e-14), (0.3, 1e-14), (1.0, 1e-13), (2.0, 1e-12), (4.0, 1e-10),
                   (8.0, 1e-7), (13.0, 1e-5), (20.0, 1e-10), (100.0, 1e-9)]:
        for s in (0.01, 0.3, 1.0, 3.0):
            got = float(_wpbeh_f0(jnp.asarray(w), jnp.asarray(s)))
            want = f0(mp.mpf(w), mp.mpf(s))
            assert abs(got / float(want) - 1) < tol, (w, s, got, float(want))


# ------------------------------------------------------------------------------------------------
# names, exact exchange, structure
@pytest.mark.parametrize("xc", NAMED_STRINGS + ["hf", "lda", "slater", "b97", "lcwpbe",
                                                "cam-b3lyp", "pbeh", "blyp", "b88,lyp"])
def test_exact_exchange_matches_pyscf(xc):
    f = parse_xc(xc)
    omega, alpha, beta = libxc.rsh_coeff(xc)
    assert float(f.omega) == pytest.approx(omega, abs=1e-15)
    assert float(f.alpha) == pytest.approx(alpha, abs=1e-15)
    assert float(f.beta) == pytest.approx(beta, abs=1e-15)
    # PySCF's ``hyb`` (the fraction of the full-range K in rks.get_veff)
    assert float(f.hyb) == pytest.approx(dft.numint.NumInt().rsh_and_hybrid_coeff(xc)[2], abs=1e-15)
    assert f.is_hybrid == libxc.is_hybrid_xc(xc)
    assert f.range_separated == (omega != 0)
    fam = {"LDA": "lda", "GGA": "gga", "MGGA": "mgga", "HF": "hf"}[libxc.xc_type(xc)]
    assert f.family == fam


def test_aliases_and_lists():
    assert parse_xc("lc-wpbe").components == parse_xc("lc_wpbe").components
    assert parse_xc("LC-wPBE").omega == pytest.approx(0.4)
    f = parse_xc([("hf", 0.25), ("gga_x_pbe", 0.75), ("gga_c_pbe", 1.0)])
    g = parse_xc("pbe0")
    assert f.components == g.components and float(f.hyb) == 0.25
    assert parse_xc("hf").components == () and parse_xc("hf").family == "hf"
    rho = jnp.linspace(0.1, 1.0, 5)
    assert np.all(np.asarray(parse_xc("hf").energy_density(parse_xc("hf").params, rho)) == 0.0)
    with pytest.raises(KeyError):
        parse_xc("not-a-functional")
    # composition with explicit range separation equals the named functional
    h = parse_xc("RSH(0.33,0.65,-0.46) + 0.35*B88 + 0.46*ITYH, 0.19*VWN + 0.81*LYP")
    c = parse_xc("camb3lyp")
    assert h.components == c.components
    assert (float(h.alpha), float(h.beta), float(h.omega)) == (0.65, -0.46, 0.33)


@pytest.mark.parametrize("xc", [
    "lda,vwn", "lda,pw", "lda,pw_mod", "b88,lyp", ",vwn3", "pbe,pbe", "pw91,pw91", "tpss,tpss",
    "scan,", ",r2scan", "ityh,", "0.5*hf+0.5*b88,lyp", "0.25*HF + 0.75*PBE, PBE",
    ".2*HF + .08*LDA + .72*B88, .81*LYP + .19*VWN",
    "RSH(0.33,0.65,-0.46) + 0.35*B88 + 0.46*ITYH, 0.19*VWN + 0.81*LYP"])
def test_composed_strings_match_pyscf(xc):
    """Composed strings give PySCF's libxc components and weights."""
    f = parse_xc(xc)
    ours_terms = sorted(
        (libxc.XC_CODES[COMPONENTS[c].libxc], round(float(w), 12))
        for c, w in zip(f.components, f.params["weights"]))
    theirs = sorted((int(i), round(float(w), 12)) for i, w in libxc.parse_xc(xc)[1])
    assert ours_terms == theirs


def test_b3lyp_components():
    """PySCF's 'b3lyp' is libxc's B3LYP with VWN-RPA; the explicit string uses VWN5."""
    assert "lda_c_vwn_rpa" in parse_xc("b3lyp").components
    assert "lda_c_vwn" in parse_xc(".2*HF + .08*LDA + .72*B88, .81*LYP + .19*VWN").components
    assert set(NAMED) >= {"b3lyp", "pbe0", "camb3lyp", "wb97x", "lc_wpbe", "b97-1", "b97-2"}


# ------------------------------------------------------------------------------------------------
# NaN safety: values, gradients and Hessians at the edges of the domain
_EDGE_R = [  # (rho, sigma, tau) restricted
    (0.0, 0.0, 0.0), (1e-30, 0.0, 0.0), (1e-16, 1e-40, 1e-30), (1e-12, 0.0, 0.0),
    (1e-8, 0.0, 1e-12), (0.3, 0.0, 0.1), (0.3, 0.05, 0.0), (0.3, 0.05, 0.05 / 2.4),
    (1.0, 1e-30, 1e-30), (1e3, 0.0, 0.0), (5e-11, 1e-22, 1e-16), (0.3, 1e-300, 0.1),
]
_EDGE_U = [  # (n_a, n_b, s_aa, s_ab, s_bb, tau_a, tau_b)
    (0.3, 0.0, 0.05, 0.0, 0.0, 0.1, 0.0), (0.0, 0.3, 0.0, 0.0, 0.05, 0.0, 0.1),
    (0.3, 1e-20, 0.05, 0.0, 0.0, 0.1, 0.0), (0.3, 0.2, 0.0, 0.0, 0.0, 0.1, 0.1),
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), (20.0, 0.0, 3.0, 0.0, 0.0, 10.0, 0.0),
    (0.3, 0.3, 0.05, -0.05, 0.05, 0.1, 0.1), (1e-9, 0.0, 1e-20, 0.0, 0.0, 1e-14, 0.0),
]


def _edge_check(f):
    """Values, gradients and Hessians finite at the edge points. Both the restricted and the
    polarised energy are written as functions of the same 7 numbers (n_a, n_b, s_aa, s_ab, s_bb,
    tau_a, tau_b; restricted: n = n_a + n_b, ...) and the point sets padded to one size, so
    that the eager evaluation compiles each primitive once: the restricted Hessian is finite iff
    this one is (the map is linear and onto)."""

    def e_r(v):
        return f.energy_density(f.params, v[0] + v[1], v[2] + 2 * v[3] + v[4], v[5] + v[6])

    def e_u(v):
        return f.energy_density_polarized(f.params, v[0:2], v[2:5], v[5:7])

    restricted = np.zeros((len(_EDGE_R), 7))
    restricted[:, [0, 2, 5]] = np.asarray(_EDGE_R)
    polarized = np.asarray(_EDGE_U)
    polarized = np.concatenate([polarized, polarized[: len(restricted) - len(polarized)]])
    basis = jnp.eye(7)
    for fn, pts in ((e_r, restricted), (e_u, polarized)):
        # value, gradient and Hessian in one eager pass: the gradient's JVP along each unit
        # vector is a Hessian column (jax.hessian's forward-over-reverse, without re-tracing
        # the value and the gradient separately)
        def all_orders(v, fn=fn):
            (val, grad), (_, hess) = jax.vmap(
                lambda t: jax.jvp(jax.value_and_grad(fn), (v,), (t,)), out_axes=(None, 0))(basis)
            return val, grad, hess

        val, grad, hess = jax.vmap(all_orders)(jnp.asarray(pts))
        for arr in (val, grad, hess):
            finite = np.isfinite(np.asarray(arr)).reshape(len(pts), -1).all(axis=1)
            assert finite.all(), (f.name, pts[~finite])
    # below every threshold the energy and its derivatives vanish
    zero = jnp.zeros(7)
    assert float(e_r(zero)) == 0.0 and not np.any(np.asarray(jax.grad(e_r)(zero)))


def test_finite_derivatives_at_edges_all_components():
    """Every kernel at once (their sum; omega = 0.4 for the short-range ones): values, jax.grad
    and jax.hessian are finite at n -> 0, sigma -> 0, tau -> 0 and fully polarised points."""
    _edge_check(Functional.from_components([(c, 1.0) for c in COMPONENTS], omega=0.4))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMPONENTS) + ["b3lyp", "camb3lyp", "wb97x", "lc_wpbe",
                                                     "scan", "r2scan", "tpss"])
def test_finite_derivatives_at_edges(name):
    _edge_check(component_functional(name) if name in COMPONENTS else parse_xc(name))


# ------------------------------------------------------------------------------------------------
# parameters: differentiable, jit without recompiling, vmap
def _water_inputs(family):
    x = molecular_density("water", 0)
    mol = gto.M(atom=_MOL["water"], basis="def2-svp", verbose=0)
    grids = dft.gen_grid.Grids(mol)
    grids.level = 1
    grids.build()
    args = [jnp.asarray(x[0])]
    if family in ("gga", "mgga"):
        args.append(jnp.asarray(np.sum(x[1:4] ** 2, 0)))
    if family == "mgga":
        args.append(jnp.asarray(x[5]))
    return jnp.asarray(grids.weights), args


@pytest.mark.parametrize("xc", ["b3lyp", "wb97x", "scan"] + [
    pytest.param(x, marks=pytest.mark.slow)
    for x in ["pbe0", "camb3lyp", "tpss", "r2scan", "lc_wpbe", "pw91", "b97-2"]])
def test_param_derivatives_fd(xc):
    """d E_xc / d params by AD equals central finite differences along random directions."""
    f = parse_xc(xc)
    w, args = _water_inputs(f.family)

    def energy(p):
        return jnp.sum(w * f.energy_density(p, *args))

    grads = jax.tree_util.tree_leaves(jax.grad(energy)(f.params))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    flat, unravel = ravel_pytree(f.params)
    rng = np.random.default_rng(3)
    for _ in range(2):
        # a relative perturbation of every parameter
        direction = rng.uniform(-1, 1, flat.shape) * np.asarray(flat)
        _, jvp = jax.jvp(energy, (f.params,), (unravel(jnp.asarray(direction)),))
        fd = float(fd_directional(lambda x: energy(unravel(x)), flat, direction, h=1e-6))
        tol = 1e-6 * max(abs(fd), 1e-3)
        assert abs(float(jvp) - fd) <= tol, (float(jvp), fd)


def test_weights_and_exx_are_leaves():
    f = parse_xc("b3lyp")
    g = jax.grad(lambda p: jnp.sum(f.energy_density(p, jnp.asarray([0.3]), jnp.asarray([0.1]))))(
        f.params)
    # dE/dw_i = e_i: the weight gradient of Slater exchange is the Slater energy density
    lda_only = component_functional("lda_x")
    e_lda = lda_only.energy_density(lda_only.params, jnp.asarray([0.3]))
    assert float(g["weights"][0]) == pytest.approx(float(e_lda[0]), rel=1e-14)
    assert float(g["alpha"]) == 0.0  # exact exchange does not enter the semilocal energy


def test_jit_no_recompile_and_vmap():
    f = parse_xc("pbe")
    traces = []

    @jax.jit
    def energy(func, rho, sigma):
        traces.append(1)
        return jnp.sum(func.energy_density(func.params, rho, sigma))

    rho = jnp.linspace(0.01, 1.0, 64)
    sigma = 0.1 * rho ** (8 / 3)
    e0 = energy(f, rho, sigma)
    p2 = jax.tree_util.tree_map(lambda v: v * 1.01, f.params)
    e1 = energy(f.with_params(p2), rho, sigma)
    assert len(traces) == 1 and float(e0) != float(e1)
    eager = jnp.sum(f.energy_density(f.params, rho, sigma))
    assert float(e0) == pytest.approx(float(eager), rel=1e-14)
    # vmap over a batch of parameter sets
    batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), f.params, p2)
    ev = jax.vmap(lambda p: jnp.sum(f.energy_density(p, rho, sigma)))(batch)
    np.testing.assert_allclose(np.asarray(ev), [float(e0), float(e1)], rtol=1e-14)


def test_polarized_equals_restricted():
    """n_a = n_b = n/2 gives the restricted energy (above all thresholds)."""
    x = random_density(300, 0, seed=9, lo=-6)
    rho, sigma, tau = jnp.asarray(x[0]), jnp.asarray(x[1] ** 2), jnp.asarray(x[5])
    for xc in ["b3lyp", "scan", "wb97x"]:
        f = parse_xc(xc)
        a = f.energy_density(f.params, rho, sigma, tau)
        b = f.energy_density_polarized(f.params, (rho / 2, rho / 2),
                                       (sigma / 4, sigma / 4, sigma / 4), (tau / 2, tau / 2))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-300)
