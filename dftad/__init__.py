"""dftad: differentiable density functional theory for molecules, in JAX.

Bohr and Hartree inside, float64 always. Importing dftad turns on ``jax_enable_x64``; entry points
call :func:`check_x64` and fail loudly if something turned it off again.
"""

import jax

jax.config.update("jax_enable_x64", True)

from .basis import Basis, BasisLayout  # noqa: E402
from .molecule import Molecule, load, shipped_molecules  # noqa: E402

__version__ = "0.1.0"


def check_x64() -> None:
    """Raise ``RuntimeError`` unless JAX computes in float64."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "dftad needs float64: jax_enable_x64 was turned off. "
            "Call jax.config.update('jax_enable_x64', True) before using dftad."
        )


__all__ = ["Basis", "BasisLayout", "Molecule", "load", "shipped_molecules", "check_x64"]
