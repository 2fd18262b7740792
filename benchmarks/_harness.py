"""What the benchmark scripts share: compile-then-time, best of N warm runs, PySCF's RKS set up
to converge as dftad does, and the options and header line of the SCF benchmarks. The scripts
run as ``python benchmarks/<name>.py``, which puts this folder on ``sys.path``: they import it as
``_harness``."""

from __future__ import annotations

import argparse
import time

import jax

MOLECULES = ("water", "ethanol", "benzene", "caffeine")
"""The SCF benchmarks' default molecules, smallest first."""


def compile_timed(jitted, *args, **static):
    """(compiled program, compile wall time): ``jitted`` (a ``jax.jit`` function) lowered at
    ``args`` (``static`` for its static arguments) and compiled."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args, **static).compile()
    return compiled, time.perf_counter() - t0


def best_of(fn, repeat):
    """(best wall time of ``repeat`` calls of ``fn()``, the last result). JAX results are waited
    for inside the timing; other results (NumPy, PySCF objects) pass through."""
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), out


def timed(fn, *args, repeat):
    """(result, compile time, best warm time of ``repeat`` runs) of ``jax.jit(fn)(*args)``."""
    compiled, t_compile = compile_timed(jax.jit(fn), *args)
    t_warm, out = best_of(lambda: compiled(*args), repeat)
    return out, t_compile, t_warm


def pyscf_rks(mol, basis, xc, level, setup):
    """PySCF's ``dft.RKS`` for dftad's ``mol`` in ``basis``: functional ``xc``, grid ``level``,
    no density cutoff, dftad's convergence, and density fitting with dftad's auxiliary basis
    where ``setup`` (dftad's, for the same calculation) uses it. Not yet run."""
    from pyscf import dft

    from dftad.interop.pyscf import to_pyscf_mole

    mf = dft.RKS(to_pyscf_mole(mol, basis))
    mf.xc = xc
    mf.grids.level = level
    mf.small_rho_cutoff = 0
    mf.conv_tol = 1e-10
    # the same convergence as dftad's defaults (|dE| < 1e-10, commutator norm < 1e-7; PySCF's
    # orbital-gradient norm is 1/sqrt(2) of the commutator's, so this is slightly looser for PySCF)
    mf.conv_tol_grad = 1e-7
    if setup.density_fitting:
        mf = mf.density_fit(auxbasis=setup.jk.auxbasis_name)
    return mf


def scf_parser(doc, molecules_nargs="+"):
    """Argument parser (described by ``doc``'s first line) with the options the SCF benchmarks
    share: ``--molecules``, ``--basis``, ``--xc``, ``--grid-level``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--molecules", nargs=molecules_nargs, default=list(MOLECULES))
    ap.add_argument("--basis", default="def2-svp")
    ap.add_argument("--xc", default="b3lyp")
    ap.add_argument("--grid-level", type=int, default=3)
    return ap


def print_scf_header(args):
    """The first line of an SCF benchmark's output: versions, threads, method, grid."""
    from pyscf import lib

    print(f"jax {jax.__version__}, PySCF threads {lib.num_threads()}, {args.xc}/{args.basis}, "
          f"grid level {args.grid_level}")
