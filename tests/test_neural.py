"""The neural XC model (dftad.xc.neural): equal to its base untrained, the uniform-gas limit and
the spin scaling of exchange for any parameters, finite values and gradients at vanishing
densities, and SCF-consistent parameter gradients against finite differences of converged
energies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dftad
from dftad import learn
from dftad.xc import parse_xc
from dftad.xc.common import K_FACTOR_C
from dftad.xc.neural import (
    Neural,
    correlation_features,
    enhancement,
    exchange_features,
)

BASIS = "6-31g"
TIGHT = {"conv_tol": 1e-12, "conv_tol_grad": 1e-8}
HIDDEN = (8, 8)
BASES = ["pbe", "b3lyp", "scan"]


def _random_theta(model, seed, scale=0.1):
    """Every entry of the model's initial theta perturbed (seeded): a non-trivial model. The
    exact-exchange fraction by 0.05 at most (a negative one is unphysical)."""
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(np.asarray(v) + (np.clip(0.05 * rng.standard_normal(), -0.05, 0.05)
                                            if k == "hyb" else
                                            scale * rng.standard_normal(np.shape(v))))
            for k, v in model.init().items()}


def _polarized(npt, seed, n_range=(-6.0, 2.0)):
    """Random spin densities (some channels empty), gradients and tau >= tau_W."""
    rng = np.random.default_rng(seed)
    n = 10.0 ** rng.uniform(*n_range, npt)
    frac = rng.uniform(0.0, 1.0, npt)
    frac[:4] = (0.0, 1.0, 0.5, 1e-9)
    na, nb = n * frac, n * (1.0 - frac)
    saa, sbb = (m ** (8 / 3) * 10.0 ** rng.uniform(-3, 2, npt) for m in (na, nb))
    sab = np.sqrt(saa * sbb) * rng.uniform(-1.0, 1.0, npt)
    ta, tb = (s / (8 * np.where(m > 0, m, 1)) + K_FACTOR_C * m ** (5 / 3) * rng.uniform(0, 3, npt)
              for m, s in ((na, saa), (nb, sbb)))
    return tuple(jnp.asarray(a) for a in (np.stack([na, nb]), np.stack([saa, sab, sbb]),
                                          np.stack([ta, tb])))


def _restricted(npt, seed):
    rho, sigma, tau = _polarized(npt, seed)
    n = 2.0 * rho[0]
    return n, 4.0 * sigma[0], 2.0 * tau[0]


def _args(f, rho, sigma, tau):
    return (rho, sigma, tau) if f.family == "mgga" else (rho, sigma)


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)


THR_X = 1e-15
"""The density threshold of the exchange components of BASES (libxc's)."""


def _assert_like_base(got, want, rho):
    """Equal to 1e-14 relative, except where a spin channel is empty (at or below THR_X).
    There the base (libxc) raises the empty channel to the threshold inside the total density
    (rs, zeta), which changes its exchange by ~THR_X/n relative, while the model's exchange,
    summed per spin channel, does not see an empty channel (exact spin scaling)."""
    rho = np.asarray(rho)
    n = rho[0] + rho[1]
    tol = np.where(np.minimum(rho[0], rho[1]) <= THR_X, 3.0 * THR_X / n, 0.0) + 1e-14
    rel = _rel(got, want)
    assert np.all(rel <= tol), (rel / tol).max()


# ---------------------------------------------------------------------- the model protocol
def test_theta_is_a_flat_dict_of_float64_arrays():
    model = Neural("b3lyp", hidden=(5, 3), seed=2, learn_hyb=True)
    theta = model.init()
    shapes = {k: tuple(np.shape(v)) for k, v in theta.items()}
    assert shapes == {"x.w0": (5, 2), "x.b0": (5,), "x.w1": (3, 5), "x.b1": (3,), "x.w2": (1, 3),
                      "c.w0": (5, 3), "c.b0": (5,), "c.w1": (3, 5), "c.b1": (3,), "c.w2": (1, 3),
                      "hyb": ()}
    assert all(v.dtype == jnp.float64 for v in theta.values())
    assert float(theta["hyb"]) == 0.2 and not np.any(theta["x.w2"]) and not np.any(theta["c.w2"])
    assert np.any(theta["x.w0"]) and not np.array_equal(theta["x.w0"], Neural(
        "b3lyp", hidden=(5, 3), seed=3).init()["x.w0"])
    assert hash(model) == hash(Neural("b3lyp", (5, 3), 2, True))
    assert Neural("scan").init()["c.w0"].shape == (16, 4)  # rs, s, zeta^2, alpha
    with pytest.raises(ValueError, match="combine exchange and correlation"):
        Neural("b97")
    with pytest.raises(ValueError, match="global hybrid"):
        Neural("pbe", learn_hyb=True)


def test_jit_without_recompiling_and_vmap_over_theta():
    """theta -> energy density is jit-able once for every theta (only arrays are traced) and
    vmaps over a batch of thetas (an ensemble of models)."""
    model = Neural("pbe", hidden=HIDDEN)
    rho, sigma, _ = _polarized(50, 9)

    def e(t):
        f = model.functional(t)
        return f.energy_density_polarized(f.params, rho, sigma)

    jitted = jax.jit(e)
    thetas = [_random_theta(model, seed) for seed in (1, 2, 3)]
    for t in thetas:
        np.testing.assert_allclose(jitted(t), e(t), rtol=1e-14, atol=0)
    assert jitted._cache_size() == 1
    batch = jax.tree.map(lambda *a: jnp.stack(a), *thetas)
    np.testing.assert_allclose(jax.vmap(e)(batch), np.stack([e(t) for t in thetas]),
                               rtol=1e-14, atol=0)


# ---------------------------------------------------------------------- exact properties
@pytest.mark.parametrize("base", BASES)
def test_untrained_model_equals_its_base(base):
    """theta = init(): the energy density is the base's, bit for bit for closed shells, to
    rounding (1e-14 relative) for open shells (exchange summed per spin channel)."""
    model = Neural(base, hidden=HIDDEN)
    f, ref = model.functional(model.init()), parse_xc(base)
    args = _args(f, *_restricted(300, 1))
    assert np.array_equal(f.energy_density(f.params, *args), ref.energy_density(ref.params, *args))
    args = _args(f, *_polarized(300, 2))
    got = f.energy_density_polarized(f.params, *args)
    _assert_like_base(got, ref.energy_density_polarized(ref.params, *args), args[0])


def _assert_exactly_one(got, untrained, meta):
    """F = 1: the energy density is the untrained model's, bit for bit with GGA features; with
    meta-GGA features to rounding (alpha = 1 is computed from tau to rounding)."""
    if meta:
        assert _rel(got, untrained).max() <= 1e-14
    else:
        assert np.array_equal(got, untrained)


@pytest.mark.parametrize("base", BASES)
def test_uniform_gas_limit_for_any_theta(base):
    """s = 0 (and alpha = 1): the enhancement factors are 1, for any rs and zeta, with every
    weight of the networks perturbed: the energy density is the untrained model's (bit for bit
    for GGA features; meta-GGA: alpha = 1 to rounding) and so the base's."""
    model = Neural(base, hidden=HIDDEN)
    f, ref = model.functional(_random_theta(model, 7, scale=0.5)), parse_xc(base)
    f0 = model.functional(model.init())
    rs = np.array([0.05, 0.3, 1.0, 3.0, 10.0, 40.0])
    zeta = np.array([0.0, 0.2, -0.5, 0.9, -1.0, 1.0])
    rs, zeta = (a.ravel() for a in np.meshgrid(rs, zeta))
    n = 3.0 / (4.0 * np.pi * rs**3)
    rho = jnp.asarray(np.stack([(1 + zeta) * n / 2, (1 - zeta) * n / 2]))
    sigma = jnp.zeros((3, n.size))
    tau = K_FACTOR_C * rho ** (5 / 3)  # tau_s of the uniform gas: alpha = 1
    args = _args(f, rho, sigma, tau)
    got = f.energy_density_polarized(f.params, *args)
    _assert_exactly_one(got, f0.energy_density_polarized(f0.params, *args), model.meta)
    _assert_like_base(got, ref.energy_density_polarized(ref.params, *args), rho)
    r_args = _args(f, jnp.asarray(n), sigma[0], 2 * K_FACTOR_C * jnp.asarray(n / 2) ** (5 / 3))
    got = f.energy_density(f.params, *r_args)
    _assert_exactly_one(got, f0.energy_density(f0.params, *r_args), model.meta)
    assert _rel(got, ref.energy_density(ref.params, *r_args)).max() <= 1e-14
    # the factors themselves (of the occupied alpha channels)
    rho, sigma, tau = rho[:, zeta > -1], sigma[:, zeta > -1], tau[:, zeta > -1]
    nets, t = f.params["nets"], (tau[0], tau) if model.meta else (None, None)
    for fx in (enhancement(nets["x"], *exchange_features(rho[0], sigma[0], t[0])),
               enhancement(nets["c"], *correlation_features(rho, sigma, t[1]))):
        assert np.all(fx == 1.0) if not model.meta else np.abs(fx - 1.0).max() <= 1e-14
    # and the model is not its base away from the limit
    args = _args(f, *_polarized(200, 3))
    off = _rel(f.energy_density_polarized(f.params, *args),
               ref.energy_density_polarized(ref.params, *args))
    assert off.max() > 1e-2


@pytest.mark.parametrize("base", BASES)
def test_exchange_spin_scaling_for_any_theta(base):
    """E_x[n_a, n_b] = (E_x[2 n_a] + E_x[2 n_b]) / 2 for the enhanced exchange (pointwise, with
    |grad 2 n_s|^2 = 4 sigma_ss and tau = 2 tau_s), and exchange + correlation = the whole."""
    model = Neural(base, hidden=HIDDEN)
    f = model.functional(_random_theta(model, 11, scale=0.5))
    fx, fc = f.part("x"), f.part("c")
    rho, sigma, tau = _polarized(400, 5)
    e_pol = fx.energy_density_polarized(fx.params, *_args(f, rho, sigma, tau))
    e_a, e_b = (fx.energy_density(fx.params, *_args(f, 2 * rho[s], 4 * sigma[2 * s], 2 * tau[s]))
                for s in (0, 1))
    assert _rel(0.5 * (e_a + e_b), e_pol).max() <= 1e-12
    base_x = model.functional(model.init()).part("x")
    e_base = base_x.energy_density_polarized(base_x.params, *_args(f, rho, sigma, tau))
    assert _rel(e_pol, e_base).max() > 1e-2  # the exchange is enhanced
    whole = f.energy_density_polarized(f.params, *_args(f, rho, sigma, tau))
    e_c = fc.energy_density_polarized(fc.params, *_args(f, rho, sigma, tau))
    assert _rel(e_pol + e_c, whole).max() <= 1e-13


_EDGE = [  # (n_a, n_b, s_aa, s_ab, s_bb, tau_a, tau_b)
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), (1e-30, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (1e-16, 1e-16, 1e-40, 0.0, 1e-40, 1e-30, 1e-30),  # these three: below every threshold
    (5e-13, 5e-13, 0.0, 0.0, 0.0, 0.0, 0.0),
    (1e-9, 0.0, 1e-20, 0.0, 0.0, 1e-14, 0.0), (0.3, 0.0, 0.05, 0.0, 0.0, 0.1, 0.0),
    (0.0, 0.3, 0.0, 0.0, 0.05, 0.0, 0.1), (0.3, 1e-20, 0.05, 0.0, 0.0, 0.1, 0.0),
    (0.15, 0.15, 0.0, 0.0, 0.0, 0.0, 0.0), (0.3, 0.3, 0.05, -0.05, 0.05, 0.1, 0.1),
    (1e3, 1e3, 0.0, 0.0, 0.0, 0.0, 0.0), (20.0, 0.0, 3.0, 0.0, 0.0, 10.0, 0.0),
]


@pytest.mark.parametrize("base", ["pbe", "scan"])
def test_finite_at_vanishing_densities(base):
    """Zero and tiny densities: E_xc and its gradients with respect to theta and to the density
    variables are finite (restricted and polarised), and below the thresholds the energy
    density is exactly the base's (zero)."""
    model = Neural(base, hidden=HIDDEN)
    theta = _random_theta(model, 5, scale=0.5)
    pts = jnp.asarray(_EDGE).T
    w = jnp.linspace(0.5, 1.5, pts.shape[1])
    ref = parse_xc(base)

    def e_pol(f, v):
        return f.energy_density_polarized(f.params, *_args(f, v[0:2], v[2:5], v[5:7]))

    def e_res(f, v):
        return f.energy_density(f.params, *_args(f, v[0] + v[1], v[2] + 2 * v[3] + v[4],
                                                v[5] + v[6]))

    for e in (e_pol, e_res):
        def exc(t, v, e=e):
            return jnp.sum(w * e(model.functional(t), v))

        def v_xc(t, v, exc=exc):
            return jax.grad(exc, argnums=1)(t, v)

        def derivatives(t, v, exc=exc, v_xc=v_xc):
            """dE/dtheta, dE/dv and the derivatives of dE/dv along v and along theta."""
            dv = jax.jvp(lambda x: v_xc(t, x), (v,), (jnp.ones_like(v),))[1]
            dt = jax.jvp(lambda x: v_xc(x, v), (t,), (jax.tree.map(jnp.ones_like, t),))[1]
            return jax.grad(exc, argnums=(0, 1))(t, v) + (dv, dt)

        val = e(model.functional(theta), pts)
        assert np.isfinite(val).all()
        assert not np.any(val[:3]) and not np.any(e(ref, pts)[:3])  # zero, as the base
        g_theta, *g_v = derivatives(theta, pts)
        assert all(np.isfinite(g).all() and np.any(g) for g in g_theta.values())
        assert all(np.isfinite(g).all() for g in g_v)


# ---------------------------------------------------------------------- through the SCF
class _Base:
    """The base functional as a model with nothing learned."""

    def __init__(self, base):
        self.base = base

    def init(self):
        return {}

    def functional(self, theta):
        return parse_xc(self.base)


def _species(name, model):
    mol = dftad.load(f"molecules/w4-11/species/{name}.xyz")
    return learn.Species.build(name, mol, model.functional(model.init()), BASIS, grid_level=2,
                               **TIGHT)


def test_untrained_scf_energy_equals_the_base():
    model = Neural("pbe", hidden=HIDDEN)
    got = learn.energy_and_grad(_species("h2o", model), model, model.init())
    base = _Base("pbe")
    want = learn.energy_and_grad(_species("h2o", base), base, {})
    assert got.converged and want.converged
    assert abs(got.e_tot - want.e_tot) < 1e-10


@pytest.mark.parametrize("name, model", [
    ("h2o", Neural("pbe", hidden=HIDDEN)),
    ("oh", Neural("pbe", hidden=HIDDEN)),
    ("h2o", Neural("b3lyp", hidden=(4,), learn_hyb=True)),
    pytest.param("oh", Neural("b3lyp", hidden=(4,), learn_hyb=True), marks=pytest.mark.slow),
    pytest.param("oh", Neural("scan", hidden=(4, 4)), marks=pytest.mark.slow),
])
def test_energy_gradient_equals_finite_differences(name, model):
    """dE/dtheta at the converged density (learn.energy_and_grad) for random non-zero theta
    equals central differences of converged SCF energies to 1e-6 relative, closed and open
    shell, on randomly chosen entries of theta (and the exact-exchange fraction)."""
    theta = _random_theta(model, 3)
    sp = _species(name, model)
    p = learn.energy_and_grad(sp, model, theta)
    assert p.converged
    rng = np.random.default_rng(17)
    entries = [(k, tuple(int(j) for j in np.unravel_index(rng.integers(np.size(theta[k])),
                                                          np.shape(theta[k]))))
               for k in rng.choice(sorted(set(theta) - {"hyb"}), 3, replace=False)]
    if "hyb" in theta:
        entries.append(("hyb", ()))
    h = 1e-4
    for key, i in entries:
        e = []
        for s in (1.0, -1.0):
            t = dict(theta)
            t[key] = theta[key].at[i].add(s * h)
            e.append(learn.energy_and_grad(sp, model, t).e_tot)
        fd = (e[0] - e[1]) / (2 * h)
        g = float(np.asarray(p.grad[key])[i])
        assert abs(g - fd) <= 1e-6 * max(abs(fd), 1e-3), (key, i, g, fd)
