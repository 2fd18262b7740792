"""Initial density matrices: core Hamiltonian and superposition of atomic densities (SAD).

SAD: every atom A gets its own spin-restricted Hartree-Fock density, computed in A's own basis
functions from the molecular integrals (its block of S, T and of the ERI tensor, and the
attraction to nucleus A alone), with Fermi-smeared fractional occupations (kT = ``SMEARING``),
which makes open-shell atoms spherical on average. The molecular guess is the block-diagonal sum
of the atomic densities. Atoms of one element share shapes, so they are solved together (vmap);
the loop has a fixed number of damped iterations, which is plenty for a guess.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .linalg import eig, make_rdm1, orthogonalizer
from .occupation import Occupation

SMEARING = 0.05
"""Fermi smearing kT (Hartree) of the atomic occupations."""

ITERATIONS = 40
"""Fixed number of damped SCF iterations per atom."""

DAMPING = 0.3
"""Fraction of the previous atomic density mixed into each new one."""

KINDS = ("sad", "core")
"""The initial guesses :func:`initial_guess` knows."""


@functools.cache
def _element_blocks(layout, atomic_numbers: tuple):
    """For each element: (Z, atom indices, AO indices (natoms_e, nao_A))."""
    atom_of_ao = layout.ao_atom
    groups = []
    for z in sorted(set(atomic_numbers)):
        atoms = [a for a, za in enumerate(atomic_numbers) if za == z]
        idx = np.stack([np.nonzero(atom_of_ao == a)[0] for a in atoms])
        groups.append((z, np.asarray(atoms), idx))
    return tuple(groups)


def _fermi(mo_energy, nelec):
    """Occupations 2 f((e - mu)/kT) with mu from bisection so that they sum to ``nelec``."""
    lo = jnp.min(mo_energy) - 10.0
    hi = jnp.max(mo_energy) + 10.0

    def occ(mu):
        return 2.0 * jax.nn.sigmoid(-(mo_energy - mu) / SMEARING)

    def step(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        too_many = jnp.sum(occ(mid)) > nelec
        return jnp.where(too_many, lo, mid), jnp.where(too_many, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 100, step, (lo, hi))
    return occ(0.5 * (lo + hi))


def _atom_scf(s, h, eri, nelec):
    """Fractional-occupation RHF of one atom; returns its density matrix."""
    x = orthogonalizer(s)

    def density(fock):
        e, c = eig(fock, x)
        return make_rdm1(c, _fermi(e, nelec))

    def body(_, dm):
        vj = jnp.einsum("ijkl,lk->ij", eri, dm)
        vk = jnp.einsum("ijkl,jk->il", eri, dm)
        new = density(h + vj - 0.5 * vk)
        return (1 - DAMPING) * new + DAMPING * dm

    return jax.lax.fori_loop(0, ITERATIONS, body, density(h))


def core_guess(h1e, s1e, occ: Occupation):
    """Initial density from the core Hamiltonian: diagonalise h (F = h)."""
    _, c = eig(h1e, orthogonalizer(s1e))
    return make_rdm1(occ.join([c] * len(occ.counts)), occ.occupations(s1e.shape[-1]))


def sad_guess(layout, atomic_numbers, s1e, kin, v_per_nucleus, eri_fn, occ: Occupation):
    """Block-diagonal superposition of atomic densities (the total density, split evenly between
    spins when unrestricted).

    ``kin``: kinetic matrix; ``v_per_nucleus``: (natm, nao, nao) attraction to each nucleus
    alone; ``eri_fn(idx)``: the ERI block over AO indices ``idx`` (nao_A,).
    """
    nao = s1e.shape[-1]
    dm = jnp.zeros((nao, nao))
    for z, atoms, idx in _element_blocks(layout, tuple(atomic_numbers)):
        sub = lambda m, i: m[i[:, None], i[None, :]]  # noqa: E731
        s_a = jnp.stack([sub(s1e, i) for i in idx])
        h_a = jnp.stack([sub(kin, i) + sub(v_per_nucleus[a], i) for a, i in zip(atoms, idx)])
        eri_a = jnp.stack([eri_fn(i) for i in idx])
        dms = jax.vmap(_atom_scf, in_axes=(0, 0, 0, None))(s_a, h_a, eri_a, float(z))
        for i, d in zip(idx, dms):
            dm = dm.at[i[:, None], i[None, :]].set(d)
    return occ.split_evenly(dm)


def initial_guess(setup, ints):
    """The setup's initial density (``setup.init_guess``, one of :data:`KINDS`) from its
    :class:`~dftad.hamiltonian.Integrals`."""
    if setup.init_guess == "core":
        return core_guess(ints.h1e, ints.s1e, setup.occupation)
    return sad_guess(setup.basis.layout, setup.atomic_numbers, ints.s1e, ints.kin,
                     ints.v_per_nucleus, lambda idx: setup.jk.eri_block(ints.jk, idx),
                     setup.occupation)
