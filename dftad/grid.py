"""Molecular integration grids, differentiable in the nuclear coordinates (Bohr).

The scheme is PySCF's default ``dft.Grids`` (levels 0-9), written from the maths:

* **Radial**: Treutler-Ahlrichs M4 [JCP 102, 346 (1995)] with the element-specific scale xi.
  With ``x_i = cos(i pi / (n+1))``, ``i = 1..n``,

      r_i  = (xi / ln 2) (1 + x_i)^0.6 ln(2 / (1 - x_i))
      dr_i = (pi / (n+1)) sin(i pi / (n+1)) dr/dx(x_i)        (Gauss-Chebyshev, 2nd kind)

  so that ``int_0^inf f(r) r^2 dr ~= sum_i r_i^2 dr_i f(r_i)``; shells are ordered by increasing r.
* **Angular**: Lebedev-Laikov rules (``scipy.integrate.lebedev_rule``), weights summing to 4 pi.
* **Pruning** (NWChem scheme): shell i gets an angular rule chosen by which of four fractions
  ``alpha`` of the Bragg radius R_Z it lies beyond; the alphas depend on the period (H/He, Li-Ne,
  rest). Point counts per level: PySCF's ``RAD_GRIDS`` / ``ANG_ORDER`` tables (by period).
* **Becke partition** [JCP 88, 2547 (1988)] with Treutler's size adjustment. For a point r with
  distances d_i = |r - R_i|,

      mu_ij = (d_i - d_j) / |R_i - R_j|,    nu_ij = mu_ij + a_ij (1 - mu_ij^2),
      s(nu) = (1 - f(f(f(nu)))) / 2,        f(x) = (3 x - x^3) / 2,
      P_i(r) = prod_{j != i} s(nu_ij),      w_point = w_quadrature * P_A(r) / sum_k P_k(r),

  where A owns the point, ``a_ij = (chi_j/chi_i - chi_i/chi_j) / 4`` clipped to [-1/2, 1/2] and
  ``chi = sqrt(R_Bragg)`` (PySCF's ``treutler_atomic_radii_adjust``; note a_ji = -a_ij).

Static/traced split (DESIGN.md): :meth:`Grid.build` runs once per set of elements and level and
stores the atom-centred offsets and quadrature weights as NumPy constants; :meth:`Grid.points`
is a pure JAX function of the nuclear coordinates (natm, 3) Bohr. A point of atom A sits at
``R_A + offset`` and its weight depends on all R through the Becke partition, so ``jax.grad``
through a grid integral contains the grid response. ``Grid`` is hashable and registered as a
static pytree, so ``jax.jit`` compiles once per molecule and re-runs for every geometry.

Unlike PySCF, no point is ever dropped (shapes stay static) and the points are not sorted into
boxes: atom by atom, shell by shell (increasing r), Lebedev points in SciPy's order. For
evaluation in bounded memory, :func:`block_grid` splits points and weights into fixed-size
blocks, the last one padded with copies of the last point of weight 0.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import pieces
from .constants import ANGSTROM_BOHR

# fmt: off
_BRAGG_ANGSTROM = (
    1.999999,                                              # dummy (Z = 0)
    0.35,                                     1.40,        # H He
    1.45, 1.05, 0.85, 0.70, 0.65, 0.60, 0.50, 1.50,        # Li-Ne
    1.80, 1.50, 1.25, 1.10, 1.00, 1.00, 1.00, 1.80,        # Na-Ar
    2.20, 1.80,                                            # K Ca
    1.60, 1.40, 1.35, 1.40, 1.40, 1.40, 1.35, 1.35, 1.35, 1.35,  # Sc-Zn
                1.30, 1.25, 1.15, 1.15, 1.15, 1.90,        # Ga-Kr
    2.35, 2.00,                                            # Rb Sr
    1.80, 1.55, 1.45, 1.45, 1.35, 1.30, 1.35, 1.40, 1.60, 1.55,  # Y-Cd
                1.55, 1.45, 1.45, 1.40, 1.40, 2.10,        # In-Xe
    2.60, 2.15,                                            # Cs Ba
    1.95, 1.85, 1.85, 1.85, 1.85, 1.85, 1.85,              # La-Eu
    1.80, 1.75, 1.75, 1.75, 1.75, 1.75, 1.75, 1.75,        # Gd-Lu
          1.55, 1.45, 1.35, 1.35, 1.30, 1.35, 1.35, 1.35, 1.50,  # Hf-Hg
                1.90, 1.80, 1.60, 1.90, 1.45, 2.10,        # Tl-Rn
)
"""Bragg-Slater radii (Angstrom) as tabulated by PySCF (``pyscf.data.radii.BRAGG``)."""

_TREUTLER_XI = (
    1.0,
    0.8,                               0.9,
    1.8, 1.4, 1.3, 1.1, 0.9, 0.9, 0.9, 0.9,
    1.4, 1.3, 1.3, 1.2, 1.1, 1.0, 1.0, 1.0,
    1.5, 1.4,
    1.3, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.1, 1.1, 1.1,
              1.1, 1.0, 0.9, 0.9, 0.9, 0.9,
    2.0, 1.7,
    1.5, 1.5, 1.35, 1.35, 1.25, 1.2, 1.25, 1.3, 1.5, 1.5,
              1.3, 1.2, 1.2, 1.15, 1.15, 1.15,
    2.5, 2.2,
    2.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5,
    1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5,
    1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5,
              1.5, 1.5, 1.5, 1.5, 1.5, 1.5,
)
"""Treutler-Ahlrichs radial scale xi: H-Kr from the paper (Table 1), heavier as in Psi4/PySCF."""

# Rows: level 0..9; columns: period 1..7 (PySCF's RAD_GRIDS and ANG_ORDER).
_RAD_GRIDS = (
    ( 10,  15,  20,  30,  35,  40,  50),
    ( 30,  40,  50,  60,  65,  70,  75),
    ( 40,  60,  65,  75,  80,  85,  90),
    ( 50,  75,  80,  90,  95, 100, 105),
    ( 60,  90,  95, 105, 110, 115, 120),
    ( 70, 105, 110, 120, 125, 130, 135),
    ( 80, 120, 125, 135, 140, 145, 150),
    ( 90, 135, 140, 150, 155, 160, 165),
    (100, 150, 155, 165, 170, 175, 180),
    (200, 200, 200, 200, 200, 200, 200),
)
_ANG_ORDER = (
    (11, 15, 17, 17, 17, 17, 17),
    (17, 23, 23, 23, 23, 23, 23),
    (23, 29, 29, 29, 29, 29, 29),
    (29, 29, 35, 35, 35, 35, 35),
    (35, 41, 41, 41, 41, 41, 41),
    (41, 47, 47, 47, 47, 47, 47),
    (47, 53, 53, 53, 53, 53, 53),
    (53, 59, 59, 59, 59, 59, 59),
    (59, 59, 59, 59, 59, 59, 59),
    (65, 65, 65, 65, 65, 65, 65),
)
LEBEDEV_ORDERS = (3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 35, 41, 47, 53, 59,
                  65, 71, 77, 83, 89, 95, 101, 107, 113, 119, 125, 131)
LEBEDEV_NPOINTS = (6, 14, 26, 38, 50, 74, 86, 110, 146, 170, 194, 230, 266, 302, 350, 434, 590,
                   770, 974, 1202, 1454, 1730, 2030, 2354, 2702, 3074, 3470, 3890, 4334, 4802,
                   5294, 5810)
# fmt: on

_PERIOD_ENDS = (2, 10, 18, 36, 54, 86, 118)
_NWCHEM_ALPHAS = (
    (0.25, 0.5, 1.0, 4.5),  # H, He
    (0.1667, 0.5, 0.9, 3.5),  # Li-Ne
    (0.1, 0.4, 0.8, 2.5),  # Na and heavier
)
Z_MAX = len(_BRAGG_ANGSTROM) - 1


def _check_z(z: int) -> int:
    z = int(z)
    if not 1 <= z <= Z_MAX:
        raise ValueError(f"grids are defined for atomic numbers 1..{Z_MAX}, got {z}")
    return z


def bragg_radius(z: int) -> float:
    """Bragg-Slater radius of element z in Bohr (PySCF's table)."""
    return ANGSTROM_BOHR * _BRAGG_ANGSTROM[_check_z(z)]


def period(z: int) -> int:
    """Row of the periodic table, 0-based (0 for H/He), as PySCF counts it."""
    return sum(_check_z(z) > e for e in _PERIOD_ENDS)


def default_counts(z: int, level: int = 3) -> tuple[int, int]:
    """(number of radial shells, largest Lebedev rule's point count) of element z at a level."""
    if not 0 <= level <= 9:
        raise ValueError(f"grid level must be 0..9, got {level}")
    p = period(z)
    order = _ANG_ORDER[level][p]
    return _RAD_GRIDS[level][p], LEBEDEV_NPOINTS[LEBEDEV_ORDERS.index(order)]


def treutler_ahlrichs(n: int, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Treutler-Ahlrichs M4 radial grid: radii r (Bohr, increasing) and weights dr (Bohr).

    ``int_0^inf g(r) dr ~= sum_i dr_i g(r_i)``; see the module docstring for the mapping.
    """
    xi = _TREUTLER_XI[_check_z(z)]
    step = np.pi / (n + 1)
    theta = step * np.arange(1, n + 1)
    x = np.cos(theta)
    scale = xi / np.log(2)
    r = -scale * (1 + x) ** 0.6 * np.log((1 - x) / 2)
    drdx = scale * (1 + x) ** 0.6 * (-0.6 / (1 + x) * np.log((1 - x) / 2) + 1 / (1 - x))
    dr = step * np.sin(theta) * drdx
    return r[::-1].copy(), dr[::-1].copy()


@functools.cache
def lebedev(npoint: int) -> tuple[np.ndarray, np.ndarray]:
    """Lebedev-Laikov rule with ``npoint`` points: unit vectors (npoint, 3), weights summing to
    4 pi (from ``scipy.integrate.lebedev_rule``; kept beside the compiled pieces when the
    on-disk cache is on, as importing ``scipy.integrate`` costs ~0.4 s of a cached run)."""
    if npoint not in LEBEDEV_NPOINTS:
        raise ValueError(f"no Lebedev rule with {npoint} points; available: {LEBEDEV_NPOINTS}")
    path = pieces.data_path("lebedev", str(npoint))
    xw = pieces.load_array(path)
    if xw is None or xw.shape != (npoint, 4):
        from scipy.integrate import lebedev_rule

        x, w = lebedev_rule(LEBEDEV_ORDERS[LEBEDEV_NPOINTS.index(npoint)])
        xw = np.concatenate([np.asarray(x, dtype=np.float64).T,
                             np.asarray(w, dtype=np.float64)[:, None]], axis=1)
        pieces.save_array(path, xw)
    x, w = np.ascontiguousarray(xw[:, :3]), np.ascontiguousarray(xw[:, 3])
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def nwchem_prune(z: int, r: np.ndarray, n_ang: int) -> np.ndarray:
    """Angular point count for every radial shell (NWChem pruning, as PySCF's default).

    With the rules ``L = (38, 50, 74, 86, ...)`` and the largest rule at index k of L, the five
    regions split by ``r / R_Bragg > alpha`` get rules ``L[1], L[3], L[k-1], L[k], L[k-1]``
    (``L[1], L[2], L[2], L[2], L[1]`` when the largest rule is 50 points); rules below 50 points
    are not pruned.
    """
    rules = LEBEDEV_NPOINTS[3:]
    if n_ang < 50:
        return np.full(len(r), n_ang, dtype=np.int64)
    if n_ang == 50:
        region_rule = (1, 2, 2, 2, 1)
    else:
        k = rules.index(n_ang)
        region_rule = (1, 3, k - 1, k, k - 1)
    alphas = np.asarray(_NWCHEM_ALPHAS[min(period(z), 2)])
    region = np.sum((r / bragg_radius(z))[:, None] > alphas, axis=1)
    return np.asarray([rules[region_rule[i]] for i in region], dtype=np.int64)


@functools.cache
def atomic_grid(z: int, level: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Atom-centred grid of element z: offsets (n, 3) Bohr and quadrature weights (n,) Bohr^3.

    Weight of shell i, direction k: ``r_i^2 dr_i w_k`` (``w`` the 4 pi-normalised Lebedev
    weights). Ordered shell by shell, increasing r. Arrays are read-only and cached.
    """
    n_rad, n_ang = default_counts(z, level)
    r, dr = treutler_ahlrichs(n_rad, z)
    angs = nwchem_prune(z, r, n_ang)
    offsets, vol = [], []
    for ri, dri, na in zip(r, dr, angs):
        u, w = lebedev(int(na))
        offsets.append(ri * u)
        vol.append((ri * ri * dri) * w)
    offsets, vol = np.concatenate(offsets), np.concatenate(vol)
    offsets.setflags(write=False)
    vol.setflags(write=False)
    return offsets, vol


def treutler_radii_adjust(atomic_numbers) -> np.ndarray:
    """Becke size-adjustment table a_ij (natm, natm) with Treutler's radii chi = sqrt(R_Bragg):
    ``a_ij = (chi_j/chi_i - chi_i/chi_j) / 4`` clipped to [-1/2, 1/2]; antisymmetric."""
    chi = np.sqrt([bragg_radius(z) for z in atomic_numbers])
    ratio = chi[:, None] * (1.0 / chi[None, :])  # chi_i / chi_j
    return np.clip(0.25 * (ratio.T - ratio), -0.5, 0.5)


class GridBlocks(NamedTuple):
    """Static split of ``npoints`` grid points into ``nblock`` blocks of ``block_size``, the last
    block padded with ``npad`` copies of the last point.

    A padding point is a real point (finite, moving with its atom), so everything evaluated
    there is finite, and it gets weight exactly 0 (:meth:`pad_weights`), so padding never
    changes an integral or its derivative. ``mask`` (nblock, block_size): True for real points.
    """

    nblock: int
    block_size: int
    npad: int
    mask: np.ndarray

    @property
    def npoints(self) -> int:
        return self.nblock * self.block_size - self.npad

    def pad(self, x):
        """Per-point ``x`` (npoints, ...) as (nblock, block_size, ...), padded with copies of
        its last row (NumPy in, NumPy out; JAX in, JAX out)."""
        xp = np if isinstance(x, np.ndarray) else jnp
        tail = xp.broadcast_to(x[-1:], (self.npad,) + x.shape[1:])
        return xp.concatenate([x, tail]).reshape((self.nblock, self.block_size) + x.shape[1:])

    def pad_weights(self, weights):
        """Weights (npoints,) as (nblock, block_size), exactly 0 on the padding points."""
        weights = jnp.asarray(weights)
        pad = jnp.zeros(self.npad, weights.dtype)
        return jnp.concatenate([weights, pad]).reshape(self.nblock, self.block_size)

    def unblock(self, values):
        """Inverse of :meth:`pad` for per-point results (nblock, block_size, ...): the real
        points' values, (npoints, ...)."""
        return values.reshape((-1,) + values.shape[2:])[: self.npoints]


def split_blocks(npoints: int, block_size: int) -> GridBlocks:
    """How ``npoints`` points split into blocks of ``block_size`` (the last one padded)."""
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    nblock = max(1, -(-npoints // block_size))
    npad = nblock * block_size - npoints
    mask = (np.arange(nblock * block_size) < npoints).reshape(nblock, block_size)
    mask.setflags(write=False)
    return GridBlocks(nblock, block_size, npad, mask)


def block_grid(points, weights, block_size: int) -> tuple[jax.Array, jax.Array]:
    """Grid points (npts, 3) and weights (npts,) as blocks (nblock, block_size, 3) and
    (nblock, block_size): the last block padded with copies of the last point, of weight 0
    (see :class:`GridBlocks`). Blocked AO values (:func:`dftad.integrals.ao.eval_ao`), densities
    (:func:`dftad.density.eval_rho_on_points`) and XC integrals (:mod:`dftad.numint`) take
    these."""
    points = jnp.asarray(points)
    blocks = split_blocks(points.shape[0], block_size)
    return blocks.pad(points), blocks.pad_weights(weights)


BECKE_PAIR_FACTORS = 1 << 21
"""Target size of one Becke block's (points, natm, natm) intermediates: 2^21 float64 (16 MiB)."""

BECKE_BLOCK_MIN, BECKE_BLOCK_MAX = 64, 8192
"""Bounds on the points per Becke block (a multiple of the minimum)."""

_SAFE_R2 = 1e-300
"""Floor on squared point-nucleus distances, so that sqrt stays differentiable on a nucleus."""


def _becke_block_size(natm: int) -> int:
    """Points per Becke block: about :data:`BECKE_PAIR_FACTORS` pair factors per intermediate,
    a multiple of :data:`BECKE_BLOCK_MIN`, at most :data:`BECKE_BLOCK_MAX`."""
    b = BECKE_PAIR_FACTORS // max(1, natm * (natm - 1))
    return int(min(BECKE_BLOCK_MAX, max(BECKE_BLOCK_MIN, b - b % BECKE_BLOCK_MIN)))


class Grid:
    """Static layout of a molecular grid; hashable, and a JAX pytree with no leaves.

    Build with :meth:`build`; evaluate with :meth:`points`. Two grids of the same elements (in
    the same order), level and Becke block size compare equal, so ``jax.jit`` reuses its
    compilation for them.

    Attributes (NumPy, read-only): ``offsets`` (ngrid, 3) Bohr from the owning atom,
    ``quadrature_weights`` (ngrid,) before the Becke partition, ``atom_index`` (ngrid,) owner,
    ``atom_slices`` start/stop of each atom's points, ``radii_adjust`` a_ij (natm, natm).
    """

    def __init__(self, atomic_numbers, level: int = 3, becke_block_size: int | None = None):
        atomic_numbers = tuple(_check_z(z) for z in atomic_numbers)
        if not atomic_numbers:
            raise ValueError("a grid needs at least one atom")
        self.atomic_numbers = atomic_numbers
        self.level = int(level)
        self.natm = len(atomic_numbers)
        self.becke_block_size = int(becke_block_size or _becke_block_size(self.natm))
        parts = [atomic_grid(z, self.level) for z in atomic_numbers]
        counts = np.array([len(v) for _, v in parts])
        self.npoints_per_atom = tuple(int(c) for c in counts)
        self.ngrid = int(counts.sum())
        stops = np.cumsum(counts)
        self.atom_slices = tuple(zip((stops - counts).tolist(), stops.tolist()))
        self.offsets = np.concatenate([o for o, _ in parts])
        self.quadrature_weights = np.concatenate([v for _, v in parts])
        self.atom_index = np.repeat(np.arange(self.natm), counts)
        self.radii_adjust = treutler_radii_adjust(atomic_numbers)
        for a in (self.offsets, self.quadrature_weights, self.atom_index, self.radii_adjust):
            a.setflags(write=False)
        self._key = (self.atomic_numbers, self.level, self.becke_block_size)

    @classmethod
    def build(cls, mol, level: int = 3, becke_block_size: int | None = None) -> Grid:
        """Layout for a :class:`~dftad.molecule.Molecule` (or a sequence of atomic numbers)."""
        from . import check_x64

        check_x64()
        numbers = getattr(mol, "atomic_numbers", mol)
        return cls(numbers, level, becke_block_size)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, Grid) and self._key == other._key

    def __repr__(self):
        return f"Grid(natm={self.natm}, level={self.level}, ngrid={self.ngrid})"

    # ------------------------------------------------------------------ pure functions
    def points(self, nuclear_coords) -> tuple[jax.Array, jax.Array]:
        """Grid coordinates (ngrid, 3) Bohr and weights (ngrid,) at nuclear coordinates
        (natm, 3) Bohr. Pure JAX; differentiable, jit- and vmap-able."""
        R = _as_coords(nuclear_coords, self.natm)
        coords = R[self.atom_index] + self.offsets
        return coords, self.quadrature_weights * self.becke_factors(R)

    def becke_factors(self, nuclear_coords) -> jax.Array:
        """Becke partition P_A(r)/sum_k P_k(r) of every point (ngrid,), computed in blocks of
        ``becke_block_size`` points with ``lax.map`` (memory O(block * natm^2)); each block is
        rematerialised in reverse mode (``jax.checkpoint``), so a gradient stores only the block
        inputs, O(ngrid), never the O(ngrid * natm^2) intermediates."""
        R = _as_coords(nuclear_coords, self.natm)
        if self.natm == 1:
            return jnp.ones(self.ngrid, dtype=R.dtype)
        blocks = split_blocks(self.ngrid, self.becke_block_size)
        owner = blocks.pad(self.atom_index)
        offsets = blocks.pad(self.offsets)
        inv_rij = inverse_distances(R)
        block = jax.checkpoint(lambda args: becke_block(R, inv_rij, self.radii_adjust, *args))
        return blocks.unblock(jax.lax.map(block, (owner, offsets)))


jax.tree_util.register_static(Grid)


def inverse_distances(R) -> jax.Array:
    """1/|R_i - R_j| (natm, natm), 0 on the diagonal. (The safe where() keeps d|R_i - R_i|/dR
    out of the derivative: no NaN.)"""
    eye = np.eye(R.shape[0], dtype=bool)
    dR = R[:, None, :] - R[None, :, :]
    r2 = jnp.where(eye, 1.0, jnp.sum(dR * dR, axis=-1))
    return jnp.where(eye, 0.0, 1.0 / jnp.sqrt(r2))


def becke_block(R, inv_rij, a, own, off) -> jax.Array:
    """Becke partition weights P_own(x)/sum_k P_k(x) of the points x = R[own] + off (B,), with
    nuclei ``R`` (natm, 3), their :func:`inverse_distances` and radii adjustments ``a``.

    On the diagonal inv_rij = 0 and a_ii = 0, so nu_ii = 0 and s(nu_ii) = 1/2 for every atom: a
    common exact factor 1/2 that cancels in the ratio. A nucleus far from every point (farther
    than ~1e5 times the molecule's size, with a = 0) has s = 1 towards every other and
    P = 0 exactly: it changes no weight (how :mod:`dftad.grid_pieces` pads the atoms)."""
    x = R[own] + off  # (B, 3)
    diff = x[:, None, :] - R[None, :, :]
    d = jnp.sqrt(jnp.maximum(jnp.sum(diff * diff, axis=-1), _SAFE_R2))  # (B, natm)
    mu = (d[:, :, None] - d[:, None, :]) * inv_rij
    nu = mu + a * (1.0 - mu * mu)
    f = _becke_step(_becke_step(_becke_step(nu)))
    P = jnp.prod(0.5 - 0.5 * f, axis=-1)  # (B, natm) cell functions (times 1/2)
    p_own = jnp.take_along_axis(P, own[:, None], axis=1)[:, 0]
    return p_own / jnp.sum(P, axis=1)


def _becke_step(x):
    """Becke's polynomial f(x) = x (3 - x^2) / 2."""
    return (3.0 - x * x) * x * 0.5


def _as_coords(nuclear_coords, natm: int) -> jax.Array:
    R = jnp.asarray(nuclear_coords, dtype=jnp.float64)
    if R.shape != (natm, 3):
        raise ValueError(f"nuclear coordinates have shape {R.shape}, expected ({natm}, 3)")
    return R


def build_grid(mol, level: int = 3, becke_block_size: int | None = None) -> Grid:
    """Same as :meth:`Grid.build`."""
    return Grid.build(mol, level, becke_block_size)


__all__ = [
    "Grid",
    "GridBlocks",
    "atomic_grid",
    "block_grid",
    "bragg_radius",
    "build_grid",
    "default_counts",
    "lebedev",
    "nwchem_prune",
    "split_blocks",
    "treutler_ahlrichs",
    "treutler_radii_adjust",
]
