"""A neural exchange-correlation model: a named functional whose exchange and correlation are
each multiplied by an enhancement factor from a small multilayer perceptron (equinox).

    model = Neural("pbe", hidden=(16, 16), seed=0)
    theta = model.init()                 # {"x.w0": (16, 2), "x.b0": (16,), ..., "c.w2": (1, 16)}
    f = model.functional(theta)          # a Functional (NeuralFunctional), used like a named one
    jax.grad(lambda t: loss(model.functional(t)))(theta)

Units: Hartree and Bohr. The energy per volume, for the base functional's semilocal components
(weights w_i, energies per volume e_i; exact exchange, if any, is unchanged)::

    e_xc[n_a, n_b] = sum_{i in X} w_i (1/2) sum_s e_i[2 n_s] F_x(y_x[n_s])
                   + sum_{i in C} w_i e_i[n_a, n_b] F_c(y_c[n_a, n_b])

where e_i[2 n_s] is component i's energy per volume of the *unpolarised* density 2 n_s (spin
densities n_s, n_s; gradients sigma_ss; tau_s), evaluated exactly as
:meth:`Functional.energy_density` evaluates a closed-shell density (libxc's thresholds and bounds
included). The enhancement factors are

    F(y) = 1 + tanh(g_theta(y) - g_theta(y_ueg)),

g_theta an MLP (SiLU activations, a bias-free last layer) and y_ueg the same features as y with
the reduced gradient set to zero and alpha to one. Features (bounded, smooth, NaN-free)::

    exchange, channel s (density 2 n_s, |grad|^2 = 4 sigma_ss, tau = 2 tau_s):
        y_x = (r(rs_s), u(s_s^2) [, a(alpha_s)])
        rs_s = (3 / (4 pi 2 n_s))^(1/3),  s_s^2 = X2S^2 sigma_ss / n_s^(8/3),
        alpha_s = (tau_s / n_s^(5/3) - sigma_ss / (8 n_s^(8/3))) / K_FACTOR_C
    correlation (n = n_a + n_b, sigma = s_aa + 2 s_ab + s_bb, tau = tau_a + tau_b):
        y_c = (r(rs), u(s^2), zeta^2 [, a(alpha)])
        rs = (3 / (4 pi n))^(1/3),  s^2 = sigma / (4 (3 pi^2)^(2/3) n^(8/3)),
        alpha = (tau - sigma / (8 n)) / (K_FACTOR_C (n_a^(5/3) + n_b^(5/3)))
    r(rs) = (sqrt(rs) - 1) / (sqrt(rs) + 1),   u(s^2) = s^2 / (1 + s^2),
    a(alpha) = tanh((1 - alpha) / 2)

alpha, the iso-orbital indicator (tau - tau_W) / tau_unif, enters only when the base is a
meta-GGA; zeta enters as zeta^2, so that swapping the spins leaves correlation unchanged. s^2 is
bounded below by 0 straight-through (the value max(s^2, 0), the derivative of s^2: rounding can
make s_aa + 2 s_ab + s_bb slightly negative where the gradients cancel), and a(alpha) is smooth
for every real alpha, so that alpha ~ 0 of one-orbital regions, which rounding can make
slightly negative, has no kink.

Exact constraints, for every theta:

* **uniform electron gas**: s = 0 (and alpha = 1) gives u = 0 (and a = 0), so y = y_ueg and
  F = 1 + tanh(0) = 1 exactly, for any rs and zeta: the model equals its base there;
* **spin scaling of exchange**: the exchange is a sum over channels of a function of (n_s,
  sigma_ss, tau_s) alone (zeta is not a feature), evaluated the way a closed-shell density
  2 n_s is, so E_x[n_a, n_b] = (E_x[2 n_a] + E_x[2 n_b]) / 2 holds to rounding;
* **the base functional**: the last layer starts at zero, so g_theta = 0 and the untrained model
  is its base: bit for bit for closed shells, to rounding for open shells (whose exchange is
  summed per channel), except where a spin channel is empty: there libxc (and so the base)
  raises the empty channel to its threshold inside the total density, a relative change
  ~ threshold / n of the other channel's exchange that the spin-scaled model does not make;
* below a component's density threshold its e_i is exactly zero, and so is the model's term;
  the features are computed from densities floored at :data:`FLOOR` (far below every threshold)
  so that values and derivatives stay finite at n = 0.

theta is a flat dict of float64 arrays: ``"x.w0"``, ``"x.b0"``, ..., ``"x.wL"`` (exchange MLP:
weights (out, in) and biases of layer i, the last one without bias), the same with ``"c."``
(correlation) and, with ``learn_hyb``, ``"hyb"``: the global exact-exchange fraction (the
functional's ``alpha``), with the semilocal exchange weights scaled by (1 - hyb) / (1 - hyb_base)
so that exact plus semilocal exchange keep the base's total weight (its uniform-gas limit).

The network lives in the functional's parameters (``params["nets"]["x"]``, ``["c"]``: the same
dicts without the prefix), so ``jax.grad`` through :meth:`Functional.energy_density` reaches it;
the static skeleton (layer count and widths) is read from the arrays' shapes. The model is a
:class:`Functional` subclass that wraps the base's registered components (it registers none of
its own, so :data:`~dftad.xc.functional.COMPONENTS`, which the libxc tests enumerate, stays
libxc's). Components that combine exchange and correlation (B97, wB97X) cannot be split and are
refused as bases.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp

from .common import CBRT2, K_FACTOR_C, RS_FACTOR, X2S, pow_pos
from .functional import COMPONENTS, Functional, component_energy
from .hybrid import parse_xc

FLOOR = 1e-20
"""Spin (exchange) or total (correlation) densities at or below this give the features of a
harmless point (n = 1, sigma = 0): their energy is zero anyway (every component's threshold is
above 1e-16), and so the derivatives stay finite where n -> 0."""


def component_role(name: str) -> str:
    """'x' (exchange), 'c' (correlation) or 'xc' (both in one kernel) for a component name,
    from its libxc name (``GGA_X_PBE``, ``LDA_C_VWN``, ``HYB_GGA_XC_B97``)."""
    parts = COMPONENTS[name].libxc.split("_")
    for role in ("XC", "X", "C"):
        if role in parts:
            return role.lower()
    raise ValueError(f"cannot tell whether {name!r} is exchange or correlation")


# ---------------------------------------------------------------------------------------------
# the network
class MLP(eqx.Module):
    """g(y): Linear -> SiLU -> ... -> Linear (no bias) -> scalar, of widths ``hidden``."""

    layers: tuple

    def __init__(self, nin: int, hidden: tuple, *, key):
        sizes = (nin, *hidden)
        keys = jax.random.split(key, len(sizes))
        layers = [eqx.nn.Linear(a, b, dtype=jnp.float64, key=k)
                  for a, b, k in zip(sizes[:-1], sizes[1:], keys)]
        layers.append(eqx.nn.Linear(sizes[-1], "scalar", use_bias=False, dtype=jnp.float64,
                                    key=keys[-1]))
        self.layers = tuple(layers)

    def __call__(self, y):
        for layer in self.layers[:-1]:
            y = jax.nn.silu(layer(y))
        return self.layers[-1](y)


def _names(n_layers: int) -> list[str]:
    """Array names in the order of the module's leaves: w0, b0, ..., w_last (no bias)."""
    return [n for i in range(n_layers - 1) for n in (f"w{i}", f"b{i}")] + [f"w{n_layers - 1}"]


def arrays(mlp: MLP) -> dict:
    """The module's arrays by name (``w0``, ``b0``, ...)."""
    return dict(zip(_names(len(mlp.layers)), jax.tree.leaves(mlp)))


@functools.lru_cache
def _skeleton(nin: int, hidden: tuple):
    """The static structure of an MLP (no arrays are made)."""
    return jax.tree.structure(eqx.filter_eval_shape(MLP, nin, hidden, key=jax.random.key(0)))


def network(net: dict) -> MLP:
    """The MLP whose arrays are ``net`` (its widths read from their shapes)."""
    n_layers = (len(net) + 1) // 2
    nin = int(net["w0"].shape[1])
    hidden = tuple(int(net[f"w{i}"].shape[0]) for i in range(n_layers - 1))
    return jax.tree.unflatten(_skeleton(nin, hidden), [net[k] for k in _names(n_layers)])


def enhancement(net: dict, y, y_ueg):
    """F = 1 + tanh(g(y) - g(y_ueg)) on features of shape (..., nin)."""
    mlp = network(net)
    shape = y.shape[:-1]

    def g(x):
        return jax.vmap(mlp)(x.reshape(-1, x.shape[-1])).reshape(shape)

    return 1.0 + jnp.tanh(g(y) - g(y_ueg))


# ---------------------------------------------------------------------------------------------
# features (module docstring)
def _r(rs):
    q = jnp.sqrt(rs)
    return (q - 1.0) / (q + 1.0)


def _u(s2):
    # max(s2, 0) with the derivative of s2 (straight-through, as functional.py bounds sigma):
    # rounding can make s_aa + 2 s_ab + s_bb slightly negative where the gradients cancel
    s2 = jax.lax.stop_gradient(jnp.maximum(s2, 0.0)) + (s2 - jax.lax.stop_gradient(s2))
    return s2 / (1.0 + s2)


def _a(alpha):
    return jnp.tanh(0.5 * (1.0 - alpha))


def _with_ueg(cols, s_col, a_col):
    """(y, y_ueg): the features stacked, and the same with u = 0 (and a = 0)."""
    y = jnp.stack(cols, axis=-1)
    ueg = list(cols)
    ueg[s_col] = jnp.zeros_like(cols[s_col])
    if a_col is not None:
        ueg[a_col] = jnp.zeros_like(cols[a_col])
    return y, jnp.stack(ueg, axis=-1)


def exchange_features(n_s, sigma_ss, tau_s=None):
    """(y, y_ueg) of one spin channel, the features of the density 2 n_s."""
    ok = n_s > FLOOR
    n = jnp.where(ok, n_s, 1.0)
    n13 = jnp.cbrt(n)
    x2 = jnp.where(ok, sigma_ss, 0.0) / (n * n13) ** 2
    cols = [_r(RS_FACTOR / (CBRT2 * n13)), _u(X2S**2 * x2)]
    if tau_s is not None:
        ts = jnp.where(ok, tau_s, 0.0) / (n * n13**2)
        cols.append(_a((ts - x2 / 8.0) / K_FACTOR_C))
    return _with_ueg(cols, 1, 2 if tau_s is not None else None)


def correlation_features(rho, sigma, tau=None):
    """(y, y_ueg) of the total density of spin densities ``rho``, ``sigma``, ``tau``."""
    ok = rho[0] + rho[1] > FLOOR
    na, nb = jnp.where(ok, rho[0], 0.5), jnp.where(ok, rho[1], 0.5)
    n = na + nb
    n13 = jnp.cbrt(n)
    sig = jnp.where(ok, sigma[0] + 2.0 * sigma[1] + sigma[2], 0.0)
    x2 = sig / (n * n13) ** 2
    zeta = (na - nb) / n
    cols = [_r(RS_FACTOR / n13), _u(X2S**2 * CBRT2**2 * x2), zeta * zeta]
    if tau is not None:
        t = jnp.where(ok, tau[0] + tau[1], 0.0)
        t_unif = K_FACTOR_C * (pow_pos(na, 5.0 / 3.0) + pow_pos(nb, 5.0 / 3.0))
        cols.append(_a((t - sig / (8.0 * n)) / t_unif))
    return _with_ueg(cols, 1, 3 if tau is not None else None)


# ---------------------------------------------------------------------------------------------
# the functional
@jax.tree_util.register_pytree_node_class
class NeuralFunctional(Functional):
    """A :class:`Functional` whose exchange and correlation components are multiplied by the
    networks in ``params["nets"]`` (module docstring). Without ``"nets"`` it is its base. Its
    family is at least 'gga' (the features need the gradient)."""

    @property
    def family(self) -> str:
        return "mgga" if super().family == "mgga" else "gga"

    def part(self, role: str) -> NeuralFunctional:
        """The semilocal exchange (``role='x'``) or correlation (``'c'``) alone: the other
        components' weights set to zero (exact exchange is not in the energy density)."""
        weights = tuple(w if component_role(c) == role else jnp.zeros_like(w)
                        for c, w in zip(self.components, self.params["weights"]))
        return self.with_params({**self.params, "weights": weights})

    def energy_density_polarized(self, params, rho, sigma=None, tau=None, _restricted=False):
        """Energy per volume (Ha/Bohr^3) for spin densities; arguments as
        :meth:`Functional.energy_density_polarized` (sigma is required)."""
        if sigma is None:
            raise ValueError("a neural functional needs sigma (its features use the gradient)")
        rho = (rho[0], rho[1])
        sigma = (sigma[0], sigma[1], sigma[2])
        tau = None if tau is None else (tau[0], tau[1])
        mgga = self.family == "mgga"
        nets = params.get("nets", {})
        roles = [component_role(c) for c in self.components]
        # spin channels of exchange: (n_s, sigma_ss, tau_s); one when both are the same
        chans = [(rho[0], sigma[0], None if tau is None else tau[0])]
        if not _restricted:
            chans.append((rho[1], sigma[2], None if tau is None else tau[1]))
        f_x = f_c = None
        if "x" in nets and "x" in roles:
            f_x = [enhancement(nets["x"], *exchange_features(n, s, t if mgga else None))
                   for n, s, t in chans]
        if "c" in nets and "c" in roles:
            f_c = enhancement(nets["c"], *correlation_features(rho, sigma, tau if mgga else None))
        e = jnp.zeros_like(rho[0])
        for name, role, w, p in zip(self.components, roles, params["weights"],
                                    params["components"]):
            if COMPONENTS[name].uses_omega:
                p = dict(p, omega=params["omega"])
            if role == "x" and f_x is not None:
                ex = 0.0
                for (n, s, t), fx in zip(chans, f_x):
                    e_s = component_energy(name, p, (n, n), (s, s, s),
                                           None if tau is None else (t, t), restricted=True)
                    ex = ex + e_s * fx
                e = e + w * (ex if _restricted else 0.5 * ex)
            else:
                ei = component_energy(name, p, rho, sigma, tau, _restricted)
                e = e + w * (ei * f_c if role == "c" and f_c is not None else ei)
        return e


# ---------------------------------------------------------------------------------------------
# the model
@dataclasses.dataclass(frozen=True)
class Neural:
    """The neural model of the module docstring on the named functional ``base`` (PySCF's
    names and strings: "pbe", "b3lyp", "scan", ...): MLPs of hidden widths ``hidden``,
    initialised from ``jax.random.PRNGKey(seed)`` with a zero last layer; ``learn_hyb``:
    the exact-exchange fraction is learned too (global hybrids only)."""

    base: str = "pbe"
    hidden: tuple = (16, 16)
    seed: int = 0
    learn_hyb: bool = False

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive, got {self.hidden}")
        f = self.base_functional
        if not f.components:
            raise ValueError(f"{self.base!r} has no semilocal part to enhance")
        mixed = [c for c in f.components if component_role(c) == "xc"]
        if mixed:
            raise ValueError(f"{self.base!r} has components that combine exchange and "
                             f"correlation ({', '.join(mixed)}): they cannot be enhanced "
                             "separately; choose a base such as pbe, b3lyp, pbe0 or scan")
        if self.learn_hyb and (not f.is_hybrid or f.range_separated
                               or float(f.params["alpha"]) >= 1.0):
            raise ValueError(f"learn_hyb needs a global hybrid base with a semilocal exchange "
                             f"(b3lyp, pbe0, ...), not {self.base!r}")

    @property
    def base_functional(self) -> Functional:
        return parse_xc(self.base)

    @property
    def name(self) -> str:
        hyb = ", hyb learned" if self.learn_hyb else ""
        return f"neural {self.base} (hidden {self.hidden}, seed {self.seed}{hyb})"

    @property
    def meta(self) -> bool:
        """Whether the features include alpha (the base is a meta-GGA)."""
        return self.base_functional.family == "mgga"

    def init(self) -> dict:
        """theta of the untrained model (equal to its base): seeded MLPs, last layer zero."""
        kx, kc = jax.random.split(jax.random.PRNGKey(self.seed))
        theta = {}
        for role, key, nin in (("x", kx, 2), ("c", kc, 3)):
            mlp = MLP(nin + int(self.meta), self.hidden, key=key)
            mlp = eqx.tree_at(lambda m: m.layers[-1].weight, mlp,
                              jnp.zeros_like(mlp.layers[-1].weight))
            theta.update({f"{role}.{k}": v for k, v in arrays(mlp).items()})
        if self.learn_hyb:
            theta["hyb"] = jnp.asarray(self.base_functional.params["alpha"], dtype=jnp.float64)
        return theta

    def network(self, theta, role: str) -> MLP:
        """The equinox MLP of ``role`` ('x' or 'c') with the values of ``theta``."""
        return network(_net(theta, role))

    def functional(self, theta) -> NeuralFunctional:
        f = self.base_functional
        params = dict(f.params, nets={"x": _net(theta, "x"), "c": _net(theta, "c")})
        if self.learn_hyb:
            hyb = jnp.asarray(theta["hyb"], dtype=jnp.float64)
            scale = (1.0 - hyb) / (1.0 - f.params["alpha"])
            params["weights"] = tuple(w * scale if component_role(c) == "x" else w
                                      for c, w in zip(f.components, f.params["weights"]))
            params["alpha"] = hyb
        # the display name is static (part of the compiled programs' keys): the base only, so
        # that models differing in seed share their programs
        return NeuralFunctional(f.components, f.range_separated, f.hybrid, f"neural {self.base}",
                                params)


def _net(theta, role: str) -> dict:
    prefix = f"{role}."
    return {k[len(prefix):]: jnp.asarray(v, dtype=jnp.float64)
            for k, v in theta.items() if k.startswith(prefix)}
