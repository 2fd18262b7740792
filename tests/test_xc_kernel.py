"""dftad.xc.kernel: the energy density's written-out derivatives equal JAX's own through the
functional (first to third order, in the variables and in the parameters), restricted and
polarised, for every family."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dftad.density import density
from dftad.xc import kernel, parse_xc

TOL = 1e-11  # relative to the largest magnitude: same operations, other order of rounding


def _ao_and_dm(spin, nao=6, npts=64, seed=0):
    rng = np.random.default_rng(seed)
    ao = jnp.asarray(rng.normal(size=(4, npts, nao)) * 0.5)
    c = rng.normal(size=(nao, 3))
    dm = c @ c.T
    if spin:
        c2 = rng.normal(size=(nao, 2))
        dm = np.stack([dm, c2 @ c2.T])
    return ao, jnp.asarray(dm), jnp.asarray(rng.uniform(0.1, 1.0, npts))


def _energies(f, ao, w):
    """E(dm, params) through the kernel and through the functional's own code."""
    xctype = f.family.upper()

    def through_kernel(dm, params):
        polarized = dm.ndim == 3
        x = kernel.variables(density(ao, dm, xctype), polarized)
        return jnp.sum(w * kernel.energy_density(f, polarized, params, x))

    def plain(dm, params):
        d = density(ao, dm, xctype)
        if dm.ndim == 3:
            return jnp.sum(w * f.energy_density_polarized(params, d.rho, d.sigma, d.tau))
        return jnp.sum(w * f.energy_density(params, d.rho, d.sigma, d.tau))

    return through_kernel, plain


def _close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL * max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize("spin", [0, 1])
@pytest.mark.parametrize("xc", ["svwn", "b3lyp", "scan"])
def test_derivatives_equal_jax_own(xc, spin):
    f = parse_xc(xc)
    # meta-GGA tau needs the AO gradient, which the 4 components carry
    ao, dm, w = _ao_and_dm(spin)
    ours, ref = _energies(f, ao, w)
    rng = np.random.default_rng(1)
    t1, t2 = (jnp.asarray(rng.normal(size=dm.shape)) for _ in range(2))
    p = f.params
    _close(ours(dm, p), ref(dm, p))
    # V_xc, its JVP (the response kernel), vmapped over tangents, and one order more
    grad = [jax.grad(e)(dm, p) for e in (ours, ref)]
    _close(*grad)

    def jvp(e, t):
        return jax.jvp(lambda d: jax.grad(e)(d, p), (dm,), (t,))[1]

    _close(jvp(ours, t1), jvp(ref, t1))
    ts = jnp.stack([t1, t2, t1 - t2])
    _close(jax.vmap(lambda t: jvp(ours, t))(ts), jax.vmap(lambda t: jvp(ref, t))(ts))
    third = [jax.jvp(lambda d, e=e: jvp(e, t1), (dm,), (t2,))[1] for e in (ours, ref)]
    _close(*third)


@pytest.mark.parametrize("xc", ["b3lyp", "scan"])
def test_parameter_derivatives_equal_jax_own(xc):
    """Training differentiates V_xc (through the SCF) and E_xc in the functional's parameters:
    reverse mode of the potential's parameter tangent, as learn.py takes it."""
    f = parse_xc(xc)
    ao, dm, w = _ao_and_dm(0)
    ours, ref = _energies(f, ao, w)
    rng = np.random.default_rng(2)
    ct = jnp.asarray(rng.normal(size=dm.shape))

    def loss(e):
        return lambda p: e(dm, p) + jnp.sum(ct * jax.grad(e)(dm, p))

    g_ours, g_ref = (jax.grad(loss(e))(f.params) for e in (ours, ref))
    for a, b in zip(jax.tree_util.tree_leaves(g_ours), jax.tree_util.tree_leaves(g_ref)):
        _close(a, b)
