"""One-electron integrals: overlap, kinetic energy, nuclear attraction and multipoles.

All are pure JAX functions of ``(basis, coords)`` (coords: nuclear positions, Bohr) returning
(nao, nao) matrices in PySCF's AO order, equal to ``mol.intor("int1e_ovlp" | "int1e_kin" |
"int1e_nuc" | "int1e_r" | "int1e_rr")``. They compile once per basis layout; derivatives with
respect to coords and exponents come from AD (Boys function with a custom JVP).

McMurchie-Davidson, one dimension (see :mod:`.hermite`); s = sqrt(pi/p):

    overlap     S_ij = E^{ij}_0 s
    kinetic     T_ij = -2 b^2 S_{i,j+2} + b (2j + 1) S_ij - j (j - 1)/2 S_{i,j-2}
    moments     <i| x_C |j>   = (E^{ij}_0 X_PC + E^{ij}_1) s
                <i| x_C^2 |j> = (E^{ij}_0 (X_PC^2 + 1/(2p)) + 2 E^{ij}_1 X_PC + 2 E^{ij}_2) s
    nuclear     V_ab = -sum_C Z_C (2 pi / p) sum_tuv E^{ab}_tuv R_tuv(p, P - C)

and the three dimensions multiply (kinetic: T_x S_y S_z + S_x T_y S_z + S_x S_y T_z).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, BasisLayout, ao_transform, cart_powers
from . import hermite
from .hermite import PairClass


# ---------------------------------------------------------------------- assembly
@functools.cache
def _scatter_index(layout: BasisLayout, pc_index: int):
    pc = hermite.pair_classes(layout)[pc_index]
    loc = layout.ao_loc
    na, nb = layout.nao_shell(pc.la), layout.nao_shell(pc.lb)
    rows = loc[pc.shells[:, 0]][:, None, None] + np.arange(na)[None, :, None]
    cols = loc[pc.shells[:, 1]][:, None, None] + np.arange(nb)[None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)
    return rows, cols


def _assemble(basis: Basis, coords, prim_block, ncomp: int | None = None):
    """Symmetric matrix from per-class primitive cartesian blocks.

    ``prim_block(pp, pc)`` returns (npp, [ncomp,] ncart_a, ncart_b) without contraction
    coefficients; they, the pair sums and the AO transforms are applied here.
    """
    layout = basis.layout
    shape = (layout.nao, layout.nao) if ncomp is None else (ncomp, layout.nao, layout.nao)
    out = jnp.zeros(shape, dtype=jnp.float64)
    for k, pc in enumerate(hermite.pair_classes(layout)):
        pp = hermite.prim_pairs(basis, coords, pc)
        blk = prim_block(pp, pc)
        blk = blk * pp.coef.reshape((-1,) + (1,) * (blk.ndim - 1))
        blk = jax.ops.segment_sum(blk, pc.pair_of_prim, num_segments=pc.npair)
        ta, tb = ao_transform(pc.la, layout.cart), ao_transform(pc.lb, layout.cart)
        blk = jnp.einsum("...ab,ai,bj->...ij", blk, ta, tb)
        rows, cols = _scatter_index(layout, k)
        # Scatter-adds (linear under AD); a diagonal shell pair's block is already symmetric.
        mirror = (pc.shells[:, 0] != pc.shells[:, 1])[:, None, None]
        if ncomp is None:
            out = out.at[rows, cols].add(blk).at[cols, rows].add(jnp.where(mirror, blk, 0.0))
        else:
            blk = jnp.moveaxis(blk, 1, 0)
            out = out.at[:, rows, cols].add(blk).at[:, cols, rows].add(jnp.where(mirror, blk, 0.0))
    return out


def _combine(tables, la, lb):
    """Product of 1D tables over x, y, z for every cartesian pair: (..., ncart_a, ncart_b).

    ``tables`` is (npp, 3, la+1, lb+1) or a list of such (one per axis)."""
    pa, pb = cart_powers(la), cart_powers(lb)
    out = None
    for ax in range(3):
        t = tables[ax] if isinstance(tables, (list, tuple)) else tables[:, ax]
        term = t[:, pa[:, ax][:, None], pb[:, ax][None, :]]
        out = term if out is None else out * term
    return out


def _overlap_1d(pp, la, lb, extra_b=0):
    """(npp, 3, la+1, lb+extra_b+1) one-dimensional overlaps (without K_AB)."""
    e = hermite.cartesian_e(pp, la, lb, extra_b)
    s = jnp.sqrt(jnp.pi / pp.p)[:, None, None, None]
    return e[..., 0] * s


# ---------------------------------------------------------------------- primitive blocks
def overlap_block(pp, la: int, lb: int):
    """Cartesian overlaps (npp, ncart_a, ncart_b) of primitive pairs, without coefficients."""
    return _combine(_overlap_1d(pp, la, lb), la, lb)


def kinetic_block(pp, la: int, lb: int):
    """Cartesian kinetic-energy integrals (npp, ncart_a, ncart_b), without coefficients."""
    s = _overlap_1d(pp, la, lb, extra_b=2)  # j up to lb + 2
    b = pp.b[:, None, None, None]
    j = jnp.arange(lb + 1, dtype=jnp.float64)
    t = -2.0 * b * b * s[..., 2 : lb + 3] + b * (2 * j + 1) * s[..., : lb + 1]
    if lb >= 2:
        jm = j[2:] * (j[2:] - 1) / 2
        t = t.at[..., 2:].add(-jm * s[..., : lb - 1])
    s = s[..., : lb + 1]
    tx = _combine([t[:, 0], s[:, 1], s[:, 2]], la, lb)
    ty = _combine([s[:, 0], t[:, 1], s[:, 2]], la, lb)
    tz = _combine([s[:, 0], s[:, 1], t[:, 2]], la, lb)
    return tx + ty + tz


def nuclear_block(pp, la: int, lb: int, coords, charges, per_nucleus: bool = False):
    """Cartesian nuclear-attraction integrals (npp, ncart_a, ncart_b) of the point charges
    ``charges`` at ``coords``, without coefficients; ``per_nucleus``: each charge's share,
    (npp, natm, ncart_a, ncart_b)."""
    e3 = hermite.hermite_3d(hermite.cartesian_e(pp, la, lb), la, lb)  # (npp, nab, nh)
    P = pp.P
    pc_vec = P[:, None, :] - coords[None, :, :]  # (npp, natm, 3)
    n, natm = P.shape[0], coords.shape[0]
    alpha = jnp.broadcast_to(pp.p[:, None], (n, natm)).reshape(-1)
    r = hermite.hermite_r(la + lb, alpha, pc_vec.reshape(-1, 3)).reshape(n, natm, -1)
    shape = (hermite.cart_powers(la).shape[0], hermite.cart_powers(lb).shape[0])
    if per_nucleus:
        v = jnp.einsum("pah,pch,c->pca", e3, r, charges)
        return (-2.0 * jnp.pi / pp.p[:, None, None] * v).reshape((n, natm) + shape)
    rz = jnp.einsum("pch,c->ph", r, charges)
    v = -2.0 * jnp.pi / pp.p[:, None] * jnp.einsum("pah,ph->pa", e3, rz)
    return v.reshape((n,) + shape)


# ---------------------------------------------------------------------- the integrals
def overlap(basis: Basis, coords) -> jax.Array:
    """Overlap matrix S_mn = <m|n> (PySCF ``int1e_ovlp``)."""
    return _assemble(basis, coords, lambda pp, pc: overlap_block(pp, pc.la, pc.lb))


def kinetic(basis: Basis, coords) -> jax.Array:
    """Kinetic energy matrix T_mn = <m| -nabla^2 / 2 |n> (Hartree; PySCF ``int1e_kin``)."""
    return _assemble(basis, coords, lambda pp, pc: kinetic_block(pp, pc.la, pc.lb))


def nuclear(basis: Basis, coords, charges) -> jax.Array:
    """Nuclear attraction V_mn = <m| -sum_C Z_C / |r - R_C| |n> (PySCF ``int1e_nuc``).

    ``charges`` (natm,) are the point charges Z_C at ``coords``.
    """
    charges = jnp.asarray(charges, dtype=jnp.float64)
    return _assemble(basis, coords,
                     lambda pp, pc: nuclear_block(pp, pc.la, pc.lb, coords, charges))


def multipole(basis: Basis, coords, order: int = 1, origin=(0.0, 0.0, 0.0)) -> jax.Array:
    """Cartesian multipole integrals about ``origin`` (Bohr).

    order 1: (3, nao, nao) <m| r_i - O_i |n> (PySCF ``int1e_r`` with ``common_orig``);
    order 2: (9, nao, nao) <m| (r_i - O_i)(r_j - O_j) |n> in the order xx, xy, xz, yx, ...
    (``int1e_rr``).
    """
    origin = jnp.asarray(origin, dtype=jnp.float64)
    if order not in (1, 2):
        raise ValueError(f"multipole order must be 1 or 2, got {order}")

    def block(pp, pc: PairClass):
        la, lb = pc.la, pc.lb
        e = hermite.cartesian_e(pp, la, lb)  # (npp, 3, la+1, lb+1, nt)
        s = jnp.sqrt(jnp.pi / pp.p)[:, None, None, None]
        xpc = (pp.P - origin)[:, :, None, None]  # (npp, 3, 1, 1)

        def et(t):
            return e[..., t] if t < e.shape[-1] else jnp.zeros_like(e[..., 0])

        m0 = et(0) * s
        m1 = (et(0) * xpc + et(1)) * s
        m2 = (et(0) * (xpc * xpc + 0.5 / pp.p[:, None, None, None]) + 2 * et(1) * xpc
              + 2 * et(2)) * s
        moments = [m0, m1, m2]
        comps = []
        if order == 1:
            for i in range(3):
                k = [0, 0, 0]
                k[i] = 1
                comps.append(_combine([moments[k[ax]][:, ax] for ax in range(3)], la, lb))
        else:
            for i in range(3):
                for j in range(3):
                    k = [0, 0, 0]
                    k[i] += 1
                    k[j] += 1
                    comps.append(_combine([moments[k[ax]][:, ax] for ax in range(3)], la, lb))
        return jnp.stack(comps, axis=1)

    return _assemble(basis, coords, block, ncomp=3 if order == 1 else 9)


def hcore(basis: Basis, coords, charges) -> jax.Array:
    """Core Hamiltonian h = T + V (Hartree)."""
    return kinetic(basis, coords) + nuclear(basis, coords, charges)
