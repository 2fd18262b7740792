"""Boys function F_n(T) vs mpmath (1e-14 relative), its custom JVP, second derivatives, jit/vmap."""

import functools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from _checks import fd_directional

from dftad.integrals.boys import NMAX, T_SWITCH, boys, boys_rows

RTOL = 1e-14

mpmath.mp.dps = 50


def boys_mp(n: int, t: float) -> float:
    """F_n(T) = gamma(n + 1/2, T) / (2 T^(n + 1/2)) (lower incomplete gamma), F_n(0) = 1/(2n+1)."""
    if t == 0:
        return 1.0 / (2 * n + 1)
    tt = mpmath.mpf(t)
    a = n + mpmath.mpf(1) / 2
    return float(mpmath.gammainc(a, 0, tt) / (2 * tt**a))


def boys_table_mp(nmax: int, ts) -> np.ndarray:
    return np.array([[boys_mp(n, float(t)) for n in range(nmax + 1)] for t in ts])


# T from 0 through tiny values, the Taylor table (grid points and midpoints, where the Taylor
# step is largest), both sides of the table switch at 40, and the asymptotic range up to 1e8.
T_SPECIAL = [
    0.0, 1e-300, 1e-100, 1e-30, 1e-16, 1e-12, 1e-8, 1e-5, 1e-3,
    0.0125, 0.025, 0.0375, 0.05, 0.075, 0.1, 0.325, 0.5, 1.0, 1.975, 2.5, 5.0, 7.77, 10.0,
    12.525, 15.3, 20.0, 25.025, 30.0, 33.3, 35.0, 38.975, 39.5, 39.975, 39.99,
    T_SWITCH - 1e-9, T_SWITCH, T_SWITCH + 1e-9, 40.01, 40.025, 40.5, 41.0, 45.0, 50.0, 60.0,
    75.0, 100.0, 200.0, 500.0, 1e3, 3.3e3, 1e4, 1e5, 1e6, 1e7, 1e8,
]


def _random_ts(n, seed):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0.0, 45.0, n // 2)  # the whole Taylor table, dense
    hi = 10.0 ** rng.uniform(-12, 8, n - n // 2)  # log-uniform over the whole range
    return np.concatenate([lo, hi])


T_ALL = np.array(T_SPECIAL + list(_random_ts(160, seed=7)))


@functools.cache
def reference_all():
    return boys_table_mp(NMAX + 3, T_ALL)  # up to F_35 for second/third derivatives of F_32


def rel_err(ours, ref):
    return np.abs(np.asarray(ours) - ref) / np.abs(ref)


boys_jit = jax.jit(boys, static_argnums=0)


def test_values_all_orders_whole_range():
    """F_0..F_32 on special and random T in [0, 1e8] to 1e-14 relative."""
    ref = reference_all()[:, : NMAX + 1]
    ours = np.asarray(boys_jit(NMAX, jnp.asarray(T_ALL)))
    assert ours.shape == (len(T_ALL), NMAX + 1)
    assert np.all(np.isfinite(ours)) and np.all(ours > 0)
    err = rel_err(ours, ref)
    worst = np.unravel_index(err.argmax(), err.shape)
    assert err.max() < RTOL, f"max rel err {err.max():.2e} at T={T_ALL[worst[0]]}, n={worst[1]}"


@pytest.mark.parametrize("nmax", [0, 4, 19])
def test_lower_nmax(nmax):
    """Fewer orders start the Taylor/recursion from another table column: same accuracy."""
    ref = reference_all()[:, : nmax + 1]
    ours = np.asarray(boys_jit(nmax, jnp.asarray(T_ALL)))
    assert ours.shape == (len(T_ALL), nmax + 1)
    assert rel_err(ours, ref).max() < RTOL


@pytest.mark.parametrize("nmax", [1, 5, 12])
def test_rows_equal_the_stacked_form(nmax):
    """boys_rows (one array per order) against mpmath to 1e-14 relative, like boys."""
    ref = reference_all()[:, : nmax + 1]
    ours = np.stack(jax.jit(boys_rows, static_argnums=0)(nmax, jnp.asarray(T_ALL)), axis=-1)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref).max() < RTOL


def test_zero_exact_and_shapes():
    """F_n(0) = 1/(2n+1); any input shape gets a new last axis; scalar input works."""
    f0 = np.asarray(boys(NMAX, 0.0))
    assert f0.shape == (NMAX + 1,)
    np.testing.assert_allclose(f0, 1.0 / (2 * np.arange(NMAX + 1) + 1), rtol=RTOL, atol=0)
    t = jnp.asarray(T_ALL[:24]).reshape(2, 3, 4)
    out = boys(4, t)
    assert out.shape == (2, 3, 4, 5)
    flat = np.asarray(boys(4, jnp.asarray(T_ALL[:24])))
    np.testing.assert_array_equal(np.asarray(out).reshape(24, 5), flat)


def test_continuity_at_table_switch():
    """The two branches agree at T_SWITCH (values just below/above differ only by the slope)."""
    eps = 1e-7
    below = np.asarray(boys(NMAX, T_SWITCH - eps))
    above = np.asarray(boys(NMAX, T_SWITCH + eps))
    ref = boys_table_mp(NMAX + 1, [T_SWITCH])[0]
    # F_n(T +- eps) = F_n(T) -+ eps F_{n+1}(T)
    np.testing.assert_allclose(below, ref[:-1] + eps * ref[1:], rtol=RTOL, atol=0)
    np.testing.assert_allclose(above, ref[:-1] - eps * ref[1:], rtol=RTOL, atol=0)


def test_monotone_in_n_and_t():
    """F_n(T) decreases with n and with T (a property, independent of the reference)."""
    ts = jnp.asarray(np.sort(T_ALL))
    f = np.asarray(boys_jit(NMAX, ts))
    assert np.all(np.diff(f, axis=1) < 0)
    assert np.all(np.diff(f, axis=0) <= 0)


def test_bad_order_raises():
    with pytest.raises(ValueError):
        boys(-1, 1.0)
    with pytest.raises(ValueError):
        boys(1000, 1.0)


# ---------------------------------------------------------------------- derivatives
def _all(t):
    return boys(NMAX, t)


def _component(n):
    return lambda t: boys(NMAX, t)[n]


def test_grad_is_minus_next_order():
    """jax.grad of F_n is -F_{n+1} (mpmath) to 1e-14 relative, for every n and T; forward
    (jacfwd) and reverse (jacrev) mode give the same."""
    ts = jnp.asarray(T_ALL)
    ref = -reference_all()[:, 1 : NMAX + 2]
    fwd = np.asarray(jax.jit(jax.vmap(jax.jacfwd(_all)))(ts))
    rev = np.asarray(jax.jit(jax.vmap(jax.jacrev(_all)))(ts))
    assert fwd.shape == rev.shape == ref.shape
    assert rel_err(fwd, ref).max() < RTOL
    assert rel_err(rev, ref).max() < RTOL
    for n in (0, 17, NMAX):  # jax.grad of one scalar component
        g = np.asarray(jax.vmap(jax.grad(_component(n)))(ts))
        assert rel_err(g, ref[:, n]).max() < RTOL


def test_jvp_of_all_orders():
    """One JVP of the stacked F_0..F_32 gives -F_1..-F_33 times the tangent."""
    ts = jnp.asarray(T_ALL)
    dt = jnp.asarray(np.linspace(-2.0, 3.0, len(T_ALL)))
    prim, tan = jax.jvp(_all, (ts,), (dt,))
    ref = reference_all()
    assert rel_err(prim, ref[:, : NMAX + 1]).max() < RTOL
    expected = -ref[:, 1 : NMAX + 2] * np.asarray(dt)[:, None]
    nz = np.asarray(dt) != 0
    assert rel_err(np.asarray(tan)[nz], expected[nz]).max() < RTOL


# central differences: points away from 0 (one-sided there) on both branches and both sides of
# the switch; step 1e-5 relative keeps truncation (~(n h / T)^2) and rounding below 1e-7
T_FD = np.array([1e-3, 0.3, 1.0, 2.51, 7.0, 19.0, 33.0, 39.9, 40.1, 44.0, 80.0, 300.0, 5e3])


def _central(f, ts):
    """Central differences of f (elementwise in T, a row per T) with the step 1e-5 max(T, 1)."""
    scale = np.maximum(ts, 1.0)
    return fd_directional(f, ts, scale, 1e-5) / scale[:, None]


def test_grad_matches_central_differences():
    """AD derivative of every order vs central finite differences of the function itself."""
    fd = _central(jax.jit(_all), T_FD)
    ad = np.asarray(jax.vmap(jax.jacfwd(_all))(jnp.asarray(T_FD)))
    assert np.all(ad < 0)
    np.testing.assert_allclose(ad, fd, rtol=1e-6, atol=0)


def test_second_derivative():
    """d2F_n/dT2 = F_{n+2}: jax.hessian and grad-of-grad are finite, equal mpmath to 1e-14
    relative and central differences of the first derivative to 1e-6."""
    ts = jnp.asarray(T_ALL)
    ref = reference_all()[:, 2 : NMAX + 3]
    hess = jax.jit(jax.vmap(jax.hessian(_all)))
    h_ours = np.asarray(hess(ts))
    assert h_ours.shape == ref.shape
    assert np.all(np.isfinite(h_ours)) and np.all(h_ours > 0)
    assert rel_err(h_ours, ref).max() < RTOL
    gg = np.asarray(jax.vmap(jax.grad(jax.grad(_component(NMAX))))(ts))
    assert np.all(np.isfinite(gg))
    assert rel_err(gg, ref[:, NMAX]).max() < RTOL
    fd = _central(jax.vmap(jax.jacfwd(_all)), T_FD)
    np.testing.assert_allclose(np.asarray(hess(jnp.asarray(T_FD))), fd, rtol=1e-6, atol=0)


def test_third_derivative_reverse_over_forward():
    """d3F_n/dT3 = -F_{n+3}, mixing jacfwd and jacrev, at the highest order n = 32."""
    d3 = jax.jit(jax.vmap(jax.jacrev(jax.jacfwd(jax.grad(_component(NMAX))))))
    ref = -reference_all()[:, NMAX + 3]
    assert rel_err(d3(jnp.asarray(T_ALL)), ref).max() < RTOL


def test_jit_vmap_match_eager():
    """Eager, jit, vmap over T, and vmap of jit agree to rounding; gradient of a weighted sum of
    all orders under jit is -sum w_n F_{n+1}."""
    ts = jnp.asarray(T_ALL)
    eager = np.asarray(boys(NMAX, ts))
    np.testing.assert_allclose(np.asarray(boys_jit(NMAX, ts)), eager, rtol=RTOL, atol=0)
    vm = jax.vmap(_all)(ts)
    np.testing.assert_allclose(np.asarray(vm), eager, rtol=RTOL, atol=0)
    vj = jax.vmap(jax.jit(_all))(ts.reshape(-1, 1))
    np.testing.assert_allclose(np.asarray(vj)[:, 0], eager, rtol=RTOL, atol=0)
    w = jnp.asarray(np.linspace(0.5, 1.5, NMAX + 1))
    g = jax.jit(jax.vmap(jax.grad(lambda t: jnp.sum(boys(NMAX, t) * w))))
    expected = -(reference_all()[:, 1 : NMAX + 2] @ np.asarray(w))
    assert rel_err(g(ts), expected).max() < 4 * RTOL
