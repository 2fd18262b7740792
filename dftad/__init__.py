"""dftad: differentiable density functional theory for molecules, in JAX.

    mol = dftad.load("water")                         # shipped name, .xyz path or "O 0 0 0; ..."
    res = dftad.run(mol, "def2-svp", "b3lyp", forces=True)     # res.e_tot, res.forces
    setup = dftad.build(mol, "def2-svp", "b3lyp")              # once per kind of molecule
    res = jax.jit(dftad.kernel)(setup, coords)                 # pure: any geometry, grad, vmap
    hess = jax.jit(dftad.hessian)(setup, coords)
    opt = dftad.optimize(mol, "def2-svp", "b3lyp")             # geomeTRIC; opt.mol, opt.e_tot

Bohr and Hartree inside, float64 always. Importing dftad turns on ``jax_enable_x64``; entry points
call :func:`check_x64` and fail loudly if something turned it off again. The names below are the
public API; everything else is reached through its module (``dftad.integrals``, ``dftad.xc``,
``dftad.interop.pyscf``, ...).
"""

import os

CPU_XLA_FLAGS = "--xla_cpu_use_fusion_emitters=false"
"""XLA:CPU compiles elementwise fusions through LLVM's classic emitters instead of the newer
MLIR fusion emitters: the same programs compile in about two thirds of the time (the README's
main job from an empty cache: 117.7 -> 80.5 s of CPU) and run as fast (`benchmarks/RESULTS.md`).
On by default (the full test suite passes with it); ``DFTAD_FAST_COMPILE=0`` leaves XLA's
defaults. Added to ``XLA_FLAGS`` unless the user has set this flag there; it takes effect if
XLA's backend has not started yet (import dftad before running JAX code)."""

if (os.environ.get("DFTAD_FAST_COMPILE", "1") != "0"
        and "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", "")):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {CPU_XLA_FLAGS}".strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from .basis import Basis  # noqa: E402
from .energy import converge, kernel, run  # noqa: E402
from .forces import energy_and_forces, gradient_at  # noqa: E402
from .geomopt import optimize  # noqa: E402
from .hamiltonian import Result  # noqa: E402
from .molecule import Molecule, load, shipped_molecules  # noqa: E402
from .properties import (  # noqa: E402
    dipole,
    dipole_and_polarizability,
    harmonic_analysis,
    hessian,
    polarizability,
    second_derivatives,
)
from .setup import Setup, build  # noqa: E402
from .stability import follow as follow_instabilities  # noqa: E402
from .xc import Functional, parse_xc  # noqa: E402

__version__ = "0.1.0"


def check_x64() -> None:
    """Raise ``RuntimeError`` unless JAX computes in float64."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "dftad needs float64: jax_enable_x64 was turned off. "
            "Call jax.config.update('jax_enable_x64', True) before using dftad."
        )


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Keep XLA's compiled programs on disk, so that the next process that builds the same
    calculation (same molecule kind, basis, functional, grid) loads them instead of compiling.

    ``path`` defaults to ``$DFTAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/dftad/xla`` (``~/.cache``).
    ``DFTAD_CACHE_DIR=off`` turns the cache off. Returns the directory used, or ``None``."""
    import os

    if path is None:
        path = os.environ.get("DFTAD_CACHE_DIR")
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "dftad", "xla")
    if path.lower() in ("", "0", "off", "none"):
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # read-only home: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


__all__ = [
    "Basis",
    "Functional",
    "Molecule",
    "Result",
    "Setup",
    "build",
    "check_x64",
    "converge",
    "dipole",
    "dipole_and_polarizability",
    "enable_compilation_cache",
    "energy_and_forces",
    "follow_instabilities",
    "gradient_at",
    "harmonic_analysis",
    "hessian",
    "kernel",
    "load",
    "optimize",
    "parse_xc",
    "polarizability",
    "run",
    "second_derivatives",
    "shipped_molecules",
]
