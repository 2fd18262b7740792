"""Nuclear gradients of the converged SCF energy (Hartree/Bohr).

The energy is variational in the density, so its total derivative needs no density response:

    dE/dR = dE/dR|_D - sum_mn W_mn dS_mn/dR,       W = sum_i n_i e_i C_i C_i^T,

the derivative at fixed D and W of the Lagrangian E[D] - sum W S (:func:`lagrangian`), taken
by reverse-mode AD through the integrals: the ERIs (or the density-fitting factors), the grid
with its Becke weights and the AO values on it, so the grid response is included. It equals
``-jax.grad`` of :func:`dftad.energy.kernel`'s ``e_tot`` (the implicit path) to the SCF
convergence (``tests/test_forces.py`` checks both against PySCF and each other).
"""

from __future__ import annotations

import contextlib
import functools
import threading

import jax
import jax.numpy as jnp
import numpy as np

from . import grid_pieces, guess, packed_df, pieces, scf, scf_pieces
from .hamiltonian import (
    Integrals,
    Result,
    exc_direct,
    exc_gradient,
    exchange_operators,
    grid_ao,
    hamiltonian,
    host_exchange_operators,
    one_electron_part,
    xc_params_of,
)
from .integrals import eri_pieces, one_electron_pieces
from .integrals.eri_kernel import as_omega
from .integrals.eri_pieces import pad_ao
from .jk import IncoreJK, eri_terms, fitted_energy, orbitals_of
from .setup import Setup


def energy_weighted_dm(dm, fock, occupation):
    """W = sum_i n_i e_i C_i C_i^T, the Lagrange multiplier of the orthonormality constraint,
    written through the converged density so that it differentiates like it (Hessians):
    restricted W = D F D / 2 (n_i = 2), unrestricted W = D_a F_a D_a + D_b F_b D_b."""
    w = dm @ fock @ dm
    return 0.5 * w if occupation.restricted else w[0] + w[1]


def _one_electron_lagrangian(one, dm_tot, w):
    """sum D h + E_nuc + E_disp - sum W S."""
    return jnp.sum(dm_tot * one.h1e) + one.e_nuc + one.e_disp - jnp.sum(w * one.s1e)


def _two_electron_energy(setup: Setup, factors, dm, weights, orbs=None):
    occ = setup.occupation
    return setup.jk.energy(setup.basis, factors, dm, occ.total(dm), weights,
                           1.0 / occ.per_orbital, orbs)


def occupied_orbitals(setup: Setup, scf_result: scf.SCFResult):
    """X with dm = X X^T per channel (:func:`dftad.jk.orbitals_of`) of an SCF result, whose
    orbitals span its density, occupied first: the density-fitted exchange of the forces goes
    through them (O(naux nao^2 nocc)) where the density is a constant (its derivative through
    X would not be the density's: :func:`dftad.jk.exchange_df_occ`)."""
    return orbitals_of(scf_result.mo_coeff, scf_result.mo_occ, max(setup.occupation.counts))


def lagrangian(setup: Setup, coords, dm, w, xc_params=None, orbs=None):
    """E[D] - sum W S at fixed (D, W) as a function of ``coords``: its derivative is the total
    derivative of the converged energy (D variational, W the orthonormality multiplier). The
    two-electron part comes straight from the back end's factors (incore: the shell-quartet
    blocks, so no (nao,)*4 tensor or cotangent is formed; density fitting: the integrals,
    through ``orbs``, X with dm = X X^T, where given: :func:`dftad.jk.fitted_energy`), E_xc
    from :func:`exc_direct` (no grid-sized cotangent either)."""
    params = xc_params_of(setup, xc_params)
    omegas, weights = exchange_operators(setup, params)
    factors = setup.jk.factors(setup.basis, coords, omegas)
    return (_semilocal_lagrangian(setup, coords, dm, w, params)
            + _two_electron_energy(setup, factors, dm, weights, orbs))


def _semilocal_lagrangian(setup: Setup, coords, dm, w, params):
    """:func:`lagrangian` without its two-electron part: the one-electron terms and E_xc."""
    one = one_electron_part(setup, coords)
    return (_one_electron_lagrangian(one, setup.occupation.total(dm), w)
            + exc_direct(setup, coords, dm, params))


def nuclear_gradient(setup: Setup, coords, dm, w, xc_params=None, orbs=None):
    """dE/dR (Hartree/Bohr, (natm, 3)) at a converged density ``dm`` with energy-weighted
    density ``w`` (``orbs`` as :func:`lagrangian`)."""
    return jax.grad(lagrangian, argnums=1)(setup, coords, dm, w, xc_params, orbs)


def gradient_at(setup: Setup, coords, scf_result: scf.SCFResult, xc_params=None):
    """dE/dR of a converged SCF result from any solver (DIIS, Newton): no SCF is run."""
    w = energy_weighted_dm(scf_result.dm, scf_result.fock, setup.occupation)
    return nuclear_gradient(setup, coords, scf_result.dm, w, xc_params)


def energy_and_forces(setup: Setup, coords, xc_params=None, dm0=None) -> Result:
    """:class:`~dftad.hamiltonian.Result` with ``forces`` = -dE/dR (Hartree/Bohr, (natm, 3)):
    the DIIS SCF and the gradient in one program. Pure JAX (jit it). An SCF that DIIS does not
    converge: :func:`dftad.energy.converge`, then :func:`gradient_at` (what :func:`dftad.run`
    does).

    One forward pass through the integrals serves the SCF and the reverse pass: the SCF uses
    the primal integrals (the incore (nao,)*4 tensor unpacked from the quartet blocks), the
    reverse pass differentiates the Lagrangian through the same forward pass (the blocks, not
    the tensor). E_xc is differentiated with the AOs rematerialised per grid block
    (:func:`exc_direct`): the SCF's AO values are a constant here, so no grid-sized cotangent is
    formed. The SCF is not differentiated (the energy is variational)."""
    ints, gradient = integrals_and_gradient(setup, coords, xc_params)
    ints = ints._replace(jk=jax.lax.stop_gradient(ints.jk),
                         grid_ao=jax.lax.stop_gradient(ints.grid_ao))
    energy_fn, components = hamiltonian(setup, ints, xc_params_of(setup, xc_params))
    if dm0 is None:
        dm0 = guess.initial_guess(setup, ints)
    res = jax.lax.stop_gradient(scf.solve(energy_fn, ints.s1e, dm0, setup.occupation,
                                          setup.options))
    return Result(res, components(res.dm),
                  -gradient(res.dm, res.fock, occupied_orbitals(setup, res)))


def integrals_and_gradient(setup: Setup, coords, xc_params=None):
    """(:class:`~dftad.hamiltonian.Integrals` at ``coords``, ``gradient(dm, fock)`` -> dE/dR
    (natm, 3)): the gradient is the pullback of :func:`lagrangian` through the same forward
    pass that gave the integrals (the quartet blocks, not the unpacked tensor), with W from
    ``dm`` and ``fock`` (:func:`energy_weighted_dm`) and ``orbs`` as :func:`lagrangian`.
    Differentiable: forward mode over an SCF on these integrals and this gradient traces the
    class kernels once (Hessians)."""
    params = xc_params_of(setup, xc_params)
    omegas, weights = exchange_operators(setup, params)
    basis, occ = setup.basis, setup.occupation
    one, one_pullback = jax.vjp(lambda c: one_electron_part(setup, c), coords)
    factors, jk_pullback = setup.jk.factors_and_pullback(basis, coords, omegas)
    ao = grid_ao(setup, coords) if setup.semilocal else None
    ints = Integrals(*one, jk=setup.jk.tensors(basis, factors), grid_ao=ao)

    def gradient(dm, fock, orbs=None):
        w = energy_weighted_dm(dm, fock, occ)
        dm_tot = occ.total(dm)
        one_bar = jax.grad(lambda o: _one_electron_lagrangian(o, dm_tot, w))(one)
        factors_bar = jax.grad(lambda f: _two_electron_energy(setup, f, dm, weights, orbs))(
            factors)
        return (one_pullback(one_bar)[0] + jk_pullback(factors_bar)
                + exc_gradient(setup, coords, dm, params))

    return ints, gradient


def nuclear_repulsion_gradient(coords, charges) -> np.ndarray:
    """d E_nuc / dR_A = -sum_B Z_A Z_B (R_A - R_B) / R_AB^3 (NumPy, Hartree/Bohr)."""
    r = np.asarray(coords, dtype=np.float64)
    z = np.asarray(charges, dtype=np.float64)
    d = r[:, None, :] - r[None, :, :]
    dist = np.linalg.norm(d, axis=-1)
    np.fill_diagonal(dist, np.inf)
    return -np.einsum("ab,abx->ax", z[:, None] * z[None, :] / dist**3, d)


def _eri_terms(setup: Setup, dm, xc_params=None):
    """(omega, dm_coul, dm_exch, c_exch) per two-electron operator: what
    :func:`dftad.integrals.eri_pieces.gradient` contracts (as :func:`_two_electron_energy`)."""
    omegas, weights = host_exchange_operators(setup, xc_params)
    occ = setup.occupation
    terms = eri_terms(len(omegas), dm, occ.total(dm), weights, 1.0 / occ.per_orbital)
    return tuple((omega, *term) for omega, term in zip(omegas, terms))


_disp_gradient_jit = jax.jit(lambda disp, coords: jax.grad(disp.energy)(coords))


ONE_PROGRAM_FITTED_BYTES = 4 * 2**30
"""Largest (mn|P) (nao, nao, naux) whose operator's forces :func:`_df_gradient` takes as one
program (which holds it and its cotangent); past it, in stages over A packed over AO pairs
and blocks of P (:func:`dftad.packed_df.operator_gradient`)."""


def _df_gradient(setup: Setup, coords, scf_result: scf.SCFResult) -> np.ndarray:
    """:func:`gradient_at` with density fitting, in parts: the one-electron and XC terms
    (:func:`_df_rest_gradient`), then each two-electron operator alone
    (:func:`_df_operator_gradient`, one program for both operators of a range-separated
    functional, omega as data), so that the operators' (naux, nao, nao) integrals and their
    cotangents are never alive together, each through the occupied orbitals
    (:func:`dftad.jk.fitted_energy`: neither B nor its cotangent; a constant density, nothing
    differentiates this). Caffeine/def2-TZVP CAM-B3LYP: one program for all was killed at
    24 GB; in parts through B, 19.7 GB; now 12.3 GB for the whole CLI job
    (``benchmarks/RESULTS.md``). Past :data:`ONE_PROGRAM_FITTED_BYTES`, each operator in
    stages (:mod:`dftad.packed_df`)."""
    occ = setup.occupation
    orbs = occupied_orbitals(setup, scf_result)
    basis, naux = setup.basis, setup.jk.aux.nao
    by_blocks = 8 * basis.nao**2 * naux > ONE_PROGRAM_FITTED_BYTES
    if by_blocks:  # the XC gradient's one program holds grid-sized arrays: a block at a time
        grad = _rest_pieces_gradient(setup, coords, np.asarray(scf_result.dm),
                                     np.asarray(scf_result.fock))
    else:
        w = energy_weighted_dm(scf_result.dm, scf_result.fock, occ)
        grad = np.asarray(_df_rest_gradient(setup, coords, scf_result.dm, w))
    for omega, dm_coul, dm_exch, c_exch in _eri_terms(setup, np.asarray(scf_result.dm)):
        c_coul = float(dm_coul is not None)
        if by_blocks:
            grad = grad + packed_df.operator_gradient(
                setup, coords, occ.total(scf_result.dm), orbs, omega, c_coul, c_exch,
                dm_exch is not None)
            continue
        grad = grad + np.asarray(_df_operator_gradient(
            setup, coords, scf_result.dm, orbs, as_omega(omega),
            jax.device_put(np.float64(c_coul)), jax.device_put(np.float64(c_exch)),
            dm_exch is not None))
    return grad


@jax.jit
def _df_rest_gradient(setup: Setup, coords, dm, w):
    """d/dR of :func:`_semilocal_lagrangian` (E_xc's by :func:`exc_gradient`)."""
    dm_tot = setup.occupation.total(dm)
    one = jax.grad(lambda c: _one_electron_lagrangian(one_electron_part(setup, c), dm_tot, w))
    return one(coords) + exc_gradient(setup, coords, dm, setup.xc.params)


@functools.partial(jax.jit, static_argnums=(7,))
def _df_operator_gradient(setup: Setup, coords, dm, orbs, omega, c_coul, c_exch,
                          exchange: bool):
    """d/dR of c_coul E_J + E_K of one two-electron operator (omega; inf: 1/r12; ``c_exch`` as
    :func:`dftad.jk.eri_terms` gives it) by density fitting, K through the occupied orbitals
    ``orbs`` (``exchange`` False: no K, a functional without exact exchange):
    :func:`dftad.jk.fitted_energy` of its integrals, so that neither the factors B nor their
    cotangents are formed."""
    dm_tot = setup.occupation.total(dm)

    def e2(c):
        return fitted_energy(*setup.jk.integrals(setup.basis, c, omega), dm_tot,
                             orbs if exchange else None, c_coul, c_exch)

    return jax.grad(e2)(coords)


def gradient_stepwise(setup: Setup, coords, scf_result: scf.SCFResult):
    """:func:`gradient_at` (Hartree/Bohr) driven from Python: the one-electron and ERI terms
    through the compiled pieces every molecule shares (:mod:`dftad.integrals.one_electron_pieces`,
    :mod:`dftad.integrals.eri_pieces`), E_xc's (grid response included) through
    :mod:`dftad.grid_pieces`, E_nuc's on the host. Same
    numbers, as a NumPy array; not differentiable (use :func:`gradient_at` under ``jax.grad``).
    Density fitting: :func:`gradient_at` in parts (:func:`_df_gradient`)."""
    coords = jax.device_put(coords)
    if not isinstance(setup.jk, IncoreJK):
        return _df_gradient(setup, coords, scf_result)
    return _pieces_gradient(setup, coords, np.asarray(scf_result.dm), np.asarray(scf_result.fock))


_WARM: set = set()
"""The kinds of calculation (:func:`_kind`) whose forces this process has run through the
pieces: their programs are compiled, so :func:`compile_ahead` has nothing to do for them."""


def _kind(setup: Setup):
    """What the forces' pieces of ``setup`` depend on besides the geometry: the basis layout
    (shells, atoms: the integral classes and buckets), the functional's structure, the spin
    treatment and the dispersion term."""
    return (setup.basis.layout, jax.tree_util.tree_structure(setup.xc),
            setup.occupation.restricted, setup.semilocal, setup.disp is None)


def _pieces_gradient(setup: Setup, coords, dm, fock, sample: bool = False):
    grad = eri_pieces.gradient(setup.jk.plan, setup.basis, coords, _eri_terms(setup, dm),
                               sample)
    grad = grad + _rest_pieces_gradient(setup, coords, dm, fock, sample)
    if not sample:
        _WARM.add(_kind(setup))
    return grad


def _rest_pieces_gradient(setup: Setup, coords, dm, fock, sample: bool = False):
    """The gradient's terms other than the two-electron ones through the pieces: one-electron
    (with the -W dS term), nuclear repulsion, E_xc (grid response included, a grid block at a
    time) and dispersion."""
    occ = setup.occupation
    dm_tot, w = occ.total(dm), energy_weighted_dm(dm, fock, occ)
    grad = one_electron_pieces.gradient(setup.basis, coords, setup.charges, dm_tot, w, sample)
    grad = grad + nuclear_repulsion_gradient(coords, setup.charges)
    if setup.semilocal:
        nao_b = scf_pieces.nao_bucket(setup.nao)
        grad = grad + grid_pieces.exc_gradient(setup, coords, pad_ao(dm, nao_b), nao_b, sample)
    if setup.disp is not None:
        grad = grad + np.asarray(_disp_gradient_jit(setup.disp, coords))
    return grad


@contextlib.contextmanager
def compile_ahead(setup: Setup, coords, enabled: bool = True):
    """While the ``with`` block runs (the SCF), compile in a background thread what
    :func:`gradient_stepwise` will run: the forces' pieces on a zero density, the first chunk of
    each integral class and the first grid block only (a small part of the work that runs
    every piece). Yields ``wait()``, which waits for the thread (leaving the block does too), so
    that a caller can time what is left of the compiling after the SCF. XLA compiles outside
    Python's lock, so the two overlap: on two cores the README's job from an empty cache takes
    ~15% less wall time (``benchmarks/RESULTS.md``), more cores gain more. Nothing to do with
    density fitting (whole programs) or ``enabled`` False; an error there is left to the real
    call to raise. Nothing either where this process has run the forces of the same kind of
    calculation (:func:`_kind`; a warm :func:`dftad.run` spent ~6% of its time on the sample)."""
    thread = None
    if enabled and isinstance(setup.jk, IncoreJK) and _kind(setup) not in _WARM:
        nao = setup.nao
        zeros = np.zeros((nao, nao) if setup.occupation.restricted else (2, nao, nao))

        job = pieces.in_repeated_job()  # the calculation's kind of pieces, in the thread too

        def run():
            try:
                with pieces.repeated_job(job):
                    _pieces_gradient(setup, jax.device_put(coords), zeros, zeros, sample=True)
            except Exception:  # noqa: BLE001 - the real call compiles again and raises
                pass

        thread = threading.Thread(target=run, name="dftad-compile-ahead", daemon=True)
        thread.start()

    def wait():
        if thread is not None:
            thread.join()

    try:
        yield wait
    finally:
        wait()
