"""The molecular grid, its AO values and E_xc's nuclear gradient as pieces shared by molecules.

What :func:`dftad.hamiltonian.grid_ao` and the gradient of :func:`dftad.hamiltonian.exc_direct`
compute as one program per molecule, here driven from Python one grid block at a time through
pieces (:mod:`dftad.pieces`) keyed by the block size, an atom-count bucket, the nao bucket of
:mod:`dftad.scf_pieces`, and per shell class (l, number of primitives):

* :func:`_points` (forward) and :func:`_points_vjp`: a block's points R[owner] + offset and
  weights q * Becke(R) (:func:`dftad.grid.becke_block`); the atoms padded to the bucket with
  nuclei 1e6 Bohr away, which change no weight (see there);
* :func:`_ao_class` and :func:`_ao_class_vjp`: the AO values (and first derivatives) of a chunk
  of :data:`SHELL_CHUNK` shells of one class at the block's points, phi = R(|d|^2) Y(d),
  d = r - A, with Y's monomials and transform as :mod:`dftad.integrals.ao` (their derivatives
  by forward-mode AD), scattered into the block's (ncomp, block, nao_b) array; the reverse pass
  takes that array's cotangent;
* :func:`_xc_grad`: a block's E_xc and its cotangents with respect to the AO values and weights.

:func:`ao_blocks` gives the SCF's blocks, :func:`exc_gradient` dE_xc/dR (Hartree/Bohr, grid
response included) = sum over blocks of the reverse pass through the three. Same numbers as the
whole programs; not differentiable (they are the differentiable path).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .basis import Basis, ao_transform, cart_powers, normalized_coefficients
from .grid import Grid, becke_block, inverse_distances, split_blocks
from .integrals.ao import NCOMP
from .integrals.eri_pieces import bucket
from .numint import DERIV, _block_energy
from .pieces import piece, zeros

FAR = 1.0e6
"""Distance (Bohr) of the padding nuclei from the origin and from each other."""

ATOM_BUCKET = 8
"""The smallest atom-count bucket of the grid pieces (then 16, 32, ...): the Becke partition
costs (bucket)^2 per point, so water pads to 8 atoms, not 16 (its weights' reverse pass 6x
faster), and molecules up to 8 atoms still share the pieces."""

SHELL_CHUNK = 4
"""Shells of one class per AO piece call (the last chunk padded): a fixed shape, so molecules
with more or fewer shells of a class share the piece. Small molecules have few shells per
(l, nprim) class, so padding is most of the work at larger sizes: 4 instead of 8 made water's
(def2-SVP) AO values and their reverse pass 1.9x faster and ethanol's 1.3x (2 gave no more)."""


# ---------------------------------------------------------------------- the pieces
def _points_fn(R, a, own, off, q):
    return R[own] + off, q * becke_block(R, inverse_distances(R), a, own, off)


@piece()
def _points(R, a, own, off, q):
    """A block's points (B, 3) and weights (B,) at padded nuclei ``R`` (natm_b, 3)."""
    return _points_fn(R, a, own, off, q)


@piece(donate_argnums=(7,))
def _points_vjp(R, a, own, off, q, g_pts, g_w, g_R):
    """``g_R`` + the pull-back of the cotangents of :func:`_points`' outputs to ``R``."""
    _, vjp = jax.vjp(lambda r: _points_fn(r, a, own, off, q), R)
    return g_R + vjp((g_pts, g_w))[0]


def _values_at(l, cart, deriv, d, exps, coefs):
    """(ncomp, B, nsh, nao_l): phi and (deriv 1) its gradient at the displacements ``d``
    (B, nsh, 3) = point - centre of each shell."""
    T = jnp.asarray(ao_transform(l, cart))
    powers = cart_powers(l)

    def phi(d):  # (B, nsh, 3) -> (B, nsh, nao_l)
        s = jnp.sum(d * d, axis=-1)
        radial = jnp.einsum("bsk,sk->bs", jnp.exp(-s[..., None] * exps), coefs)
        mono = [functools.reduce(jnp.multiply, [d[..., k] ** int(p) for k, p in enumerate(pw)
                                                if p > 0], jnp.ones_like(s)) for pw in powers]
        return radial[..., None] * (jnp.stack(mono, axis=-1) @ T)

    if deriv == 0:
        return phi(d)[None]
    val, grads = _along_axes(phi, d)
    return jnp.concatenate([val[None], grads])


def _along_axes(f, d):
    """(f(d), the derivatives of f along x, y and z at every displacement, stacked first):
    forward mode, one tangent per axis (each row of ``d`` is its own point)."""
    eye = jnp.eye(3, dtype=d.dtype)
    return jax.vmap(lambda t: jax.jvp(f, (d,), (jnp.broadcast_to(t, d.shape),)),
                    out_axes=(None, 0))(eye)


def _class_values(l, cart, deriv, pts, R, atom, exps, coefs):
    """(ncomp, B, nsh, nao_l): phi and (deriv 1) its gradient with respect to the point."""
    return _values_at(l, cart, deriv, pts[:, None, :] - R[atom][None, :, :], exps, coefs)


@piece(static_argnums=(0, 1, 2), donate_argnums=(9,))
def _ao_class(l, cart, deriv, pts, R, atom, exps, coefs, cols, ao):
    """``ao`` (ncomp, B, nao_b) + one shell class's values in its columns ``cols`` (padding
    shells: column nao_b, dropped)."""
    v = _class_values(l, cart, deriv, pts, R, atom, exps, coefs)
    return ao.at[:, :, cols].add(v.reshape(v.shape[0], v.shape[1], -1), mode="drop")


@piece(static_argnums=(0, 1, 2), donate_argnums=(10, 11))
def _ao_class_vjp(l, cart, deriv, pts, R, atom, exps, coefs, cols, g_ao, g_pts, g_R):
    """(``g_pts``, ``g_R``) + the pull-back of the cotangent ``g_ao`` of :func:`_ao_class`."""
    d = pts[:, None, :] - R[atom][None, :, :]
    # d(values)/d(d) along each axis by forward mode (the next derivative order), contracted
    # with the cotangent: cheaper than reverse mode through the forward-mode AO gradients
    _, jac = _along_axes(lambda x: _values_at(l, cart, deriv, x, exps, coefs), d)
    ct = g_ao.at[:, :, cols].get(mode="fill", fill_value=0.0).reshape(jac.shape[1:])
    g_d = jnp.einsum("kcbsm,cbsm->bsk", jac, ct)  # dL/dd (B, nsh, 3)
    return g_pts + g_d.sum(axis=1), g_R.at[atom].add(-g_d.sum(axis=0))


@piece()
def _xc_grad(f, ao, w, dm):
    """A block's E_xc and its cotangents with respect to ``ao`` and ``w``."""
    return jax.value_and_grad(_block_energy, argnums=(2, 3))(f, f.params, ao, w, dm)


@piece()
def _screened_xc_grad(f, ao, idx, w, dm):
    """:func:`_xc_grad` of a screened block: the energy and products on the AO columns ``idx``
    (:func:`columns_of`) of ``ao`` (ncomp, B, nao_b) and ``dm``, the AO cotangent spread back
    to all nao_b columns (zero elsewhere)."""
    sub = ao.at[:, :, idx].get(mode="fill", fill_value=0.0)
    e, (g_sub, g_w) = jax.value_and_grad(_block_energy, argnums=(2, 3))(
        f, f.params, sub, w, block_dm(dm, idx))
    return e, (jnp.zeros_like(ao).at[:, :, idx].add(g_sub, mode="drop"), g_w)


# ---------------------------------------------------------------------- host-side layout
@dataclasses.dataclass(frozen=True)
class _Class:
    l: int
    atom: np.ndarray  # (nsh_b,) atom of each shell
    exps: np.ndarray  # (nsh_b, nprim)
    coefs: np.ndarray  # (nsh_b, nprim) normalised; zero for padding shells
    cols: np.ndarray  # (nsh_b * nao_l,) AO columns; nao_b for padding shells
    shells: np.ndarray  # (nsh_b,) shell indices; -1 for padding shells


def _classes(basis: Basis, nao_b: int) -> list[_Class]:
    """The shells grouped by (l, nprim) in chunks of :data:`SHELL_CHUNK` (the last padded with
    shells of zero coefficients whose columns, nao_b, are dropped)."""
    lay = basis.layout
    exps = np.asarray(basis.exponents)
    coefs = normalized_coefficients(basis, np)
    out = []
    for l, nprim in sorted(set(zip(lay.shell_l, lay.shell_nprim))):
        group = [i for i in range(lay.nbas) if (lay.shell_l[i], lay.shell_nprim[i]) == (l, nprim)]
        nao_l = lay.nao_shell(l)
        for start in range(0, len(group), SHELL_CHUNK):
            shells = group[start:start + SHELL_CHUNK]
            n = len(shells)
            prims = lay.prim_loc[shells][:, None] + np.arange(nprim)
            cols = np.full((SHELL_CHUNK, nao_l), nao_b)
            cols[:n] = lay.ao_loc[shells][:, None] + np.arange(nao_l)
            pad = [(0, SHELL_CHUNK - n), (0, 0)]
            out.append(_Class(l, np.pad(np.asarray(lay.shell_atom)[shells], (0, SHELL_CHUNK - n)),
                              np.pad(exps[prims], pad, constant_values=1.0),
                              np.pad(coefs[prims], pad), cols.reshape(-1),
                              np.pad(np.asarray(shells), (0, SHELL_CHUNK - n),
                                     constant_values=-1)))
    return out


@dataclasses.dataclass(frozen=True)
class _Blocks:
    own: np.ndarray  # (nblock, B) owner atom of each point
    off: np.ndarray  # (nblock, B, 3) offset from it (Bohr)
    q: np.ndarray  # (nblock, B) quadrature weight before the partition; 0 on padding
    a: np.ndarray  # (natm_b, natm_b) radii adjustments, 0 for padding atoms


def _ordered_blocks(grid: Grid, block_size: int, order=None) -> _Blocks:
    """The grid's points in blocks of ``block_size``, in ``order`` (a permutation; None: the
    grid's own)."""
    sel = slice(None) if order is None else order
    blocks = split_blocks(grid.ngrid, block_size)
    natm_b = bucket(grid.natm, ATOM_BUCKET)
    a = np.zeros((natm_b, natm_b))
    a[: grid.natm, : grid.natm] = grid.radii_adjust
    q = np.where(blocks.mask, blocks.pad(grid.quadrature_weights[sel]), 0.0)
    return _Blocks(blocks.pad(grid.atom_index[sel]).astype(np.int32),
                   blocks.pad(grid.offsets[sel]), q, a)


@functools.lru_cache(maxsize=16)
def _blocks(grid: Grid, block_size: int) -> _Blocks:
    return _ordered_blocks(grid, block_size)


def padded_coords(coords, natm_b: int) -> np.ndarray:
    """``coords`` (natm, 3) and padding nuclei :data:`FAR` away, (natm_b, 3)."""
    coords = np.asarray(coords, dtype=np.float64)
    far = np.zeros((natm_b - len(coords), 3))
    far[:, 0] = FAR * np.arange(1, natm_b - len(coords) + 1)
    return np.concatenate([coords, far])


class _Molecule:
    """What every block shares: padded nuclei, grid layout and shell classes on the device."""

    def __init__(self, setup, coords, nao_b: int, compact: bool = False):
        self.setup, self.nao_b = setup, nao_b
        self.deriv = DERIV[setup.xc.family]
        self.cart = setup.basis.layout.cart
        b = (_compact_blocks(setup.grid, setup.block_size, np.asarray(coords)) if compact
             else _blocks(setup.grid, setup.block_size))
        self.R = jax.device_put(padded_coords(coords, b.a.shape[0]))
        self.a = jax.device_put(b.a)
        # per block on the host: slicing a device array compiles a program per grid shape
        self.own, self.off, self.q = b.own, b.off, b.q
        classes = _classes(setup.basis, nao_b)
        self.classes = [(c.l, *(jax.device_put(x) for x in (c.atom, c.exps, c.coefs, c.cols)))
                        for c in classes]
        self.class_shells = [c.shells for c in classes]

    def block(self, i):
        """(owner, offsets, quadrature weights) of block ``i`` on the device."""
        return tuple(jax.device_put(x[i]) for x in (self.own, self.off, self.q))

    def points(self, i):
        return _points(self.R, self.a, *self.block(i))

    def ao(self, pts, shells=None):
        """(ncomp, B, nao_b) AO values at ``pts``; ``shells`` (nbas,) bool: only the chunks
        of shell classes holding one of these are evaluated (the other columns stay zero)."""
        ncomp = NCOMP[self.deriv]
        ao = zeros((ncomp, pts.shape[0], self.nao_b))
        for l, *arrays in self.chunks(shells):
            ao = _ao_class(l, self.cart, self.deriv, pts, self.R, *arrays, ao)
        return ao

    def chunks(self, shells=None):
        """The shell chunks (l, *device arrays) of :attr:`classes` holding one of ``shells``
        ((nbas,) bool; None: all of them)."""
        return [c for c, members in zip(self.classes, self.class_shells)
                if shells is None or shells[members[members >= 0]].any()]


SCREEN_MIN_NAO = 160
"""The SCF's grid blocks are screened (:func:`ao_blocks`) from this many AOs (the nao bucket):
below it few AOs vanish on a block (benzene/def2-SVP: ~10% of the XC products) and every
block keeps one shape."""

SCREEN_THRESHOLD = 1e-10
"""An AO shell is left out of a block where a bound on its values and first derivatives
(:func:`shell_extents`) is below this at every point of the block: what it would add to V_xc
is below this times the integral of |v_xc phi| over those points (~1e-10 at most; ethanol's
V_xc moved by 3e-10 with a threshold of 1e-3)."""

SCREEN_STEP = 32
"""Screened blocks keep a multiple of this many AO columns (a piece per multiple)."""


GRADIENT_SCREEN_MIN_NAO = 512
"""The XC gradient's blocks are screened (:func:`exc_gradient`) from this many AOs (the nao
bucket): at 224 and 256 (benzene/def2-TZVP, caffeine/def2-SVP) screening made it 3-7% slower
(few shells vanish on a block, and the cotangent is spread back to all columns), at 1056
(erythromycin/def2-SVP) 2.5x faster (``benchmarks/RESULTS.md``)."""

STORED_AO_BYTES = 4 * 2**30
"""Most bytes of AO values :func:`ao_blocks` keeps for the SCF; past it each block's values
are made again whenever they are read (:class:`Recomputed`)."""


def ao_blocks(setup, coords, nao_b: int):
    """((ao, w, idx) per grid block): AO values (ncomp, block, nao_b) (zero past the basis' nao)
    and weights (block,), as :func:`dftad.numint.ao_blocks`; ``idx`` None.

    From :data:`SCREEN_MIN_NAO` AOs the blocks are screened: the points grouped into compact
    blocks from the geometry (:func:`compact_order`), and each block keeps only the columns
    ``idx`` (nsig,) of the AO shells that do not vanish on it (:func:`block_shells`,
    :func:`columns_of`; padding
    columns nao_b), ``ao`` (ncomp, block, nsig): the XC products over the block cost nsig^2,
    not nao_b^2, and the stored values shrink alike. Where they would still take more than
    :data:`STORED_AO_BYTES` (a molecule of ~1000 AOs: ~15 GB), a :class:`Recomputed` sequence
    of the blocks, which makes each block's values as it is read."""
    screen = nao_b >= SCREEN_MIN_NAO
    m = _Molecule(setup, coords, nao_b, compact=screen)
    if not screen:
        return tuple((m.ao(pts), w, None) for pts, w in map(m.points, range(len(m.own))))
    extents = shell_extents(setup.basis, SCREEN_THRESHOLD)
    R = np.asarray(coords)
    layout = []
    for i in range(len(m.own)):
        pts, w = m.points(i)
        shells = block_shells(setup.basis, R, extents, np.asarray(pts))
        layout.append((pts, w, jax.device_put(columns_of(setup.basis, shells, nao_b)), shells))
    blocks = Recomputed(m, tuple(layout))
    size = sum(8 * NCOMP[m.deriv] * pts.shape[0] * idx.shape[0] for pts, _, idx, _ in layout)
    return blocks if size > STORED_AO_BYTES else tuple(blocks)


class Recomputed:
    """The SCF's screened grid blocks (:func:`ao_blocks`) as a sequence that evaluates each
    block's AO values on its columns when it is read (the points, weights and columns kept):
    memory of one block, for one evaluation of the AO values per pass over the grid."""

    def __init__(self, molecule: _Molecule, layout: tuple):
        self._m, self._layout = molecule, layout

    def __len__(self):
        return len(self._layout)

    def __getitem__(self, i):
        pts, w, idx, shells = self._layout[i]
        return _columns(self._m.ao(pts, shells), idx), w, idx


def block_dm(dm, idx):
    """The part of a (padded) density matrix (..., nao_b, nao_b) on a screened block's AO
    columns ``idx`` (None: all of it)."""
    if idx is None:
        return dm
    return dm.at[..., idx[:, None], idx[None, :]].get(mode="fill", fill_value=0.0)


def add_block_matrix(out, v, idx):
    """``out`` (..., nao_b, nao_b) + a screened block's matrix ``v`` on its columns ``idx``."""
    if idx is None:
        return out + v
    return out.at[..., idx[:, None], idx[None, :]].add(v, mode="drop")


@piece()
def _columns(ao, idx):
    """The AO columns ``idx`` of a block (padding index nao_b: zero)."""
    return ao.at[:, :, idx].get(mode="fill", fill_value=0.0)


def shell_extents(basis: Basis, threshold: float) -> np.ndarray:
    """(nbas,) radius (Bohr) beyond which a bound on each shell's values and gradients,
    sum_k |c_k| exp(-a_k r^2) (r^l (1 + 2 a_k r) + l r^(l-1)), stays below ``threshold``
    (normalised contraction coefficients; the angular part is at most r^l for the unit
    spherical and cartesian functions used here, times their normalisation, at most 1)."""
    lay = basis.layout
    exps = np.asarray(basis.exponents)
    coefs = np.abs(normalized_coefficients(basis, np))
    r = np.linspace(0.0, 60.0, 6001)[:, None]
    out = np.zeros(lay.nbas)
    for s in range(lay.nbas):
        l, n0, n = lay.shell_l[s], lay.prim_loc[s], lay.shell_nprim[s]
        a, c = exps[n0:n0 + n][None, :], coefs[n0:n0 + n][None, :]
        poly = r**l * (1 + 2 * a * r) + l * r ** max(l - 1, 0)
        bound = np.sum(c * np.exp(-a * r * r) * poly, axis=1)
        above = np.nonzero(bound > threshold)[0]
        out[s] = r[above[-1] + 1, 0] if len(above) else 0.0
    return out


def block_shells(basis: Basis, coords, extents, pts) -> np.ndarray:
    """(nbas,) bool: the shells whose :func:`shell_extents` reach one of the points ``pts``
    (B, 3) from their atom (``coords``)."""
    d2 = np.min(np.sum((pts[:, None, :] - np.asarray(coords)[None]) ** 2, axis=2), axis=0)
    return np.sqrt(d2)[np.asarray(basis.layout.shell_atom)] < extents


def columns_of(basis: Basis, shells, nao_b: int) -> np.ndarray:
    """The AO columns of the ``shells`` (bool, :func:`block_shells`), padded with nao_b to a
    multiple of :data:`SCREEN_STEP` (at most nao_b)."""
    lay = basis.layout
    cols = np.concatenate([np.arange(lay.ao_loc[s], lay.ao_loc[s + 1])
                           for s in np.nonzero(shells)[0]] or [np.zeros(0, int)])
    size = min(nao_b, max(SCREEN_STEP, -(-len(cols) // SCREEN_STEP) * SCREEN_STEP))
    return np.concatenate([cols, np.full(size - len(cols), nao_b)]).astype(np.int32)


def compact_order(points, block_size: int) -> np.ndarray:
    """A permutation of ``points`` (n, 3) whose consecutive runs of ``block_size`` are compact:
    halved recursively along the longest side of their bounding box, each half a whole number
    of blocks (a k-d partition whose leaves are the blocks)."""
    def split(idx):
        nblock = -(-len(idx) // block_size)
        if nblock <= 1:
            return [idx]
        p = points[idx]
        axis = int(np.argmax(p.max(axis=0) - p.min(axis=0)))
        left = block_size * (nblock // 2)
        order = idx[np.argsort(p[:, axis], kind="stable")]
        return split(order[:left]) + split(order[left:])

    return np.concatenate(split(np.arange(len(points))))


def _compact_blocks(grid: Grid, block_size: int, coords) -> _Blocks:
    """:func:`_blocks` with the points in :func:`compact_order` at ``coords`` (Bohr)."""
    order = compact_order(coords[grid.atom_index] + grid.offsets, block_size)
    return _ordered_blocks(grid, block_size, order)


def exc_gradient(setup, coords, dm, nao_b: int, sample: bool = False) -> np.ndarray:
    """dE_xc/dR (natm, 3) (Hartree/Bohr) of the density ``dm`` padded to ``nao_b`` (grid
    response included): each block's reverse pass through :func:`_xc_grad`,
    :func:`_ao_class_vjp` and :func:`_points_vjp`. ``sample``: the first block only (as
    :func:`dftad.integrals.eri_pieces.gradient`).

    From :data:`GRADIENT_SCREEN_MIN_NAO` AOs the blocks are screened as the SCF's
    (:func:`ao_blocks`): compact blocks, the XC products on the columns of the shells reaching
    each block (:func:`_screened_xc_grad`), the AO values and their reverse pass only for the
    shell chunks holding one of them."""
    screen = nao_b >= GRADIENT_SCREEN_MIN_NAO
    m = _Molecule(setup, coords, nao_b, compact=screen)
    extents = shell_extents(setup.basis, SCREEN_THRESHOLD) if screen else None
    R = np.asarray(coords)
    g_R = zeros(m.R.shape)
    for i in range(1 if sample else len(m.own)):
        pts, w = m.points(i)
        shells = None
        if screen:
            shells = block_shells(setup.basis, R, extents, np.asarray(pts))
            idx = jax.device_put(columns_of(setup.basis, shells, nao_b))
            _, (g_ao, g_w) = _screened_xc_grad(setup.xc, m.ao(pts, shells), idx, w, dm)
        else:
            _, (g_ao, g_w) = _xc_grad(setup.xc, m.ao(pts), w, dm)
        g_pts = zeros(pts.shape)
        for l, *arrays in m.chunks(shells):
            g_pts, g_R = _ao_class_vjp(l, m.cart, m.deriv, pts, m.R, *arrays, g_ao, g_pts, g_R)
        g_R = _points_vjp(m.R, m.a, *m.block(i), g_pts, g_w, g_R)
    return np.asarray(g_R)[: len(np.asarray(coords))]
