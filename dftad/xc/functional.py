"""Functionals: weighted semilocal components plus (range-separated) exact exchange.

A :class:`Functional` is a JAX pytree. Its *static* part (which components, their families, whether
exact exchange is range separated) is hashable aux data; its *children* are the parameters, a
pytree of float64 arrays, so that ``jax.jit`` traces them and ``jax.grad`` differentiates with
respect to every weight and internal constant::

    f = parse_xc("b3lyp")
    e = f.energy_density(f.params, rho, sigma)          # restricted, energy per volume (Ha/Bohr^3)
    E = jnp.sum(weights * e)                            # E_xc on the grid
    dE = jax.grad(lambda p: jnp.sum(weights * f.energy_density(p, rho, sigma)))(f.params)

Exact exchange follows PySCF's ``rsh_coeff`` convention (which is libxc's CAM convention)::

    K_total = alpha * K + beta * K_SR(omega)         K_SR with erfc(omega r12)/r12
            = hyb * K + (alpha - hyb) * K_LR(omega)  K_LR with erf(omega r12)/r12,
    hyb = alpha + beta

i.e. ``hyb`` is the short-range and ``alpha`` the long-range fraction of exact exchange. Global
hybrids have beta = omega = 0 and alpha = hyb; "hf" is alpha = 1 with no semilocal part.

Density thresholds: each component is evaluated like libxc 7.0 does it, with that component's own
``dens_threshold``: points with n_a + n_b below it give zero; spin densities are raised to the
threshold, sigma_ss to threshold^(8/3), tau to 1e-20, sigma_ss lowered to 8 n_s tau_s (libxc as
PySCF builds it enforces the Fermi-hole curvature) and sigma_ab bounded by (sigma_aa + sigma_bb)/2.
These bounds act only below the thresholds, where they use the libxc values together with
libxc's derivative *at the bounded point* (a straight-through bound), so energies and potentials
equal libxc's everywhere while all derivatives stay finite.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from . import gga, gga_sr, lda, mgga
from .common import RS_FACTOR, TAU_THRESHOLD, Component, Vars

COMPONENTS: dict[str, Component] = {**lda.COMPONENTS, **gga.COMPONENTS, **gga_sr.COMPONENTS,
                                     **mgga.COMPONENTS}
"""Every semilocal component dftad implements, by dftad name (each kernel module registers its
own in its ``COMPONENTS``)."""

_FAMILY_RANK = {"hf": 0, "lda": 1, "gga": 2, "mgga": 3}


def _as_params(tree):
    """Defaults (floats and tuples of floats) -> pytree of float64 arrays."""
    if isinstance(tree, dict):
        return {k: _as_params(v) for k, v in tree.items()}
    return jax.device_put(np.asarray(tree, dtype=np.float64))  # no program (jnp.asarray: one)


def _straight(x, bounded):
    """Exactly the value of ``bounded`` with the derivative of ``x`` (straight-through), so the
    kernel's derivative is taken at the bounded point, as libxc does."""
    return jax.lax.stop_gradient(bounded) + (x - jax.lax.stop_gradient(x))


def _opaque(x):
    """``x`` unchanged, behind a select the compiler cannot see through (no FMA contraction of
    the product that made ``x`` with the sums that use it)."""
    return jnp.where(jnp.isnan(x), 0.0, x)


def component_energy(name, p, rho, sigma=None, tau=None, restricted=False):
    """Energy per volume n * eps of one component for spin-resolved inputs.

    ``rho`` = (n_a, n_b), ``sigma`` = (s_aa, s_ab, s_bb), ``tau`` = (tau_a, tau_b) (each a tuple of
    arrays of one shape). Implements libxc's input screening for this component (module docstring);
    ``restricted=True`` (inputs are halves of a closed-shell density) applies the bounds to the
    totals as libxc's unpolarised evaluation does.
    """
    comp = COMPONENTS[name]
    thr = comp.dens_threshold
    # bounds per spin channel; libxc bounds the totals of an unpolarised density
    scale = 0.5 if restricted else 1.0
    rthr, tthr = scale * thr, scale * TAU_THRESHOLD
    sthr2 = scale * scale * thr ** (8.0 / 3.0)
    ra, rb = rho
    n_in = ra + rb
    mask = n_in >= thr
    one = jnp.ones_like(ra)
    ra = jnp.where(mask, ra, one)
    rb = jnp.where(mask, rb, one)
    ra = _straight(ra, jnp.where(ra > rthr, ra, rthr))
    rb = _straight(rb, jnp.where(rb > rthr, rb, rthr))
    n = ra + rb
    n13, ra13, rb13 = jnp.cbrt(n), jnp.cbrt(ra), jnp.cbrt(rb)
    rs = RS_FACTOR / n13
    # zeta as libxc's generated code rounds it, (n_a - n_b) * (1/n), kept opaque to the compiler:
    # fused into a later 1 -+ zeta, the product would become a fused multiply-add and 1 -+ zeta
    # would differ from libxc's in its leading digits where a channel is empty (1 -+ zeta
    # ~ 1e-14), and with it the potentials of that channel (VWN by 1e-8, SCAN's vtau by 1%)
    z = _opaque((ra - rb) * (1.0 / n))
    zero = jnp.zeros_like(ra)
    if comp.family == "lda":
        v = Vars(rs, z, zero, zero, zero, zero, zero, ra, rb, thr)
    else:
        saa, sab, sbb = (jnp.where(mask, s, zero) for s in sigma)
        saa = _straight(saa, jnp.where(saa > sthr2, saa, sthr2))
        sbb = _straight(sbb, jnp.where(sbb > sthr2, sbb, sthr2))
        ts0 = ts1 = zero
        if comp.family == "mgga":
            ta, tb = (jnp.where(mask, t, one) for t in tau)
            ta = _straight(ta, jnp.where(ta > tthr, ta, tthr))
            tb = _straight(tb, jnp.where(tb > tthr, tb, tthr))
            saa = _straight(saa, jnp.where(saa > 8.0 * ra * ta, 8.0 * ra * ta, saa))
            sbb = _straight(sbb, jnp.where(sbb > 8.0 * rb * tb, 8.0 * rb * tb, sbb))
            ts0 = ta / (ra * ra13**2)
            ts1 = tb / (rb * rb13**2)
        s_ave = 0.5 * (saa + sbb)
        sab = _straight(sab, jnp.clip(sab, -s_ave, s_ave))
        v = Vars(
            rs, z, (saa + 2.0 * sab + sbb) / (n * n13) ** 2,
            saa / (ra * ra13) ** 2, sbb / (rb * rb13) ** 2, ts0, ts1, ra, rb, thr,
        )
    eps = comp.kernel(p, v)
    # PySCF integrates n * eps with the given n; the potential is libxc's d(n eps)/dn at the
    # bounded point, so the difference n_in - n (non-zero only below thresholds) is a constant
    e = n * eps + jax.lax.stop_gradient((jnp.where(mask, n_in, n) - n) * eps)
    return jnp.where(mask, e, 0.0)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class Functional:
    """An exchange-correlation functional: sum_i w_i e_i(rho, sigma, tau) + exact exchange.

    Static structure: ``components`` (names in :data:`COMPONENTS`), ``range_separated`` (an
    erf-attenuated exchange build is needed), ``hybrid`` (any exact exchange) and a display
    ``name``. Parameters ``params`` (a pytree of float64 arrays)::

        {"weights": (w_1, ..., w_k),                 # mixing weights of the components
         "components": (p_1, ..., p_k),              # each component's internal constants
         "alpha": a, "beta": b, "omega": w}          # exact exchange (module docstring)

    ``family`` is 'lda', 'gga' or 'mgga' (the density ingredients needed) or 'hf' when there is
    no semilocal part. Methods take ``params`` explicitly so that they can be differentiated;
    pass ``f.params`` for the functional's own values.
    """

    components: tuple
    range_separated: bool
    hybrid: bool
    name: str
    params: dict = dataclasses.field(compare=False)

    # -- pytree ---------------------------------------------------------------------------
    def tree_flatten(self):
        return (self.params,), (self.components, self.range_separated, self.hybrid, self.name)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*aux, children[0])

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_components(cls, terms, alpha=0.0, beta=0.0, omega=0.0, name=None, overrides=None):
        """Build from ``terms`` = [(component_name, weight), ...] and exact-exchange settings.

        ``overrides`` maps a component name to parameter values replacing its defaults.
        """
        terms = tuple((str(c), float(w)) for c, w in terms)
        for c, _ in terms:
            if c not in COMPONENTS:
                raise KeyError(f"unknown XC component {c!r}; known: {sorted(COMPONENTS)}")
        overrides = overrides or {}
        comp_params = tuple(
            _as_params({**COMPONENTS[c].params, **overrides.get(c, {})}) for c, _ in terms
        )
        params = {
            "weights": tuple(_as_params(w) for _, w in terms),
            "components": comp_params,
            "alpha": _as_params(alpha),
            "beta": _as_params(beta),
            "omega": _as_params(omega),
        }
        rsh = bool(omega != 0.0 or any(COMPONENTS[c].uses_omega for c, _ in terms))
        hybrid = bool(rsh or alpha != 0.0 or beta != 0.0)
        if name is None:
            name = " + ".join(f"{w:g}*{c}" for c, w in terms) or "hf"
        return cls(tuple(c for c, _ in terms), rsh, hybrid, name, params)

    def with_params(self, params):
        """The same functional with other parameter values."""
        return dataclasses.replace(self, params=params)

    # -- static properties -----------------------------------------------------------------
    @property
    def family(self) -> str:
        fams = [COMPONENTS[c].family for c in self.components] or ["hf"]
        return max(fams, key=_FAMILY_RANK.__getitem__)

    @property
    def is_hybrid(self) -> bool:
        """True if exact exchange is used (static, decided when the functional was built; the
        fractions themselves are parameters and may change)."""
        return self.hybrid

    # -- exact exchange (values from params; arrays under jit) -------------------------------
    @property
    def alpha(self):
        """Long-range (full-range for global hybrids) exact-exchange fraction."""
        return self.params["alpha"]

    @property
    def beta(self):
        """Extra short-range exact-exchange fraction (hyb - alpha)."""
        return self.params["beta"]

    @property
    def omega(self):
        """Range-separation parameter omega (1/Bohr) of erf(omega r12)/r12; 0 if none."""
        return self.params["omega"]

    @property
    def hyb(self):
        """Short-range (or global) exact-exchange fraction alpha + beta, PySCF's ``hyb``."""
        return self.params["alpha"] + self.params["beta"]

    # -- energy densities --------------------------------------------------------------------
    def energy_density_polarized(self, params, rho, sigma=None, tau=None, _restricted=False):
        """Energy per volume (Ha/Bohr^3) for spin densities.

        rho: (2, ...) = (n_a, n_b); sigma: (3, ...) = (grad n_a.grad n_a, grad n_a.grad n_b,
        grad n_b.grad n_b) (GGA and meta-GGA); tau: (2, ...) = (tau_a, tau_b) with
        tau_s = 1/2 sum_i |grad phi_is|^2 (meta-GGA). Returns an array of shape ``rho[0].shape``.
        """
        rho = (rho[0], rho[1])
        sigma = None if sigma is None else (sigma[0], sigma[1], sigma[2])
        tau = None if tau is None else (tau[0], tau[1])
        e = jnp.zeros_like(rho[0])
        for name, w, p in zip(self.components, params["weights"], params["components"]):
            if COMPONENTS[name].uses_omega:
                p = dict(p, omega=params["omega"])
            e = e + w * component_energy(name, p, rho, sigma, tau, _restricted)
        return e

    def energy_density(self, params, rho, sigma=None, tau=None):
        """Energy per volume (Ha/Bohr^3) of a spin-restricted density n (= n_a + n_b).

        sigma = |grad n|^2 (GGA, meta-GGA), tau = 1/2 sum_i occ_i |grad phi_i|^2 (meta-GGA).
        Evaluated as the polarised functional at n_a = n_b = n/2.
        """
        half = 0.5 * rho
        s = None if sigma is None else 0.25 * sigma
        t = None if tau is None else 0.5 * tau
        return self.energy_density_polarized(
            params, (half, half), None if s is None else (s, s, s), None if t is None else (t, t),
            _restricted=True,
        )

    def __call__(self, rho, sigma=None, tau=None, spin=0):
        """Energy per volume with the functional's own parameters (spin=1: polarised inputs)."""
        if spin:
            return self.energy_density_polarized(self.params, rho, sigma, tau)
        return self.energy_density(self.params, rho, sigma, tau)

    def __repr__(self):
        return f"Functional({self.name!r}, family={self.family!r}, components={self.components})"


def eval_xc(f: Functional, rho, spin=0, params=None):
    """PySCF-layout evaluation for tests: returns (exc, vrho, vsigma, vtau) like
    ``pyscf.dft.libxc.eval_xc(xc, rho, spin, deriv=1)``.

    ``rho`` has PySCF's layout: spin=0: (ngrid,) for LDA or (nvar, ngrid) with rows
    (n, dn/dx, dn/dy, dn/dz[, laplacian], tau) ; spin=1: (2, nvar, ngrid). exc is the energy per
    particle; vrho, vsigma, vtau the derivatives of the energy per volume with respect to n,
    sigma, tau obtained by AD (shapes (ngrid,) restricted; (ngrid, 2), (ngrid, 3), (ngrid, 2)
    polarised). Entries that the family does not use are None.
    """
    params = f.params if params is None else params
    rho = jnp.asarray(rho, dtype=jnp.float64)
    fam = f.family
    if spin == 0:
        r = rho if rho.ndim == 1 else rho[0]
        args = [r]
        if fam in ("gga", "mgga"):
            args.append(jnp.sum(rho[1:4] ** 2, axis=0))
        if fam == "mgga":
            args.append(rho[5] if rho.shape[0] >= 6 else rho[4])

        def energy(*a):
            return f.energy_density(params, *a)

        ntot = r
    else:
        if rho.ndim == 2:
            rho = rho[:, None, :]
        ra, rb = rho[0], rho[1]
        args = [jnp.stack([ra[0], rb[0]])]
        if fam in ("gga", "mgga"):
            ga, gb = ra[1:4], rb[1:4]
            args.append(jnp.stack([jnp.sum(ga * ga, 0), jnp.sum(ga * gb, 0), jnp.sum(gb * gb, 0)]))
        if fam == "mgga":
            it = 5 if ra.shape[0] >= 6 else 4
            args.append(jnp.stack([ra[it], rb[it]]))

        def energy(*a):
            return f.energy_density_polarized(params, *a)

        ntot = ra[0] + rb[0]
    e, vjp = jax.vjp(energy, *args)
    grads = vjp(jnp.ones_like(e))
    exc = jnp.where(ntot > 0, e / jnp.where(ntot > 0, ntot, 1.0), 0.0)
    out = [g if spin == 0 else g.T for g in grads]
    out += [None] * (3 - len(out))
    return exc, out[0], out[1], out[2]
