"""A functional's energy density with its point-wise derivatives written out.

On a grid the exchange-correlation energy is  E_xc = sum_g w_g e(X_g),  where X_g are the
functional's variables at point g stacked as the rows of one array (:func:`variables`):

    restricted:   rho [, sigma] [, tau]
    polarised:    rho_a, rho_b [, sigma_aa, sigma_ab, sigma_bb] [, tau_a, tau_b]

and e is the energy per volume (Ha/Bohr^3). The SCF needs the gradient v_k = de/dX_k (PySCF's
vrho, vsigma, vtau: V_xc = sum_g w_g v_g . dX_g/dD); linear response (the implicit SCF's
GMRES, Hessians, polarisabilities) needs its tangent  dv_k = sum_l f_kl dX_l  with the
point-wise Hessian f_kl = d^2 e / dX_k dX_l (PySCF's fxc).

:func:`energy_density` is e(X) with a custom JVP that says so: its tangent is v . dX with v from
one reverse pass over the points (:func:`value_and_gradient`; the points are independent), and
the tangent of v is one forward-over-reverse pass of e along dX on the stacked rows. Left to
JAX, the forward-over-reverse pass through the density and the functional together cost 5x more
for one tangent of SCAN and 6x (B3LYP) to 9x (SCAN) more for nine tangents vmapped (a
Hessian's), on one block of water's grid; the water B3LYP/def2-SVP Hessian went from 14.3 to
4.8 s (``benchmarks/RESULTS.md``). The stacking matters: the same rule on the variables as
separate arrays was as slow as JAX's own pass. Values are the same to rounding, derivatives of
every order remain (each rule is plain JAX), and so do derivatives with respect to the
functional's parameters (training), taken by JAX where their tangents are not zero.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from ..density import Density
from .functional import Functional


def variables(d: Density, polarized: bool):
    """The functional's variables of ``d`` stacked as rows (module docstring): (nvar, ...)."""
    rows = [v for v in (d.rho, d.sigma, d.tau) if v is not None]
    return jnp.concatenate(rows) if polarized else jnp.stack(rows)


def _plain(f: Functional, polarized: bool, params, x):
    """e(X) by the functional's own code (energy per volume, one value per point)."""
    if not polarized:
        return f.energy_density(params, *x)
    rho, rest = x[:2], x[2:]
    sigma = rest[:3] if f.family in ("gga", "mgga") else None
    tau = rest[-2:] if f.family == "mgga" else None
    return f.energy_density_polarized(params, rho, sigma, tau)


def _gradient(f, polarized, params, x):
    """v = de/dX per point (nvar, ...): one reverse pass, the points being independent."""
    return jax.grad(lambda x: jnp.sum(_plain(f, polarized, params, x)))(x)


def _zero(t) -> bool:
    return all(isinstance(leaf, SymbolicZero) for leaf in jax.tree_util.tree_leaves(
        t, is_leaf=lambda leaf: isinstance(leaf, SymbolicZero)))


def _dense(t):
    """A tangent with JAX's symbolic zeros made arrays."""
    return jax.tree_util.tree_map(
        lambda leaf: jnp.zeros(leaf.shape, leaf.dtype) if isinstance(leaf, SymbolicZero) else leaf,
        t, is_leaf=lambda leaf: isinstance(leaf, SymbolicZero))


def energy_density(f: Functional, polarized: bool, params, x):
    """e(X) (Ha/Bohr^3, shape ``x.shape[1:]``) of the stacked variables ``x`` (:func:`variables`)
    with ``f``'s parameters ``params``; derivatives as in the module docstring."""
    return _energy_density(_static(f), polarized, params, x)


def value_and_gradient(f: Functional, polarized: bool, params, x):
    """(e, v): e(X) (:func:`energy_density`) and its gradient v = de/dX per point (the shape
    of ``x``), from one forward and one reverse pass; the tangent of v is f dX (module
    docstring), what the SCF's V_xc = sum_g w_g v_g . dX_g/dD needs in linear response."""
    return _value_and_gradient(_static(f), polarized, params, x)


def _static(f: Functional) -> Functional:
    """``f`` without its parameters, to travel as a static argument (under jit the parameters
    may be tracers; they are passed separately as ``params``)."""
    leaves, treedef = jax.tree_util.tree_flatten(f)
    return jax.tree_util.tree_unflatten(treedef, [None] * len(leaves))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _energy_density(f: Functional, polarized: bool, params, x):
    return _plain(f, polarized, params, x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _value_and_gradient(f: Functional, polarized: bool, params, x):
    """(e, v): e(X) and its gradient de/dX per point, from one forward and one reverse pass."""
    e, pullback = jax.vjp(lambda x: _plain(f, polarized, params, x), x)
    return e, pullback(jnp.ones_like(e))[0]


def _energy_tangent(f, polarized, params, x, v, dparams, dx):
    """de = v . dX + (de/dparams) dparams, the terms whose tangents are not symbolic zeros."""
    de = jnp.zeros_like(x[0])
    if not _zero(dx):
        de = de + jnp.sum(v * dx, axis=0)
    if not _zero(dparams):
        de = de + jax.jvp(lambda p: _plain(f, polarized, p, x), (params,), (_dense(dparams),))[1]
    return de


def _energy_density_jvp(f, polarized, primals, tangents):
    params, x = primals
    e, v = _value_and_gradient(f, polarized, params, x)
    return e, _energy_tangent(f, polarized, params, x, v, *tangents)


_energy_density.defjvp(_energy_density_jvp, symbolic_zeros=True)


def _value_and_gradient_jvp(f, polarized, primals, tangents):
    params, x = primals
    dparams, dx = tangents
    e, v = _value_and_gradient(f, polarized, params, x)
    dv = jnp.zeros_like(v)
    if not _zero(dx):
        dv = dv + jax.jvp(lambda x: _gradient(f, polarized, params, x), (x,), (dx,))[1]
    if not _zero(dparams):
        dv = dv + jax.jvp(lambda p: _gradient(f, polarized, p, x), (params,),
                          (_dense(dparams),))[1]
    return (e, v), (_energy_tangent(f, polarized, params, x, v, dparams, dx), dv)


_value_and_gradient.defjvp(_value_and_gradient_jvp, symbolic_zeros=True)
