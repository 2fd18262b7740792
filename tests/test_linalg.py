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
