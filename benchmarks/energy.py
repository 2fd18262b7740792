"""SCF timings: dftad vs PySCF (dft.RKS, same grid level, small_rho_cutoff = 0) in one process.

    python benchmarks/energy.py [--molecules water ethanol benzene caffeine] [--xc b3lyp]

For each molecule (def2-SVP): dftad setup, compile and warm SCF times and cycles; PySCF's SCF
time and cycles (PySCF's default initial guess, its threads); the ratio dftad warm / PySCF and
the energy difference. dftad uses incore ERIs while the tensor fits (4 GiB), else density
fitting, and PySCF is run with the same choice.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import dftad
from dftad import energy


def case(name, basis, xc, level):
    from pyscf import dft, gto

    mol = dftad.load(name)
    t0 = time.perf_counter()
    setup = dftad.build(mol, basis, xc, grid_level=level)
    coords = jnp.asarray(mol.coords)
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = jax.jit(energy.kernel).lower(setup, coords).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = jax.block_until_ready(compiled(setup, coords))
    t_warm = time.perf_counter() - t0
    pmol = gto.M(atom=mol.to_pyscf_atom(), unit="Bohr", basis=basis, charge=mol.charge, spin=mol.spin, verbose=0)
    mf = dft.RKS(pmol)
    mf.xc = xc
    mf.grids.level = level
    mf.small_rho_cutoff = 0
    mf.conv_tol = 1e-10
    # the same convergence as dftad's defaults (|dE| < 1e-10, commutator norm < 1e-7; PySCF's
    # orbital-gradient norm is 1/sqrt(2) of the commutator's, so this is slightly looser for PySCF)
    mf.conv_tol_grad = 1e-7
    if setup.density_fitting:
        mf = mf.density_fit(auxbasis=setup.jk.auxbasis_name)
    cycles = []
    mf.callback = lambda env: cycles.append(env["cycle"])
    t0 = time.perf_counter()
    e_ref = mf.kernel()
    t_ref = time.perf_counter() - t0
    print(
        f"{name:<9s} nao {setup.nao:4d} {'DF ' if setup.density_fitting else 'ERI'}  setup {t_setup:6.1f} s  "
        f"compile {t_compile:6.1f} s  warm {t_warm:7.2f} s ({int(res.scf.cycles)} cyc)  "
        f"PySCF {t_ref:7.2f} s ({len(cycles)} cyc)  ratio {t_warm / t_ref:5.2f}  "
        f"dE {float(res.e_tot) - e_ref:.1e}  conv {bool(res.converged)}",
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecules", nargs="+", default=["water", "ethanol", "benzene", "caffeine"])
    ap.add_argument("--basis", default="def2-svp")
    ap.add_argument("--xc", default="b3lyp")
    ap.add_argument("--grid-level", type=int, default=3)
    args = ap.parse_args()
    from pyscf import lib

    print(f"jax {jax.__version__}, PySCF threads {lib.num_threads()}, {args.xc}/{args.basis}, grid level {args.grid_level}")
    for name in args.molecules:
        case(name, args.basis, args.xc, args.grid_level)


if __name__ == "__main__":
    main()
