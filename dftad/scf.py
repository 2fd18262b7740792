"""Self-consistent field solver (DIIS) for RHF/UHF/RKS/UKS: :func:`start`, :func:`step` and
:func:`finish`, composed by :func:`solve` into one ``lax.while_loop`` (the differentiable path)
or driven cycle by cycle from Python (:func:`dftad.energy.kernel_stepwise`, which the CLI uses
to print each cycle without a host callback in a compiled program).

The solver knows nothing about the Hamiltonian. It takes

    energy_fn(dm, orbs) -> (e_tot, fock)

where ``fock = dE/d dm`` (restricted: ``dm`` (nao, nao) with occupation 2; unrestricted:
``dm`` (2, nao, nao), one Fock matrix per spin) and ``orbs`` is None or the orbitals X that
``dm`` = X X^T is made of (:func:`dftad.jk.orbitals_of`; the density-fitted exchange is built
through them, the Hamiltonian may ignore them), the overlap ``s1e`` and the electron counts,
and iterates Roothaan-Hall steps

    F C = S C e,   D = sum_i^occ n_i C_i C_i^T

accelerated by DIIS (Pulay) on the commutator error  e = X^T (F D S - S D F) X  (X = S^-1/2),
with optional level shifting of the virtual space and damping of the density. It stops when both
|E_n - E_(n-1)| < ``conv_tol`` and ||e|| < ``conv_tol_grad`` (Frobenius norm), or after
``max_cycle`` cycles with ``converged = False``.

Rescue: an SCF still unconverged after ``rescue_cycle`` cycles restarts DIIS (history cleared)
with the virtual space shifted up by ``rescue_shift`` Hartree. It helps DIIS where the
occupied set flips between (near-)degenerate orbitals, e.g. the singly occupied pi* of a 2-Pi
radical (UHF/UKS-LDA NO oscillates with plain DIIS, in PySCF too), but not reliably: for UHF NO /
STO-3G it converged 1 of 6 starts perturbed by 1e-8 (rescue at cycle 10). What converges such
cases from any start is :func:`dftad.energy.converge` (second-order steps, :mod:`dftad.newton`),
which :func:`dftad.run` and the CLI call after DIIS. The shift changes the path, not the fixed
point: convergence is judged on the unshifted Fock matrix. An SCF that converges before
``rescue_cycle`` is not touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .jk import orbitals_of
from .linalg import eig, make_rdm1, orthogonalizer
from .occupation import Occupation


class SCFOptions(NamedTuple):
    """Static solver settings (hashable)."""

    conv_tol: float = 1e-10
    conv_tol_grad: float = 1e-7
    max_cycle: int = 100
    diis_space: int = 8
    diis_start_cycle: int = 1
    level_shift: float = 0.0
    damp: float = 0.0
    rescue_cycle: int = 50
    rescue_shift: float = 0.2


DEFAULT_OPTIONS = SCFOptions()


class SCFResult(NamedTuple):
    """Converged (or last) SCF state. Arrays carry a leading spin axis when unrestricted.

    The orbitals span ``dm``, occupied first in each channel (``mo_occ`` is n n ... 0 0), and
    are canonical within the occupied and the virtual space (:func:`density_orbitals`): at an
    aufbau solution ``mo_energy`` ascends; at a non-aufbau one a virtual energy can lie below
    an occupied one."""

    e_tot: jax.Array
    dm: jax.Array
    fock: jax.Array
    mo_energy: jax.Array
    mo_coeff: jax.Array
    mo_occ: jax.Array
    converged: jax.Array
    cycles: jax.Array
    e_change: jax.Array
    grad_norm: jax.Array


def canonicalize(mo_coeff, fock, occ: Occupation, xp=jnp):
    """Orbitals that diagonalise the Fock matrix within the occupied and within the virtual
    space of each channel (the density is unchanged), and their energies (occupied first).
    ``xp=numpy``: on the host."""
    cs, es = [], []
    for c, f, n in zip(occ.channels(mo_coeff), occ.channels(fock), occ.counts):
        fmo = c.T @ f @ c
        eo, uo = xp.linalg.eigh(fmo[:n, :n])
        ev, uv = xp.linalg.eigh(fmo[n:, n:])
        cs.append(xp.concatenate([c[:, :n] @ uo, c[:, n:] @ uv], axis=1))
        es.append(xp.concatenate([eo, ev]))
    return occ.join(cs, xp), occ.join(es, xp)


def density_orbitals(dm, fock, s1e, occ: Occupation, xp=jnp):
    """Orbitals that span ``dm`` (occupied first in each channel), canonical within its occupied
    and virtual spaces, and their energies: ``(mo_energy, mo_coeff)``.

    The natural orbitals of D (eigenvectors of X^T S D S X, X = S^-1/2) split the space into
    occupied and virtual; :func:`canonicalize` then diagonalises F in each. Where the SCF
    solution is aufbau these are F's eigenvectors (up to phases); where it is not (a DIIS fixed
    point reached with a level shift can leave a virtual orbital below an occupied one) they
    still span the density, which F's lowest eigenvectors do not."""
    x = orthogonalizer(s1e, xp)
    coeffs = []
    for d in occ.channels(dm):
        _, u = xp.linalg.eigh(x.T @ s1e @ d @ s1e @ x)
        coeffs.append((x @ u)[:, ::-1])  # largest occupation first
    mo_coeff, mo_energy = canonicalize(occ.join(coeffs, xp), fock, occ, xp)
    return mo_energy, mo_coeff


def commutator(fock, dm, s1e, x):
    """The SCF error X^T (F D S - S D F) X (zero at self-consistency)."""
    fds = fock @ dm @ s1e
    return jnp.swapaxes(x, -1, -2) @ (fds - jnp.swapaxes(fds, -1, -2)) @ x


def _diis(focks, errors, count, space):
    """Pulay extrapolation of the stored Fock matrices; slots >= count are ignored."""
    valid = jnp.arange(space) < count
    flat = errors.reshape(space, -1)
    b = flat @ flat.T
    b = jnp.where(valid[:, None] & valid[None, :], b, 0.0)
    # scale for conditioning; empty slots get a unit diagonal and zero weight
    scale = jnp.max(jnp.where(valid, jnp.diagonal(b), 0.0))
    b = b / jnp.where(scale > 0, scale, 1.0) + jnp.diag(jnp.where(valid, 0.0, 1.0))
    one = valid.astype(jnp.float64)
    a = jnp.block([[b, -one[:, None]], [-one[None, :], jnp.zeros((1, 1))]])
    rhs = jnp.concatenate([jnp.zeros(space), -jnp.ones(1)])
    c = jnp.linalg.lstsq(a, rhs)[0][:space]
    return jnp.tensordot(c, focks, axes=1)


class State(NamedTuple):
    """DIIS loop state: cycle count; the current density, its Fock matrix and energy; the last
    energy change and commutator norm; the DIIS history (ring buffers of Fock matrices and their
    errors, ``diis_space`` slots); whether both convergence criteria hold."""

    cycle: jax.Array
    dm: jax.Array
    fock: jax.Array
    e_tot: jax.Array
    e_change: jax.Array
    grad_norm: jax.Array
    focks: jax.Array
    errors: jax.Array
    converged: jax.Array


def start(energy_fn: Callable, s1e, x, dm0, options: SCFOptions = DEFAULT_OPTIONS) -> State:
    """The loop state before the first cycle: ``dm0``, its energy and Fock matrix, empty DIIS
    history. ``x``: the orthogonaliser S^-1/2 (:func:`orthogonalizer`)."""
    return initial_state(s1e, x, options, dm0, *energy_fn(dm0, None))


def initial_state(s1e, x, options: SCFOptions, dm0, e0, f0) -> State:
    """:func:`start` given the energy ``e0`` and Fock matrix ``f0`` of ``dm0``."""
    err0 = commutator(f0, dm0, s1e, x)
    space = options.diis_space
    return State(
        # strongly typed, as step() returns them: one compiled step for every cycle
        cycle=jnp.asarray(0, dtype=jnp.int64),
        dm=dm0,
        fock=f0,
        e_tot=e0,
        e_change=jnp.full((), jnp.inf, dtype=e0.dtype),
        grad_norm=jnp.linalg.norm(err0),
        focks=jnp.zeros((space,) + f0.shape),
        errors=jnp.zeros((space,) + err0.shape),
        converged=jnp.asarray(False),
    )


def step(energy_fn: Callable, s1e, x, occ: Occupation, options: SCFOptions, st: State) -> State:
    """One cycle: DIIS extrapolation of the Fock matrix (with the level shift and, after
    ``rescue_cycle``, the rescue shift), its density (:func:`next_density`), and that density's
    energy, Fock matrix and convergence test (:func:`advance`). ``x``: the orthogonaliser
    S^-1/2 (:func:`orthogonalizer`)."""
    mo_occ = occ.occupations(s1e.shape[-1])
    dm, focks, errors, orbs = next_density(s1e, x, mo_occ, options, st, max(occ.counts))
    return advance(s1e, x, options, st, dm, focks, errors, *energy_fn(dm, orbs))


def next_density(s1e, x, mo_occ, options: SCFOptions, st: State, nocc: int | None = None):
    """The first half of :func:`step`: ``(dm, focks, errors, orbs)``, the density of the
    extrapolated (and shifted) Fock matrix with occupations ``mo_occ`` (occupied first, as
    :meth:`~dftad.occupation.Occupation.occupations`), the updated DIIS history, and the
    density's orbital factor X (dm = X X^T, :func:`dftad.jk.orbitals_of` over the first
    ``nocc`` orbitals; None without ``nocc`` or with damping, whose mixed density is not
    X X^T)."""
    opts = options
    factor = 0.5 if st.dm.ndim == 2 else 1.0  # 1 / occupation per orbital, in the level shift
    space = opts.diis_space
    err = commutator(st.fock, st.dm, s1e, x)
    # ring buffer: one entry per cycle, the oldest overwritten once ``space`` are held;
    # k counts the cycles of the current history (the rescue starts a new one in slot 0)
    rescue = st.cycle >= opts.rescue_cycle
    k = jnp.where(rescue, st.cycle - opts.rescue_cycle, st.cycle)
    focks = st.focks.at[k % space].set(st.fock)
    errors = st.errors.at[k % space].set(err)
    count = jnp.minimum(k + 1, space)
    use_diis = (st.cycle >= opts.diis_start_cycle) & (count > 1)
    fock = jnp.where(use_diis, _diis(focks, errors, count, space), st.fock)
    shift = jnp.where(rescue, opts.level_shift + opts.rescue_shift, opts.level_shift)
    if opts.level_shift or opts.rescue_shift:
        sds = s1e @ st.dm @ s1e
        fock = fock + shift * (s1e - factor * sds)
    _, c = eig(fock, x)
    dm = make_rdm1(c, mo_occ)
    orbs = None if nocc is None or opts.damp else orbitals_of(c, mo_occ, nocc)
    if opts.damp:
        dm = jnp.where(st.cycle > 0, (1 - opts.damp) * dm + opts.damp * st.dm, dm)
    return dm, focks, errors, orbs


def advance(s1e, x, options: SCFOptions, st: State, dm, focks, errors, e_tot, f_new) -> State:
    """The second half of :func:`step`: the next state from :func:`next_density`'s output and
    the energy ``e_tot`` and Fock matrix ``f_new`` of its density."""
    gnorm = jnp.linalg.norm(commutator(f_new, dm, s1e, x))
    de = e_tot - st.e_tot
    conv = (jnp.abs(de) < options.conv_tol) & (gnorm < options.conv_tol_grad)
    return State(st.cycle + 1, dm, f_new, e_tot, de, gnorm, focks, errors, conv)


def running(options: SCFOptions, st: State):
    """Whether the loop goes on: not converged and fewer than ``max_cycle`` cycles."""
    return (~st.converged) & (st.cycle < options.max_cycle)


def finish(s1e, occ: Occupation, st: State, xp=jnp) -> SCFResult:
    """The :class:`SCFResult` of the last state (orbitals that span its density);
    ``xp=numpy``: on the host."""
    mo_energy, mo_coeff = density_orbitals(st.dm, st.fock, s1e, occ, xp)
    return SCFResult(
        e_tot=st.e_tot,
        dm=st.dm,
        fock=st.fock,
        mo_energy=mo_energy,
        mo_coeff=mo_coeff,
        mo_occ=occ.occupations(s1e.shape[-1], xp),
        converged=st.converged,
        cycles=st.cycle,
        e_change=st.e_change,
        grad_norm=st.grad_norm,
    )


def solve(energy_fn: Callable, s1e, dm0, occ: Occupation,
          options: SCFOptions = DEFAULT_OPTIONS) -> SCFResult:
    """Run the SCF from the initial density ``dm0`` (see the module docstring): :func:`start`,
    :func:`step` in a ``lax.while_loop`` while :func:`running`, :func:`finish`. (A caller that
    prints each cycle drives the same three functions from Python: :func:`dftad.energy.
    kernel_stepwise`; a host callback inside the loop would keep the compiled program out of
    JAX's on-disk cache.)"""
    x = orthogonalizer(s1e)
    st = jax.lax.while_loop(lambda st: running(options, st),
                            lambda st: step(energy_fn, s1e, x, occ, options, st),
                            start(energy_fn, s1e, x, dm0, options))
    return finish(s1e, occ, st)


def cycle_line(st: State) -> str:
    """One line describing an SCF cycle (the CLI prints it)."""
    return (f"cycle {int(st.cycle):3d}  E = {float(st.e_tot):.12f}  "
            f"dE = {float(st.e_change):10.3e}  |[F,D]| = {float(st.grad_norm):9.3e}")
