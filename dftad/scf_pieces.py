"""The SCF driven from Python through compiled pieces that molecules of one size bucket share.

:func:`solve` runs the DIIS SCF of :mod:`dftad.scf` (the same :func:`~dftad.scf.next_density`
and :func:`~dftad.scf.advance`, the same energy expression, :func:`dftad.hamiltonian.assemble`)
cycle by cycle from Python, each cycle a few pieces (:mod:`dftad.pieces`) keyed by shapes that
recur across molecules, never by the molecule:

* **AOs padded** to nao_b = :func:`nao_bucket` (nao) functions. The padding functions are
  orthonormal and decoupled from the real ones: S = 1 and h = :data:`PAD_LEVEL` on their
  diagonal, zero in every off-diagonal block of S and h, in the ERIs (or density-fitting
  factors) and in the AO values on the grid. Every padded matrix is then block diagonal, the real
  block is exactly the unpadded problem, the padding orbitals (energy ``PAD_LEVEL``) stay empty,
  and the results are cut back to nao.
* **The grid as blocks** of fixed size, their points, weights and AO values from the pieces of
  :mod:`dftad.grid_pieces`, integrated one at a time (:func:`_xc_block`): the number of points
  is how often a piece runs, not a shape.
* **Occupations as data** (``mo_occ``, occupied first), not static electron counts.
* **SAD guess from the elements**: each element's atomic density is solved once per process in
  its own basis (:func:`atomic_density`, the same fractional-occupation atom SCF as
  :func:`dftad.guess.sad_guess`, whose molecular blocks are these atomic integrals).

The orbitals of the converged density are found on the host (:func:`dftad.scf.finish` on the
unpadded matrices). Not differentiable: :func:`dftad.energy.kernel` is the differentiable path.
"""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import grid_pieces, guess, packed_df, pieces, scf
from .hamiltonian import Components, Result, assemble, energy_nuc, host_exchange_operators
from .integrals import eri_pieces, one_electron_pieces, two_electron
from .integrals.eri_kernel import as_omega
from .jk import DFJK, FIT_COLUMNS, IncoreJK, coulomb_exchange, fit
from .linalg import eig, make_rdm1, orthogonalizer
from .numint import exc_vxc_block
from .occupation import total_density
from .pieces import piece, zeros
from .setup import Setup

PAD_LEVEL = 1.0e3
"""Diagonal of the core Hamiltonian on the padding AOs (Hartree): far above every real orbital."""


def nao_bucket(nao: int) -> int:
    """The padded nao of the SCF pieces: 64 up to 64 AOs (small molecules share everything),
    then the next multiple of 16 (incore J/K cost nao^4: at most (1 + 16/nao)^4 more)."""
    return 64 if nao <= 64 else -(-nao // 16) * 16


def aux_bucket(naux: int) -> int:
    """The padded number of density-fitting functions (zero factors past the real ones)."""
    return -(-naux // 64) * 64


# ---------------------------------------------------------------------- the pieces
@piece(static_argnums=(2,))
def _core(mats, nao, nao_b):
    """(S, h, X = S^-1/2) at ``nao_b`` from :func:`one_electron_pieces.padded_matrices`'
    stack (S, T, V), the padding AOs past ``nao`` decoupled (module docstring)."""
    pad = (jnp.arange(nao_b) >= nao).astype(mats.dtype)
    mats = mats[:, :nao_b, :nao_b]
    s1e = mats[0] + jnp.diag(pad)
    h1e = mats[1] + mats[2] + PAD_LEVEL * jnp.diag(pad)
    return s1e, h1e, orthogonalizer(s1e)


def _jk_kind(density_fitting: bool):
    return DFJK if density_fitting else IncoreJK


@piece(static_argnums=(0,))
def _jk(density_fitting, tensors, dm, weights, orbs=None):
    """(J[D_tot], K_tot) of ``dm`` (:func:`dftad.jk.coulomb_exchange`; ``orbs``: its orbital
    factor, or None)."""
    return coulomb_exchange(_jk_kind(density_fitting), tensors, dm, total_density(dm), weights,
                            orbs)


@piece(static_argnums=(0, 1, 2))
def _head(options, density_fitting, nocc, s1e, x, mo_occ, tensors, weights, st):
    """A cycle's first half: the next density (:func:`dftad.scf.next_density`), the DIIS
    history, and the density's J and K (density fitting: K through its first ``nocc``
    orbitals, :attr:`Problem.nocc`)."""
    dm, focks, errors, orbs = scf.next_density(s1e, x, mo_occ, options, st, nocc)
    return (dm, focks, errors) + _jk.fun(density_fitting, tensors, dm, weights, orbs)


@piece(donate_argnums=(5, 6))
def _xc_block(f, ao, w, idx, dm, exc, vxc):
    """(E_xc, V_xc) accumulated over one grid block (:func:`dftad.numint.exc_vxc_block`) on its
    AO columns ``idx`` (None: all; :func:`dftad.grid_pieces.ao_blocks`)."""
    e, v = exc_vxc_block(f, f.params, ao, w, grid_pieces.block_dm(dm, idx))
    return exc + e, grid_pieces.add_block_matrix(vxc, v, idx)


def _energy(h1e, e_nuc, e_disp, dm, vj, vk, exc, vxc):
    kf = 0.5 if dm.ndim == 2 else 1.0
    vxc = 0.5 * (vxc + jnp.swapaxes(vxc, -1, -2))
    parts, fock = assemble(h1e, e_nuc, e_disp, dm, vj, vk, exc, vxc, kf)
    return sum(parts), fock, parts


@piece(static_argnums=(0,))
def _first(options, s1e, x, h1e, e_nuc, e_disp, dm, vj, vk, exc, vxc):
    """The state before the first cycle (:func:`dftad.scf.initial_state`) and its components."""
    e_tot, fock, parts = _energy(h1e, e_nuc, e_disp, dm, vj, vk, exc, vxc)
    return scf.initial_state(s1e, x, options, dm, e_tot, fock), parts


@piece(static_argnums=(0,))
def _tail(options, s1e, x, h1e, e_nuc, e_disp, st, dm, focks, errors, vj, vk, exc, vxc):
    """A cycle's second half: the next state (:func:`dftad.scf.advance`) and its components."""
    e_tot, fock, parts = _energy(h1e, e_nuc, e_disp, dm, vj, vk, exc, vxc)
    return scf.advance(s1e, x, options, st, dm, focks, errors, e_tot, fock), parts


@piece()
def _core_guess(h1e, x, mo_occ):
    """:func:`dftad.guess.core_guess` with occupations as data."""
    _, c = eig(h1e, x)
    if mo_occ.ndim == 2:
        c = jnp.stack([c, c])
    return make_rdm1(c, mo_occ)


_atom_scf = piece()(guess._atom_scf)


# ---------------------------------------------------------------------- host side
class Problem:
    """The padded inputs of one SCF (module docstring): ``s1e``, ``h1e``, ``x``, ``mo_occ``,
    the J/K ``tensors`` and exchange ``weights``, the grid ``blocks`` ((ao, w, idx) per block:
    :func:`dftad.grid_pieces.ao_blocks`),
    ``e_nuc`` and ``e_disp``; ``nao`` real of ``nao_b``."""

    def __init__(self, setup: Setup, coords):
        basis = setup.basis
        coords = jax.device_put(coords)
        self.setup, self.nao = setup, basis.nao
        self.nao_b = nao_b = nao_bucket(basis.nao)
        self.coords = coords
        mats = one_electron_pieces.padded_matrices(basis, coords, setup.charges)
        # device_put, not jnp.asarray: no program compiled (or loaded) per conversion
        self.s1e, self.h1e, self.x = _core(mats, jax.device_put(np.int64(basis.nao)), nao_b)
        self.mo_occ = jax.device_put(setup.occupation.occupations(nao_b, np))
        # the orbitals the density-fitted exchange is built from: a bucket of the occupied
        # ones (the rest have zero weight), so molecules of similar size share the piece
        self.nocc = (min(eri_pieces.bucket(max(setup.occupation.counts), 8), nao_b)
                     if setup.density_fitting else None)
        self.omegas, self.weights = _exchange(setup)
        self.tensors = self._tensors(self.omegas)
        self.blocks = grid_pieces.ao_blocks(setup, coords, nao_b) if setup.semilocal else ()
        self.e_nuc = jax.device_put(energy_nuc(np.asarray(coords), np.asarray(setup.charges),
                                               np))
        self.e_disp = (zeros(()) if setup.disp is None
                       else _disp_energy(setup.disp, coords))

    def _tensors(self, omegas, old=None):
        """The J/K tensors of each operator (``old``: a previous problem's, kept where its
        omega is the same)."""
        setup, basis, coords = self.setup, self.setup.basis, self.coords
        if old is not None and [None if w is None else float(w) for w in omegas] == [
                None if w is None else float(w) for w in old[0]]:
            return old[1]
        if isinstance(setup.jk, IncoreJK):
            return tuple(eri_pieces.eri(setup.jk.plan, basis, coords, w, self.nao_b)
                         for w in omegas)
        naux_b = aux_bucket(setup.jk.aux.nao)
        if 8 * naux_b * self.nao_b**2 * len(omegas) <= DENSE_CDERI_BYTES:
            return _df_tensors(setup, coords, omegas, self.nao_b, naux_b)
        return _packed_tensors(setup, coords, omegas, self.nao_b, naux_b)

    def with_functional(self, setup: Setup) -> Problem:
        """This problem for ``setup``: the same molecule, basis and grid with another functional
        of the same kind (other parameter values, e.g. while training). The integrals are kept;
        the exact-exchange weights change, and the erf-attenuated tensors when omega did."""
        new = copy.copy(self)
        new.setup = setup
        new.omegas, new.weights = _exchange(setup)
        new.tensors = new._tensors(new.omegas, (self.omegas, self.tensors))
        return new

    def pad(self, dm) -> jax.Array:
        """A density (nao, nao) or (2, nao, nao) padded with zeros to nao_b."""
        return eri_pieces.pad_ao(dm, self.nao_b)

    def cut(self, a) -> np.ndarray:
        """The real block of a padded (..., nao_b, nao_b) array, on the host."""
        return np.asarray(a)[..., : self.nao, : self.nao]

    def energy_terms(self, dm):
        """(J, K_tot, E_xc, V_xc (unsymmetrised)) of a padded ``dm``."""
        setup = self.setup
        vj, vk = _jk(setup.density_fitting, self.tensors, dm, self.weights)
        return (vj, vk) + self.exc_vxc(dm)

    def exc_vxc(self, dm):
        exc, vxc = zeros(()), zeros(dm.shape)
        for ao, w, idx in self.blocks:
            exc, vxc = _xc_block(self.setup.xc, ao, w, idx, dm, exc, vxc)
        return exc, vxc

    def guess(self) -> jax.Array:
        """The setup's initial guess (``sad`` or ``core``), padded."""
        setup = self.setup
        if setup.init_guess == "core":
            return _core_guess(self.h1e, self.x, self.mo_occ)
        dm = np.zeros((self.nao, self.nao))
        for z, atoms, idx in guess._element_blocks(setup.basis.layout, setup.atomic_numbers):
            d = atomic_density(setup.basis.on_atom(int(atoms[0])), z)
            for i in idx:
                dm[np.ix_(i, i)] = d
        return self.pad(dm if setup.restricted else np.stack([0.5 * dm, 0.5 * dm]))


def _exchange(setup: Setup):
    """(omegas, exact-exchange weights as arrays) of the setup's functional (summed on the host:
    an eager ``alpha + beta`` compiled a program in every process)."""
    omegas, weights = host_exchange_operators(setup)
    return omegas, tuple(jax.device_put(np.float64(w)) for w in weights)


def _df_tensors(setup: Setup, coords, omegas, nao_b, naux_b):
    """The density-fitting tensors B (naux_b, nao_b, nao_b) of each operator, zero past the
    real ones: one program for every operator (omega as data), run one operator at a time so
    that only one operator's integrals are alive beside the factors already made."""
    return tuple(_df_tensor(setup, coords, as_omega(w), nao_b, naux_b) for w in omegas)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _df_tensor(setup: Setup, coords, omega, nao_b, naux_b):
    """:func:`dftad.jk.cderi` of one operator made at the padded shape: the metric padded with
    the identity and (mn|P) with zeros, so the fit writes B straight into its padded array."""
    int3c, int2c = setup.jk.integrals(setup.basis, coords, omega)
    nao, naux = int3c.shape[0], int2c.shape[0]
    metric = jnp.eye(naux_b, dtype=int2c.dtype).at[:naux, :naux].set(int2c)
    rhs = jnp.pad(jnp.moveaxis(int3c, -1, 0),
                  [(0, naux_b - naux), (0, nao_b - nao), (0, nao_b - nao)])
    return fit(metric, rhs.reshape(naux_b, -1)).reshape(naux_b, nao_b, nao_b)


DENSE_CDERI_BYTES = 8 * 2**30
"""Largest size of the dense density-fitting tensors B (all operators) of :class:`Problem`;
past it B is stored over the AO pairs the 3-centre plan keeps (:func:`_packed_tensors`): about
half the memory (less for an extended molecule) for about twice the cost of unpacking each
block of B in K (``benchmarks/RESULTS.md``)."""


def _packed_tensors(setup: Setup, coords, omegas, nao_b, naux_b):
    """:func:`_df_tensors` as :class:`dftad.jk.PackedCderi` (naux_b, ncol_b)
    (:func:`dftad.packed_df.cderi`), the AO-pair columns padded to a multiple of
    :data:`dftad.jk.FIT_COLUMNS` (the last one zero), ``cols`` padded to nao_b (the padding
    AOs' pairs: the zero column)."""
    offsets, cols, ncol = packed_df.columns(setup)
    ncol_b = -(-(ncol + 1) // FIT_COLUMNS) * FIT_COLUMNS
    cols = np.asarray(cols)
    cols = jax.device_put(np.pad(np.where(cols == ncol, ncol_b - 1, cols),
                                 (0, nao_b - setup.basis.nao), constant_values=ncol_b - 1))
    return tuple(packed_df.cderi(setup, coords, as_omega(w), offsets, cols, (naux_b, ncol_b))
                 for w in omegas)


@jax.jit
def _disp_energy(disp, coords):
    return disp.energy(coords)


def _atom_key(basis, z: int):
    return (int(z), basis.layout, np.asarray(basis.exponents).tobytes(),
            np.asarray(basis.coefficients).tobytes())


_ATOMS: dict = {}


def atomic_density(basis, z: int) -> np.ndarray:
    """The SAD density of a neutral atom of nuclear charge ``z`` in its own ``basis`` (a one-atom
    basis, :meth:`~dftad.basis.Basis.on_atom`): the fractional-occupation RHF of
    :func:`dftad.guess.sad_guess` from its S, T + V and ERIs (computed by the shared integral
    pieces), kept for the process and, with the on-disk cache on, in a file beside the pieces
    (:func:`dftad.pieces.data_path`): a later process reads it instead of solving the atom."""
    key = _atom_key(basis, z)
    if key not in _ATOMS:
        path = pieces.data_path("atom", repr(key))
        dm = pieces.load_array(path)
        if dm is None or dm.shape != (basis.nao, basis.nao):
            origin, charge = np.zeros((1, 3)), np.asarray([float(z)])
            s, t, v = (np.asarray(m) for m in
                       one_electron_pieces.matrices(basis, origin, charge))
            eri = eri_pieces.eri(two_electron.build_plan(basis, origin), basis, origin)
            dm = np.asarray(_atom_scf(s, t + v, eri, np.float64(z), quick=True))
            pieces.save_array(path, dm)
        _ATOMS[key] = dm
    return _ATOMS[key]


# ---------------------------------------------------------------------- driver
def solve(setup: Setup, coords, callback=None, dm0=None) -> Result:
    """The SCF of ``setup`` at ``coords`` (Bohr) from ``dm0`` (unpadded; default the setup's
    initial guess), ``callback(state)`` after each cycle (a padded :class:`dftad.scf.State`;
    its cycle, energies and norms are the unpadded ones). Returns the unpadded
    :class:`~dftad.hamiltonian.Result`."""
    return iterate(Problem(setup, coords), callback, dm0)[0]


def iterate(p: Problem, callback=None, dm0=None) -> tuple[Result, scf.State]:
    """:func:`solve` of a prepared :class:`Problem`: the unpadded result and the last (padded)
    SCF state."""
    setup = p.setup
    opts, df = setup.options, setup.density_fitting
    dm = p.guess() if dm0 is None else p.pad(dm0)
    st, parts = _first(opts, p.s1e, p.x, p.h1e, p.e_nuc, p.e_disp, dm, *p.energy_terms(dm))
    while not bool(st.converged) and int(st.cycle) < opts.max_cycle:  # scf.running, on the host
        dm, focks, errors, vj, vk = _head(opts, df, p.nocc, p.s1e, p.x, p.mo_occ, p.tensors,
                                          p.weights, st)
        st, parts = _tail(opts, p.s1e, p.x, p.h1e, p.e_nuc, p.e_disp, st, dm, focks, errors,
                          vj, vk, *p.exc_vxc(dm))
        if callback is not None:
            callback(st)
    return _result(p, st, parts), st


def _result(p: Problem, st: scf.State, parts: Components) -> Result:
    """The unpadded :class:`~dftad.hamiltonian.Result` of the last state, its orbitals found on
    the host (:func:`dftad.scf.finish` with NumPy)."""
    cut = st._replace(dm=p.cut(st.dm), fock=p.cut(st.fock), focks=None, errors=None)
    res = scf.finish(p.cut(p.s1e), p.setup.occupation, cut, xp=np)
    return Result(scf.SCFResult(*(jax.device_put(a) for a in res)), parts)
