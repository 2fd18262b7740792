"""Numerical integration of the exchange-correlation energy and its potential matrix.

    E_xc[D] = sum_g w_g e_xc(rho_g, sigma_g, tau_g),    rho_g = sum_mn D_mn phi_m(r_g) phi_n(r_g)
    V^xc_mn = dE_xc / dD_mn

The potential is obtained by reverse-mode AD of E_xc with respect to the density matrix, which
equals the usual  sum_g w_g [v_rho phi_m phi_n + 2 v_sigma grad rho . grad(phi_m phi_n) + ...]
for every family (LDA, GGA, meta-GGA) without writing the chain rule by hand; the functional's
own point-wise derivatives (v, and f dX for linear response) come from :mod:`dftad.xc.kernel`.
For a restricted ``dm`` (nao, nao) (the total density) V is (nao, nao); for an unrestricted
``dm`` (2, nao, nao) V holds (V_alpha, V_beta).

The grid is processed in blocks (``lax.scan``), each with its own ``value_and_grad``, so memory
is bounded by one block of AO values. AO values are evaluated once per geometry
(:func:`ao_blocks`) and re-used for every SCF cycle. The nuclear gradient of E_xc at fixed
``dm`` (:func:`exc_gradient`) takes the AOs one derivative order up instead of AD through them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .density import AO_DERIV, density
from .grid import block_grid
from .integrals.ao import NCOMP, eval_ao
from .xc import kernel
from .xc.functional import Functional

XCTYPE = {family: family.upper() for family in ("lda", "gga", "mgga")}
"""PySCF's xctype (what :func:`dftad.density.density` computes) of each functional family."""

DERIV = {family: AO_DERIV[xctype] for family, xctype in XCTYPE.items()}
"""AO derivative order each functional family needs."""


BLOCK_SIZE = 4096
"""Grid points per block (default): bounds the AO values held at once to one block's."""


class GridAO(NamedTuple):
    """AO values (nblock, ncomp, block, nao) and weights (nblock, block) on a blocked grid."""

    ao: jax.Array
    weights: jax.Array


def ao_blocks(basis, coords, points, weights, family: str,
              block_size: int = BLOCK_SIZE) -> GridAO:
    """AO values (with first derivatives for GGA/meta-GGA) on the grid in blocks of
    ``block_size`` points (:func:`dftad.grid.block_grid`: padding points have weight 0)."""
    pts, w = block_grid(points, weights, block_size)
    # rematerialised in reverse mode: a gradient (forces) re-evaluates each block's AOs instead
    # of storing the AD residuals of every block (2.5x faster for benzene/def2-SVP)
    ao = jax.lax.map(jax.checkpoint(lambda p: eval_ao(basis, coords, p, DERIV[family])), pts)
    return GridAO(ao, w)


def exc_direct(f: Functional, params, basis, coords, points, weights, dm,
               block_size: int = BLOCK_SIZE):
    """E_xc with each block's AO values evaluated inside the integration: equal to
    :func:`exc_only` of :func:`ao_blocks`, but nothing grid-sized is kept, in the forward or the
    reverse pass (each block's AOs and energy are rematerialised together). What the forces
    differentiate with respect to ``coords``, ``points`` and ``weights`` (grid response)."""
    pts, w = block_grid(points, weights, block_size)

    @jax.checkpoint
    def block(p, wb):
        return _block_energy(f, params, eval_ao(basis, coords, p, DERIV[f.family]), wb, dm)

    exc, _ = jax.lax.scan(lambda carry, blk: (carry + block(*blk), None), jnp.zeros(()), (pts, w))
    return exc


def _variables(f: Functional, ao, dm):
    """The functional's variables X (:func:`.kernel.variables`) of ``dm`` on one block's AO
    values (ncomp, block, nao)."""
    return kernel.variables(density(ao, dm, XCTYPE[f.family]), dm.ndim == 3)


def _energy_density(f: Functional, params, ao, dm):
    """e_xc per point, E_xc = sum_g w_g e_g, from one block's AO values (ncomp, block, nao)."""
    return kernel.energy_density(f, dm.ndim == 3, params, _variables(f, ao, dm))


def _block_energy(f: Functional, params, ao, w, dm):
    return jnp.sum(w * _energy_density(f, params, ao, dm))


_UP = np.array([[1, 2, 3], [4, 5, 6], [5, 7, 8], [6, 8, 9]])
"""Component of d/dr_x of AO component c (value, x, y, z) in :func:`~dftad.integrals.ao.eval_ao`'s
layout: _UP[c, x] (value -> x, y, z; x -> xx, xy, xz; y -> xy, yy, yz; z -> xz, yz, zz)."""


def exc_gradient(f: Functional, params, basis, coords, points, weights, dm,
                 block_size: int = BLOCK_SIZE):
    """The reverse pass of :func:`exc_direct` written out: (dE/dR through the AO centres
    (natm, 3), dE/d points (npts, 3), dE/d weights (npts,)). With phi-bar the cotangent of a
    block's AO values (value and, for GGA / meta-GGA, gradient components c; JAX's reverse pass
    of the density and the functional, matrix products) and AOs one derivative order up
    (:func:`~dftad.integrals.ao.eval_ao`),

        T_x(g, m) = sum_c phibar_c(g, m) d/dr_x phi_{m,c}(r_g),
        dE/dr_g = sum_m T(g, m),   dE/dR_A = -sum_g sum_{m on A} T(g, m),   dE/dw_g = e_g,

    since phi_m depends on r - A_m alone. JAX's reverse pass of the AO evaluation, which it
    replaces, costs ~3x more."""
    deriv = DERIV[f.family]
    ncomp = NCOMP[deriv]
    up = _UP[:ncomp]
    (pts, w), unblock = jax.vjp(lambda p, w: block_grid(p, w, block_size), points, weights)

    def step(acc, blk):
        p, wb = blk
        ao = eval_ao(basis, coords, p, deriv + 1)
        e, pullback = jax.vjp(lambda a: _energy_density(f, params, a, dm), ao[:ncomp])
        bar = pullback(wb)[0]  # (ncomp, block, nao)
        # (3, block, nao); a sum over c written out (jnp.sum over it: 2x slower end to end)
        t = jnp.stack([sum(bar[c] * ao[up[c, x]] for c in range(ncomp)) for x in range(3)])
        return acc + jnp.sum(t, axis=1), (jnp.sum(t, axis=2).T, e)

    acc, (p_bar, w_bar) = jax.lax.scan(step, jnp.zeros((3, basis.nao)), (pts, w))
    onehot = np.eye(coords.shape[0])[basis.layout.ao_atom]  # (nao, natm)
    p_bar, w_bar = unblock((p_bar, w_bar))
    return -(acc @ onehot).T, p_bar, w_bar


def exc_vxc_block(f: Functional, params, ao, w, dm):
    """One block's share of (E_xc, V_xc) (V_xc not yet symmetrised): AO values ``ao``
    (ncomp, block, nao), weights ``w`` (block,). V_xc = sum_g w_g v_g . dX_g/dD is the
    density's pullback of w v, v the functional's gradient (:func:`.kernel.value_and_gradient`,
    whose tangent is f dX): the same as ``value_and_grad`` of the block's energy, with less for
    JAX to trace (no JVP rule of the energy density to linearise and transpose)."""
    x, pullback = jax.vjp(lambda dm: _variables(f, ao, dm), dm)
    e, v = kernel.value_and_gradient(f, dm.ndim == 3, params, x)
    return jnp.sum(w * e), pullback(w * v)[0]


def exc_vxc(f: Functional, params, grid_ao: GridAO, dm):
    """(E_xc, V_xc) for ``dm``; see the module docstring."""

    def step(carry, blk):
        e, v = exc_vxc_block(f, params, *blk, dm)
        return (carry[0] + e, carry[1] + v), None

    init = (jnp.zeros(()), jnp.zeros_like(dm))
    (exc, vxc), _ = jax.lax.scan(step, init, (grid_ao.ao, grid_ao.weights))
    vxc = 0.5 * (vxc + jnp.swapaxes(vxc, -1, -2))
    return exc, vxc


def exc_only(f: Functional, params, grid_ao: GridAO, dm):
    """E_xc alone (differentiable in every input, for forces and training)."""

    def step(carry, blk):
        ao, w = blk
        return carry + jax.checkpoint(_block_energy)(f, params, ao, w, dm), None

    exc, _ = jax.lax.scan(step, jnp.zeros(()), (grid_ao.ao, grid_ao.weights))
    return exc
