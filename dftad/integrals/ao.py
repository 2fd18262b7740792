"""Atomic-orbital values and their first and second derivatives on arbitrary points.

Every AO of a shell with angular momentum l on atom A is a polynomial times a contracted radial
Gaussian of the displacement ``d = r - A`` (all lengths in Bohr):

    phi_m(r) = Y_m(d) R(s),   s = |d|^2,   R(s) = sum_p c'_p exp(-a_p s),

where ``c'_p`` are the normalised contraction coefficients
(:func:`dftad.basis.normalized_coefficients`) and ``Y_m(d) = sum_c T_cm x^i y^j z^k`` is a
homogeneous polynomial of degree l: ``T`` is :func:`dftad.basis.ao_transform` (PySCF's
``cart2sph`` for spherical AOs, libcint's s/p factors for cartesian ones), the sum running over
the cartesian monomials ``(i, j, k)`` of degree l in PySCF's order.

With ``F1(s) = 2 R'(s) = sum_p (-2 a_p) c'_p exp(-a_p s)`` and
``F2(s) = 4 R''(s) = sum_p (4 a_p^2) c'_p exp(-a_p s)`` the chain rule gives, with
``d_a = d/dr_a`` and ``x_a`` the components of ``d``,

    d_a phi      = R d_a Y + F1 x_a Y
    d_a d_b phi  = R d_a d_b Y + F1 (x_a d_b Y + x_b d_a Y + delta_ab Y) + F2 x_a x_b Y.

``d_a Y`` and ``d_a d_b Y`` are polynomials of degree l-1 and l-2 whose coefficients over the
monomials of that degree are fixed per l, built once on the Python side. The evaluation is
vectorised, with the static structure decided at setup (:func:`_plan`, cached per layout):

1. radial factors R, F1, F2 of every shell, shells grouped by number of primitives, one array
   expression per group over (points, shells, primitives);
2. polynomial factors per (atom, l) for l >= 2, shared by all shells of that l on the atom; the
   constant ones (s shells, p derivatives, d second derivatives) and the p values ``T_mm x_m``
   are not materialised;
3. one fused pass that gathers, for every AO column in PySCF's order, its radial factor, its
   polynomial factors and its displacement, and combines them with the formulas above.

The Python loops run over the few groups only (never over points, shells or atoms), so compile
time depends on the set of (l, nprim) present, not on the molecule's size. Nothing is
differentiated numerically, yet everything is a plain JAX function of the nuclear coordinates,
the points, and the basis exponents/coefficients, so ``jax.grad``, ``jax.jacfwd``, ``jax.vmap``
work (the derivative with respect to the atom's position is minus the derivative with respect to
the point).

Output layout is PySCF's ``eval_gto`` (``GTOval_sph_deriv2`` / ``GTOval_cart_deriv2``): an array
``(ncomp, npts, nao)`` whose components are

    deriv=0: value                                  (ncomp = 1)
    deriv=1: value, x, y, z                         (ncomp = 4)
    deriv=2: value, x, y, z, xx, xy, xz, yy, yz, zz (ncomp = 10)
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, BasisLayout, ao_transform, cart_powers, normalized_coefficients

NCOMP = {0: 1, 1: 4, 2: 10}
"""Number of output components for each derivative order."""

_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
"""Second-derivative components in PySCF's order: xx, xy, xz, yy, yz, zz."""


# ------------------------------------------------------------------------- static setup
@functools.cache
def _monomial_index(l: int) -> dict[tuple[int, int, int], int]:
    return {tuple(int(v) for v in p): i for i, p in enumerate(cart_powers(l))}


@functools.cache
def _poly_derivatives(l: int, cart: bool):
    """Coefficients of Y_m and its first and second derivatives over monomials.

    Returns ``(T, D1, D2)``: ``T`` (ncart(l), nao_l), ``D1`` (3, ncart(l-1), nao_l) or None,
    ``D2`` (6, ncart(l-2), nao_l) or None, such that ``d_a Y_m = sum_c D1[a, c, m] M^{l-1}_c``
    and ``d_a d_b Y_m = sum_c D2[ab, c, m] M^{l-2}_c``.
    """
    T = np.asarray(ao_transform(l, cart), dtype=np.float64)
    pw = cart_powers(l)
    D1 = D2 = None
    if l >= 1:
        idx1 = _monomial_index(l - 1)
        D1 = np.zeros((3, len(idx1), T.shape[1]))
        for c, p in enumerate(pw):
            for a in range(3):
                if p[a] > 0:
                    q = list(p)
                    q[a] -= 1
                    D1[a, idx1[tuple(int(v) for v in q)]] += p[a] * T[c]
    if l >= 2:
        idx2 = _monomial_index(l - 2)
        D2 = np.zeros((6, len(idx2), T.shape[1]))
        for c, p in enumerate(pw):
            for k, (a, b) in enumerate(_PAIRS):
                q = list(p)
                q[a] -= 1
                fac = p[a]
                fac *= q[b]
                q[b] -= 1
                if fac > 0:
                    D2[k, idx2[tuple(int(v) for v in q)]] += fac * T[c]
    return T, D1, D2


@dataclasses.dataclass(frozen=True)
class _RadialGroup:
    """Shells with the same number of primitives (their radial parts are evaluated together)."""

    shells: np.ndarray  # (nsh,) shell indices
    atoms: np.ndarray  # (nsh,) atom of each shell
    prims: np.ndarray  # (nsh, nprim) indices into the flat primitive arrays


@dataclasses.dataclass(frozen=True)
class _AngularGroup:
    """Angular momentum l >= 2: its polynomials Y_m(d) and their non-constant derivatives are
    evaluated once per atom carrying shells of this l, and shared by all those shells."""

    l: int
    atoms: np.ndarray  # (natm_l,) atoms with at least one shell of this l


def _degree(comp: int, l: int) -> int:
    """Polynomial degree of component ``comp`` (0 value, 1-3 first, 4-9 second derivatives)."""
    return l - (0 if comp == 0 else 1 if comp < 4 else 2)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How each AO column is assembled (see :func:`_eval_flat`)."""

    radial: tuple[_RadialGroup, ...]
    angular: tuple[_AngularGroup, ...]
    r_col: np.ndarray  # (nao,) column of each AO's shell in the radial arrays
    atom: np.ndarray  # (nao,) atom of each AO
    p_col: np.ndarray  # (10, nao) column of each AO's polynomial factor in the source Q_comp
    p_scale: np.ndarray  # (10, nao) static factor multiplying that column


@functools.cache
def _plan(layout: BasisLayout) -> _Plan:
    """Static evaluation plan for a layout.

    Radial factors are evaluated per shell (shells grouped by number of primitives). The
    polynomial factor of AO j in component k (Y_m, d_a Y_m or d_a d_b Y_m) is
    ``p_scale[k, j] * Q_k[:, p_col[k, j]]`` where, per component, the source ``Q_k`` is
    ``[1, (d_x, d_y, d_z of every atom) if k == 0, arrays of the l >= 2 groups]``: constant
    polynomials (degree 0) and vanishing ones use the column of ones with a static factor, the
    p-shell values (Y_m = T_mm d_m) use the displacement columns, and only the rest is computed.
    """
    shell_l = np.asarray(layout.shell_l)
    shell_atom = np.asarray(layout.shell_atom)
    shell_nprim = np.asarray(layout.shell_nprim)
    radial = []
    for nprim in sorted(set(layout.shell_nprim)):
        shells = np.nonzero(shell_nprim == nprim)[0]
        prims = layout.prim_loc[shells][:, None] + np.arange(nprim)[None, :]
        radial.append(_RadialGroup(shells, shell_atom[shells], prims))
    radial_order = np.concatenate([g.shells for g in radial])
    radial_pos = np.empty(layout.nbas, dtype=np.int64)  # shell -> column in the radial arrays
    radial_pos[radial_order] = np.arange(layout.nbas)

    natm = int(shell_atom.max()) + 1
    r_col, atom = (np.empty(layout.nao, dtype=np.int64) for _ in range(2))
    p_col = np.zeros((10, layout.nao), dtype=np.int64)
    p_scale = np.zeros((10, layout.nao))
    offset = [1 + (3 * natm if k == 0 else 0) for k in range(10)]  # next free column of Q_k
    angular = []
    for l in sorted(set(layout.shell_l)):
        shells = np.nonzero(shell_l == l)[0]
        atoms, atom_pos = np.unique(shell_atom[shells], return_inverse=True)
        nao_l = layout.nao_shell(l)
        T, D1, D2 = _poly_derivatives(l, layout.cart)
        coef = [T] + [None if D1 is None else D1[q] for q in range(3)]
        coef += [None if D2 is None else D2[k] for k in range(6)]
        if l == 1:
            assert np.allclose(T, np.diag(np.diag(T))), "p-shell transform must be diagonal"
        if l >= 2:
            angular.append(_AngularGroup(l, atoms))
        for sh, pos in zip(shells, atom_pos):
            cols = layout.ao_loc[sh] + np.arange(nao_l)
            r_col[cols] = radial_pos[sh]
            atom[cols] = shell_atom[sh]
            for k in range(10):
                deg = _degree(k, l)
                if deg < 0:  # vanishes: ones column, factor 0
                    continue
                if deg == 0:  # constant
                    p_scale[k, cols] = coef[k][0]
                elif k == 0 and l == 1:  # Y_m = T_mm d_m
                    p_col[k, cols] = 1 + 3 * shell_atom[sh] + np.arange(3)
                    p_scale[k, cols] = np.diag(T)
                else:
                    p_col[k, cols] = offset[k] + pos * nao_l + np.arange(nao_l)
                    p_scale[k, cols] = 1.0
        if l >= 2:
            for k in range(10):
                if _degree(k, l) >= 1:
                    offset[k] += len(atoms) * nao_l
    return _Plan(tuple(radial), tuple(angular), r_col, atom, p_col, p_scale)


# ------------------------------------------------------------------------- evaluation
def _radial(groups, a_all, c_all, s, deriv: int):
    """R, F1, F2 (see the module docstring) of every shell, stacked: (deriv + 1, npts, nbas),
    shells in the order of the radial groups."""
    outs = []
    for g in groups:
        a, c = a_all[g.prims], c_all[g.prims]  # (nsh, nprim)
        e = jnp.exp(-s[:, g.atoms, None] * a)  # (npts, nsh, nprim)
        terms = [c]
        if deriv >= 1:
            terms.append(-2.0 * a * c)
        if deriv >= 2:
            terms.append(4.0 * a * a * c)
        outs.append(jnp.einsum("psk,tsk->tps", e, jnp.stack(terms)))
    return jnp.concatenate(outs, axis=-1)


def _angular(g: _AngularGroup, cart: bool, d, ncomp: int):
    """Non-constant polynomial factors of group ``g`` on its atoms, per component: a list of
    ``ncomp`` arrays (npts, natm_l * nao_l) (atom-major), None where the factor is constant."""
    l = g.l
    T, D1, D2 = _poly_derivatives(l, cart)
    coef = [T] + [None if D1 is None else D1[q] for q in range(3)]
    coef += [None if D2 is None else D2[k] for k in range(6)]
    x = [d[:, g.atoms, q] for q in range(3)]  # (npts, natm_l)
    pw = [[jnp.ones_like(x[0])] for _ in range(3)]
    for _ in range(l):
        for q in range(3):
            pw[q].append(pw[q][-1] * x[q])
    out = []
    for k in range(ncomp):
        deg = _degree(k, l)
        if deg < 1:
            out.append(None)
            continue
        # sum_c C[c, m] M_c, only the non-zero terms: (npts, natm_l, nao_l)
        C = coef[k]
        cols = []
        for m in range(C.shape[1]):
            terms = [
                float(C[c, m]) * (pw[0][i] * pw[1][j] * pw[2][n])
                for c, (i, j, n) in enumerate(cart_powers(deg))
                if C[c, m] != 0.0
            ]
            cols.append(functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(x[0]))
        out.append(jnp.stack(cols, axis=-1).reshape(x[0].shape[0], -1))
    return out


def _eval_flat(basis: Basis, coords, points, deriv: int):
    """AOs (ncomp, npts, nao) on flat points: radial factors per shell, polynomial factors per
    (atom, l), and one fused gather-and-combine pass that writes the output in PySCF order."""
    layout = basis.layout
    plan = _plan(layout)
    ncomp = NCOMP[deriv]
    npts = points.shape[0]
    d = points[:, None, :] - coords[None, :, :]  # (npts, natm, 3)
    s = jnp.sum(d * d, axis=-1)  # (npts, natm)
    R = _radial(plan.radial, basis.exponents, normalized_coefficients(basis), s, deriv)
    polys = [_angular(g, layout.cart, d, ncomp) for g in plan.angular]
    ones = jnp.ones((npts, 1), d.dtype)
    Q = []
    for k in range(ncomp):
        src = [ones] + ([d.reshape(npts, -1)] if k == 0 else [])
        src += [p[k] for p in polys if p[k] is not None]
        Q.append(jnp.concatenate(src, axis=-1))

    def take(A, idx):  # columns -> (npts, nao)
        return jnp.take(A, jnp.asarray(idx), axis=-1)

    def poly(k):
        return take(Q[k], plan.p_col[k]) * jnp.asarray(plan.p_scale[k])

    R0 = take(R[0], plan.r_col)
    Y = poly(0)
    out = [R0 * Y]
    if deriv >= 1:
        F1 = take(R[1], plan.r_col)
        x = [take(d[..., q], plan.atom) for q in range(3)]
        dY = [poly(1 + q) for q in range(3)]
        out += [R0 * dY[q] + F1 * x[q] * Y for q in range(3)]
    if deriv >= 2:
        F2 = take(R[2], plan.r_col)
        for k, (a, b) in enumerate(_PAIRS):
            v = R0 * poly(4 + k) + F1 * (x[b] * dY[a] + x[a] * dY[b])
            w = F2 * x[a] * x[b] + (F1 if a == b else 0.0)
            out.append(v + w * Y)
    return jnp.stack(out)


@functools.partial(jax.jit, static_argnames=("deriv",))
def eval_ao(basis: Basis, coords, points, deriv: int = 0):
    """AO values and derivatives on points, in PySCF's ``eval_gto`` layout.

    Args:
        basis: a :class:`dftad.Basis` (static layout; exponents and coefficients may be traced).
        coords: nuclear coordinates, (natm, 3), Bohr.
        points: (npts, 3) Bohr, or blocks (nblock, blocksize, 3) (e.g. from
            :func:`dftad.grid.block_grid`) evaluated one block at a time with ``lax.map`` so
            that intermediates stay bounded by one block (and, under reverse-mode AD,
            re-evaluated per block rather than stored).
        deriv: 0, 1 or 2, the highest derivative order with respect to the point.

    Returns:
        (ncomp, npts, nao) for flat points, or (nblock, ncomp, blocksize, nao) for blocks (block
        ``b`` equals ``eval_ao(basis, coords, points[b], deriv)``); ``ncomp`` = 1, 4, 10 for
        deriv 0, 1, 2 with components value, x, y, z, xx, xy, xz, yy, yz, zz (PySCF's order). AO
        order and normalisation are PySCF's (``mol.ao_labels()``), spherical or cartesian as the
        basis layout says. Values in Bohr^-3/2, first derivatives Bohr^-5/2, second Bohr^-7/2.

    Compiled once per (basis layout, deriv, point shape); re-used for any coordinates, points,
    exponents or coefficients.
    """
    if deriv not in NCOMP:
        raise ValueError(f"deriv must be 0, 1 or 2, got {deriv}")
    coords = jnp.asarray(coords)
    points = jnp.asarray(points, dtype=coords.dtype)
    if points.ndim == 2:
        return _eval_flat(basis, coords, points, deriv)
    if points.ndim == 3:
        return jax.lax.map(jax.checkpoint(lambda p: _eval_flat(basis, coords, p, deriv)), points)
    raise ValueError(
        f"points must have shape (npts, 3) or (nblock, blocksize, 3), got {points.shape}"
    )


__all__ = ["NCOMP", "eval_ao"]
