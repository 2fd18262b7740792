"""McMurchie-Davidson machinery shared by all integrals: shell pairs and Hermite expansions.

A product of two cartesian Gaussians (exponents a, b on centres A, B) is expanded in Hermite
Gaussians Lambda_t centred at P = (aA + bB)/p, p = a + b (one dimension shown):

    x_A^i exp(-a x_A^2) x_B^j exp(-b x_B^2) = K_AB sum_t E^{ij}_t Lambda_t(x_P),
    K_AB = exp(-mu X_AB^2),  mu = ab/p,
    E^{i+1,j}_t = E^{ij}_{t-1}/(2p) + X_PA E^{ij}_t + (t+1) E^{ij}_{t+1}   (same in j with X_PB),
    E^{00}_0 = 1.

Coulomb-type integrals reduce to the Hermite integrals R_{tuv}(alpha, X, Y, Z) built from the Boys
function:  R^n_000 = (-2 alpha)^n F_n(alpha |R|^2),
    R^n_{t+1,u,v} = t R^{n+1}_{t-1,u,v} + X R^{n+1}_{t,u,v}   (same for u with Y and v with Z).

All functions here work on a leading batch axis (primitive pairs or quartets) and unroll only the
angular-momentum recursions, which are static, at trace time.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..basis import Basis, BasisLayout, cart_powers, normalized_coefficients
from .boys import boys, boys_rows


# ---------------------------------------------------------------------- Hermite indices
@functools.cache
def hermite_indices(L: int) -> np.ndarray:
    """All (t, u, v) with t + u + v <= L, shape (nherm, 3), in a fixed order."""
    return np.array(
        [
            (t, u, n - t - u)
            for n in range(L + 1)
            for t in range(n, -1, -1)
            for u in range(n - t, -1, -1)
        ],
        dtype=np.int64,
    )


# ---------------------------------------------------------------------- E coefficients
def hermite_e(la: int, lb: int, xpa, xpb, one_over_2p):
    """1D expansion coefficients E^{ij}_t, i <= la, j <= lb, t <= la + lb.

    Inputs have shape (batch,) (or (batch, 3) for all three axes at once); the result has shape
    (batch..., la + 1, lb + 1, la + lb + 1), zero where t > i + j. Each step of the recursion
    acts on the whole t axis at once (shifted copies), so the unrolled code is O(la * lb).
    """
    nt = la + lb + 1
    t = jnp.arange(nt, dtype=jnp.float64)
    xpa, xpb, h = xpa[..., None], xpb[..., None], one_over_2p[..., None]

    def step(e, x):
        # E_t <- h E_{t-1} + x E_t + (t + 1) E_{t+1}
        down = jnp.concatenate([jnp.zeros_like(e[..., :1]), e[..., :-1]], axis=-1)
        up = jnp.concatenate([e[..., 1:], jnp.zeros_like(e[..., :1])], axis=-1)
        return h * down + x * e + (t + 1) * up

    e00 = jnp.broadcast_to(jnp.where(t == 0, 1.0, 0.0), xpa.shape[:-1] + (nt,))
    rows = []
    e_i0 = e00
    for i in range(la + 1):
        if i > 0:
            e_i0 = step(e_i0, xpa)
        row = [e_i0]
        for _ in range(lb):
            row.append(step(row[-1], xpb))
        rows.append(jnp.stack(row, axis=-2))
    return jnp.stack(rows, axis=-3)


# ---------------------------------------------------------------------- Hermite integrals R
def _a(t: int, i: int) -> float:
    return math.factorial(t) / (math.factorial(i) * math.factorial(t - 2 * i))


def _powers(x, n: int):
    """x^0 .. x^n stacked on a new last axis (exact repeated products, any sign of x)."""
    out = [jnp.ones_like(x)]
    for _ in range(n):
        out.append(out[-1] * x)
    return jnp.stack(out, axis=-1)


def _pad_last(x, n: int):
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def hermite_r_cube(L: int, alpha, xyz):
    """R_{tuv}(alpha, X, Y, Z) on the cube t, u, v <= L: shape (batch, L+1, L+1, L+1).

    Entries with t + u + v > L are not meaningful. Derivatives come from the cube of order L + 1
    (custom JVP, :func:`_r_cube_jvp`), never by differentiating the recursion below.

    R_{tuv} = d^t/dX^t d^u/dY^u d^v/dZ^v
    F_0(alpha (X^2 + Y^2 + Z^2)) in closed form, from d^t/dx^t G(x^2) = sum_i a_ti (2x)^(t-2i)
    G^(t-i)(x^2) with a_ti = t! / (i! (t-2i)!) and G^(m) = (-alpha)^m F_m(T), applied one axis at
    a time (only slices and broadcasts, so it vectorises and compiles quickly):

        Gz[v, n]      = sum_k a_vk (2Z)^(v-2k) f[n + v - k],        f[m] = (-alpha)^m F_m(T)
        Gy[u, v, n]   = sum_j a_uj (2Y)^(u-2j) Gz[v, n + u - j]
        R[t, u, v]    = sum_i a_ti (2X)^(t-2i) Gy[u, v, t - i]
    """
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    f = boys(L, alpha * (x * x + y * y + z * z)) * _powers(-alpha, L)  # (batch, L+1)
    px, py, pz = _powers(2 * x, L), _powers(2 * y, L), _powers(2 * z, L)
    n = L + 1

    def gz_row(v):
        terms = (_a(v, k) * pz[:, v - 2 * k, None] * f[:, v - k : n - k] for k in range(v // 2 + 1))
        return _pad_last(sum(terms), n)

    gz = jnp.stack([gz_row(v) for v in range(n)], axis=1)

    def gy_row(u):
        terms = (
            _a(u, j) * py[:, u - 2 * j, None, None] * gz[:, :, u - j : n - j]
            for j in range(u // 2 + 1)
        )
        return _pad_last(sum(terms), n)

    gy = jnp.stack([gy_row(u) for u in range(n)], axis=1)

    def r_row(t):
        return sum(
            _a(t, i) * px[:, t - 2 * i, None, None] * gy[:, :, :, t - i] for i in range(t // 2 + 1)
        )

    return jnp.stack([r_row(t) for t in range(n)], axis=1)


@hermite_r_cube.defjvp
def _r_cube_jvp(L, primals, tangents):
    """dR_{tuv} = R_{t+1,u,v} dX + R_{t,u+1,v} dY + R_{t,u,v+1} dZ
                  + (N R_{tuv} + X R_{t+1,u,v} + Y R_{t,u+1,v} + Z R_{t,u,v+1}) dalpha / (2 alpha),

    N = t + u + v. The first line is the definition of R as derivatives in X, Y, Z; the second
    follows from R_{tuv}(alpha, X) = alpha^(N/2) G_{tuv}(sqrt(alpha) X) with G independent of
    alpha. Exact for every meaningful entry (N <= L needs orders up to L + 1)."""
    alpha, xyz = primals
    dalpha, dxyz = tangents
    n = L + 1
    big = hermite_r_cube(L + 1, alpha, xyz)
    r = big[:, :n, :n, :n]
    # (batch, n, n, n, 3): R one order up along x, y, z
    shifted = jnp.stack([big[:, 1:, :n, :n], big[:, :n, 1:, :n], big[:, :n, :n, 1:]], axis=-1)
    order = np.arange(n)
    N = order[:, None, None] + order[None, :, None] + order[None, None, :]
    s = 0.5 * dalpha / alpha  # dalpha / (2 alpha)
    step = dxyz + xyz * s[:, None]  # (batch, 3): dX + X dalpha / (2 alpha), per axis
    dr = jnp.sum(shifted * step[:, None, None, None, :], axis=-1) + N * r * s[:, None, None, None]
    return r, dr


def cube_index(L: int, tuv) -> np.ndarray:
    """Flat index of (t, u, v) in the (L+1)^3 cube of :func:`hermite_r_cube`."""
    tuv = np.asarray(tuv)
    n = L + 1
    return (tuv[..., 0] * n + tuv[..., 1]) * n + tuv[..., 2]


@functools.cache
def hermite_position(L: int) -> np.ndarray:
    """Position of (t, u, v) in :func:`hermite_indices` order, as an (L+1)^3 cube (-1 where
    t + u + v > L)."""
    out = np.full((L + 1,) * 3, -1, dtype=np.int64)
    idx = hermite_indices(L)
    out[idx[:, 0], idx[:, 1], idx[:, 2]] = np.arange(len(idx))
    return out


def hermite_r_rows(L: int, alpha, x, y, z) -> list:
    """R_{tuv} for t + u + v <= L as a list of (c,) vectors in :func:`hermite_indices` order,
    for quartets on the last axis (``alpha``, ``x``, ``y``, ``z``: (c,)): the recursion of
    :func:`hermite_r_cube` written on vectors, one per (t, u, v) it needs, so that XLA runs it
    as a few fused loops over the quartets (the written-out reverse pass of small ERI classes,
    :func:`.eri_kernel.class_cotangents`). Values only, equal to the cube's to an ulp
    (:func:`.boys.boys_rows`)."""
    n = L + 1
    f = boys_rows(L, alpha * (x * x + y * y + z * z))
    scale, f_m = jnp.ones_like(alpha), []
    for m in range(n):
        f_m.append(f[m] * scale)  # (-alpha)^m F_m(T)
        scale = scale * -alpha

    def powers(v):
        out = [jnp.ones_like(v)]
        for _ in range(L):
            out.append(out[-1] * v)
        return out

    px, py, pz = powers(2 * x), powers(2 * y), powers(2 * z)
    gz = [[sum(_a(v, k) * pz[v - 2 * k] * f_m[m + v - k] for k in range(v // 2 + 1))
           for m in range(n - v)] for v in range(n)]
    gy = [[[sum(_a(u, j) * py[u - 2 * j] * gz[v][m + u - j] for j in range(u // 2 + 1))
            for m in range(n - u - v)] for v in range(n - u)] for u in range(n)]
    return [sum(_a(t, i) * px[t - 2 * i] * gy[u][v][t - i] for i in range(t // 2 + 1))
            for t, u, v in hermite_indices(L).tolist()]


def hermite_r(L: int, alpha, xyz):
    """R_{tuv} for t + u + v <= L in :func:`hermite_indices` order, shape (batch, nherm(L))."""
    cube = hermite_r_cube(L, alpha, xyz).reshape(alpha.shape[0], -1)
    return cube[:, cube_index(L, hermite_indices(L))]


# ---------------------------------------------------------------------- shell pairs
@dataclasses.dataclass(frozen=True)
class PairClass:
    """Static description of all shell pairs (i, j) with angular momenta (la, lb).

    ``shells`` (npair, 2) shell indices; ``prims`` (nprim_pair, 2) flat primitive indices;
    ``pair_of_prim`` (nprim_pair,) which shell pair each primitive pair belongs to.
    """

    la: int
    lb: int
    shells: np.ndarray
    prims: np.ndarray
    pair_of_prim: np.ndarray

    @property
    def npair(self) -> int:
        return len(self.shells)


def make_pair_class(layout: BasisLayout, la: int, lb: int, shells: np.ndarray) -> PairClass:
    shells = np.asarray(shells, dtype=np.int64).reshape(-1, 2)
    loc = layout.prim_loc
    prims, owner = [], []
    for k, (i, j) in enumerate(shells):
        pi = np.arange(loc[i], loc[i + 1])
        pj = np.arange(loc[j], loc[j + 1])
        grid = np.stack(np.meshgrid(pi, pj, indexing="ij"), axis=-1).reshape(-1, 2)
        prims.append(grid)
        owner.append(np.full(len(grid), k))
    prims = np.concatenate(prims) if prims else np.zeros((0, 2), np.int64)
    owner = np.concatenate(owner) if owner else np.zeros((0,), np.int64)
    return PairClass(la, lb, shells, prims, owner)


@functools.cache
def pair_classes(layout: BasisLayout, symmetric: bool = True) -> tuple[PairClass, ...]:
    """Shell pairs of a basis grouped by (la, lb), oriented so that la >= lb.

    ``symmetric``: only i >= j (for symmetric operators); otherwise all ordered pairs.
    """
    ls = np.asarray(layout.shell_l)
    groups: dict[tuple[int, int], list] = {}
    n = layout.nbas
    for i in range(n):
        for j in range(i + 1 if symmetric else n):
            a, b = (i, j) if ls[i] >= ls[j] else (j, i)
            groups.setdefault((int(ls[a]), int(ls[b])), []).append((a, b))
    return tuple(
        make_pair_class(layout, la, lb, np.array(v)) for (la, lb), v in sorted(groups.items())
    )


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass
class PrimPairs:
    """Per primitive pair: exponents, centres, Gaussian product data (JAX arrays)."""

    a: jax.Array
    b: jax.Array
    A: jax.Array  # (n, 3)
    B: jax.Array
    coef: jax.Array  # c'_a c'_b K_AB

    def tree_flatten(self):
        return (self.a, self.b, self.A, self.B, self.coef), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    @property
    def p(self):
        return self.a + self.b

    @property
    def P(self):
        return (self.a[:, None] * self.A + self.b[:, None] * self.B) / self.p[:, None]


def prim_pairs(basis: Basis, coords, pc: PairClass) -> PrimPairs:
    """Gaussian product data for every primitive pair of a pair class."""
    layout = basis.layout
    atom_of_prim = np.repeat(np.asarray(layout.shell_atom), layout.shell_nprim)
    ia, ib = pc.prims[:, 0], pc.prims[:, 1]
    c = normalized_coefficients(basis)
    a, b = basis.exponents[ia], basis.exponents[ib]
    A, B = coords[atom_of_prim[ia]], coords[atom_of_prim[ib]]
    ab = A - B
    kab = jnp.exp(-a * b / (a + b) * jnp.sum(ab * ab, axis=-1))
    return PrimPairs(a, b, A, B, c[ia] * c[ib] * kab)


def cartesian_e(pp: PrimPairs, la: int, lb: int, extra_b: int = 0):
    """E^{ij}_t for x, y, z: shape (npp, 3, la+1, lb+extra_b+1, la+lb+extra_b+1)."""
    p = pp.p[:, None]
    P = pp.P
    return hermite_e(la, lb + extra_b, P - pp.A, P - pp.B, jnp.broadcast_to(0.5 / p, P.shape))


def hermite_3d_of(e1d, pa, pb, order: int):
    """E^{ab}_{tuv} = E^x_{a_x b_x t} E^y_{a_y b_y u} E^z_{a_z b_z v}, (npp, na, nb,
    nherm(order)), from the 1D tables ``e1d`` (npp, 3, i, j, t) for the cartesian powers ``pa``
    (na, 3) and ``pb`` (nb, 3): static (:func:`hermite_3d`) or data (a class padded to a larger
    one's components, :func:`dftad.integrals.eri_pieces.padded_shell`)."""
    herm = hermite_indices(order)
    out = None
    for ax in range(3):
        term = e1d[:, ax][:, pa[:, ax][:, None, None], pb[:, ax][None, :, None],
                          herm[None, None, :, ax]]
        out = term if out is None else out * term
    return out


def hermite_3d(e1d, la: int, lb: int):
    """E^{ab}_{tuv} (npp, ncart_a * ncart_b, nherm(la + lb)) from the 1D tables."""
    e3 = hermite_3d_of(e1d, cart_powers(la), cart_powers(lb), la + lb)
    return e3.reshape(e3.shape[0], -1, e3.shape[-1])
