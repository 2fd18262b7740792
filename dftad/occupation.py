"""Electron counts per spin channel: the restricted/unrestricted distinction, named once.

Restricted (closed shell): one channel, orbitals doubly occupied, ``dm`` (nao, nao) is the total
density. Unrestricted: two channels (alpha, beta), singly occupied, ``dm`` (2, nao, nao). Every
array that carries one entry per channel (density, Fock matrix, orbitals and their energies)
has that leading spin axis only when unrestricted; :meth:`Occupation.channels` and
:meth:`Occupation.join` go between the two forms.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


def total_density(dm):
    """D_a + D_b of an unrestricted ``dm`` (2, nao, nao); a restricted one (nao, nao) already
    is the total."""
    return dm if dm.ndim == 2 else dm[0] + dm[1]


@dataclasses.dataclass(frozen=True)
class Occupation:
    """Static (hashable) electron counts: ``nalpha``, ``nbeta`` and ``restricted``."""

    nalpha: int
    nbeta: int
    restricted: bool

    def __post_init__(self):
        if self.restricted and self.nalpha != self.nbeta:
            raise ValueError(f"a restricted calculation needs spin 0, got spin "
                             f"{self.nalpha - self.nbeta}")

    @property
    def per_orbital(self) -> float:
        """Electrons per occupied orbital: 2 restricted, 1 unrestricted."""
        return 2.0 if self.restricted else 1.0

    @property
    def counts(self) -> tuple[int, ...]:
        """Occupied orbitals per channel: ``(nalpha,)`` restricted, ``(nalpha, nbeta)``."""
        return (self.nalpha,) if self.restricted else (self.nalpha, self.nbeta)

    @property
    def homo(self) -> int:
        """Index of the highest occupied (alpha) orbital in :class:`~dftad.scf.SCFResult` order."""
        return self.nalpha - 1

    def spaces(self) -> list[tuple[float, int]]:
        """Per channel: (electrons per occupied orbital, number occupied)."""
        return [(self.per_orbital, n) for n in self.counts]

    def channels(self, a) -> list:
        """The per-channel pieces of ``a`` (leading spin axis when unrestricted)."""
        return [a] if self.restricted else [a[0], a[1]]

    def join(self, parts, xp=jnp):
        """Inverse of :meth:`channels`."""
        return parts[0] if self.restricted else xp.stack(parts)

    def occupations(self, nao: int, xp=jnp) -> jax.Array:
        """``mo_occ`` in SCF-result order (occupied first): (nao,) of 2 and 0 restricted,
        (2, nao) of 1 and 0 unrestricted (``xp=numpy``: a NumPy array)."""
        idx = xp.arange(nao)
        return self.join([xp.where(idx < n, self.per_orbital, 0.0) for n in self.counts], xp)

    def total(self, dm):
        """Total density D_a + D_b (the restricted ``dm`` already is): :func:`total_density`."""
        return total_density(dm)

    def split_evenly(self, dm_total):
        """A ``dm`` of this kind from a total density: itself, or (D/2, D/2)."""
        return dm_total if self.restricted else jnp.stack([0.5 * dm_total, 0.5 * dm_total])
