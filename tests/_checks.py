"""Shared derivative checks, in the manner of JAX's own ``jax.test_util.check_grads`` tests.

    fd_jacobian(fn, x, h)                 central differences of fn at x, shaped
                                          fn(x).shape + x.shape
    fd_directional(fn, x, v, h)           (fn(x + h v) - fn(x - h v)) / 2h (or the 5-point stencil)
    check_grads(fn, args, order, ...)     AD (forward and reverse, to ``order``) against finite
                                          differences, then the same under ``jax.jit``
    check_vmap(fn, batch, ...)            ``jax.vmap(fn)`` equals ``fn`` applied to each member

Every test that compares a derivative with finite differences goes through these, so the stencil,
the step and the way the comparison is reported are written once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads as _jax_check_grads


def fd_directional(fn, x, v, h: float, stencil: int = 2):
    """Central-difference derivative of ``fn`` at ``x`` along ``v`` (same shape as ``x``).

    ``stencil=2``: (f(x+hv) - f(x-hv)) / 2h, truncation O(h^2). ``stencil=4``: the five-point
    formula (-f(x+2hv) + 8 f(x+hv) - 8 f(x-hv) + f(x-2hv)) / 12h, truncation O(h^4)."""
    x = np.asarray(x, dtype=float)
    v = np.asarray(v, dtype=float)

    def f(t):
        return np.asarray(fn(jnp.asarray(x + t * v)), dtype=float)

    if stencil == 2:
        return (f(h) - f(-h)) / (2 * h)
    if stencil == 4:
        return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)
    raise ValueError(f"stencil must be 2 or 4, got {stencil}")


def fd_jacobian(fn, x, h: float, stencil: int = 2):
    """Central-difference Jacobian d fn / d x, shaped ``fn(x).shape + x.shape`` (as
    ``jax.jacfwd``); one directional difference per element of ``x``."""
    x = np.asarray(x, dtype=float)
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = 1.0
        cols.append(fd_directional(fn, x, e.reshape(x.shape), h, stencil))
    out = np.stack(cols, axis=-1)
    return out.reshape(out.shape[:-1] + x.shape)


def check_grads(fn, args, order: int = 1, modes=("fwd", "rev"), atol=None, rtol=None,
                eps=None, jit: bool = True):
    """JAX's ``check_grads`` (forward and/or reverse mode up to ``order``, against finite
    differences along random directions), then again with ``fn`` under ``jax.jit``."""
    _jax_check_grads(fn, args, order=order, modes=modes, atol=atol, rtol=rtol, eps=eps)
    if jit:
        _jax_check_grads(jax.jit(fn), args, order=order, modes=modes, atol=atol, rtol=rtol,
                         eps=eps)


def check_vmap(fn, batch, in_axes=0, atol: float = 1e-12, rtol: float = 0.0):
    """``jax.vmap(fn, in_axes)(*batch)`` equals stacking ``fn`` of each member of the batch."""
    batch = tuple(batch)
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(batch)
    sizes = {a.shape[ax] for a, ax in zip(batch, axes) if ax is not None}
    (n,) = sizes
    got = jax.vmap(fn, in_axes=axes)(*batch)
    for i in range(n):
        member = [a if ax is None else jnp.take(a, i, axis=ax) for a, ax in zip(batch, axes)]
        want = fn(*member)
        jax.tree_util.tree_map(
            lambda g, w, i=i: np.testing.assert_allclose(np.asarray(g)[i], np.asarray(w),
                                                         atol=atol, rtol=rtol),
            got, want)
