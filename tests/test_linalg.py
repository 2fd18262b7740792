"""Linear algebra with custom derivatives (:mod:`dftad.linalg`) against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
from _checks import check_grads, fd_directional

from dftad import linalg


def _symmetric(rng, n):
    m = rng.standard_normal((n, n))
    return m + m.T


def test_inv_sqrt_psd_derivative_matches_finite_differences():
    """d A_+^-1/2 by its Daleckii-Krein JVP against central differences, for a matrix with a
    doubly degenerate kept eigenvalue (where differentiating eigh gives NaN) and two dropped."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = (q * np.array([1e-12, 3e-9, 0.4, 0.4, 1.3, 2.0])) @ q.T
    m = rng.standard_normal((6, 6))
    m = m + m.T
    m[:2, :2] = 0  # kept-kept and kept-dropped couplings; the dropped eigenvalues stay below 1e-7
    da = q @ m @ q.T
    _, jvp = jax.jvp(lambda m: linalg.inv_sqrt_psd(m, 1e-7), (jnp.asarray(a),), (jnp.asarray(da),))
    fd = fd_directional(lambda m: linalg.inv_sqrt_psd(m, 1e-7), a, da, h=1e-5)
    assert bool(jnp.isfinite(jvp).all())
    np.testing.assert_allclose(np.asarray(jvp), fd, atol=1e-8)
    f = np.asarray(linalg.inv_sqrt_psd(jnp.asarray(a), 1e-7))
    np.testing.assert_allclose(f @ a @ f, q[:, 2:] @ q[:, 2:].T, atol=1e-10)  # projector on kept


def test_projector_jvp_matches_finite_differences():
    """The closed-form JVP of P = sum_k n_k v_k v_k^T (occupied and virtual levels apart)."""
    rng = np.random.default_rng(2)
    fo = jnp.asarray(np.diag([-1.0, -0.5, 0.3, 0.9, 1.7]) + 0.05 * _symmetric(rng, 5))
    occ = jnp.asarray([2.0, 2.0, 0.0, 0.0, 0.0])
    check_grads(lambda f: linalg.projector(0.5 * (f + f.T), occ), (fo,), order=2,
                modes=("fwd",), atol=1e-6, rtol=1e-6)


def test_projector_derivative_is_finite_at_degenerate_occupied_levels():
    """Two degenerate occupied levels (a symmetric molecule's): the JVP stays finite and equals
    finite differences along a perturbation that keeps the degeneracy's subspace."""
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((4, 4)))
    fo = (q * np.array([-1.0, -1.0, 0.5, 1.2])) @ q.T
    occ = jnp.asarray([2.0, 2.0, 0.0, 0.0])
    d = _symmetric(np.random.default_rng(4), 4)
    _, jvp = jax.jvp(lambda f: linalg.projector(f, occ), (jnp.asarray(fo),), (jnp.asarray(d),))
    fd = fd_directional(lambda f: linalg.projector(f, occ), fo, d, h=1e-5)
    assert bool(jnp.isfinite(jvp).all())
    np.testing.assert_allclose(np.asarray(jvp), fd, atol=1e-8)


def test_orthogonalisers_give_orthonormal_bases():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 6))
    s = jnp.asarray(a @ a.T + 6 * np.eye(6))
    for x in (linalg.orthogonalizer(s), linalg.orthonormal_basis(s)):
        np.testing.assert_allclose(np.asarray(x.T @ s @ x), np.eye(6), atol=1e-12)


def test_gmres_solves_nearly_singular_systems_without_nan():
    """GMRES on A x = b with one eigenvalue of A at 1e-10..1e-6 (an SCF response at a flat
    direction) and b in its range: residual below the tolerance, no NaN (jax.scipy's batched
    GMRES squares cond(H) in its normal equations and gives NaN at 1e-9 here), the solution equals
    numpy's; also a block-shaped right-hand side, a Krylov space exhausted early (breakdown), a zero
    right-hand side, and vmap over right-hand sides."""
    rng = np.random.default_rng(1)
    n = 30
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    for tiny in [1e-6, 1e-8, 1e-9, 1e-10]:
        w = np.linspace(1.0, 2.0, n)
        w[0] = tiny
        a = (q * w) @ q.T
        b = a @ rng.standard_normal(n)
        x = np.asarray(linalg.gmres(lambda v, a=a: a @ v, jnp.asarray(b), 1e-10, 40, 20))
        assert np.linalg.norm(a @ x - b) <= 1e-10 * np.linalg.norm(b)
        np.testing.assert_allclose(x, np.linalg.solve(a, b), atol=1e-4 * tiny ** -0.5)
    a = np.eye(24) + 0.3 * rng.standard_normal((24, 24)) / np.sqrt(24)
    b = rng.standard_normal((2, 3, 4))
    x = linalg.gmres(lambda v: (a @ v.ravel()).reshape(2, 3, 4), jnp.asarray(b), 1e-12, 40, 5)
    np.testing.assert_allclose(np.asarray(x).ravel(), np.linalg.solve(a, b.ravel()), atol=1e-12)
    d = jnp.diag(jnp.array([1.0, 2.0, 4.0]))
    xs = jax.vmap(lambda b: linalg.gmres(lambda v: d @ v, b, 1e-12, 40, 5))(jnp.eye(3))
    np.testing.assert_allclose(np.asarray(xs), np.diag([1.0, 0.5, 0.25]), atol=1e-14)
    assert not np.asarray(linalg.gmres(lambda v: d @ v, jnp.zeros(3), 1e-12, 40, 5)).any()


def test_gmres_cycle_stops_at_the_krylov_vectors_it_needs():
    """The Givens rotations track the least-squares residual of each leading block of columns
    of a Hessenberg matrix (against lstsq), and a cycle ends when it is below the tolerance:
    A = 1 + a rank-3 term needs 4 Krylov vectors, counted as matrix-vector products, not 40."""
    rng = np.random.default_rng(2)
    m = 8
    h = np.triu(rng.standard_normal((m + 1, m)), -1)
    g = jnp.zeros(m + 1).at[0].set(1.7)
    rot = jnp.zeros((2, m))
    for j in range(m):
        g, rot = linalg._givens_step(j, jnp.asarray(h[:, j]), rot, g)
        e = np.zeros(j + 2)
        e[0] = 1.7
        y = np.linalg.lstsq(h[: j + 2, : j + 1], e, rcond=None)[0]
        assert abs(abs(float(g[j + 1])) - np.linalg.norm(e - h[: j + 2, : j + 1] @ y)) < 1e-13

    n = 50
    u = rng.standard_normal((n, 3))
    a = np.eye(n) + u @ u.T / n
    b = rng.standard_normal(n)
    calls = []

    def matvec(v):
        jax.debug.callback(lambda: calls.append(1))
        return jnp.asarray(a) @ v

    x = linalg.gmres(matvec, jnp.asarray(b), 1e-10, 40, 20)
    jax.effects_barrier()
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a, b), atol=1e-12)
    assert len(calls) <= 6  # 4 Krylov vectors (+ the true residual), not 40
