"""SCF timings: dftad vs PySCF (dft.RKS, same grid level, small_rho_cutoff = 0) in one process.

    python benchmarks/energy.py [--molecules water ethanol benzene caffeine] [--xc b3lyp]

For each molecule (def2-SVP): dftad setup, compile and warm SCF times and cycles; PySCF's SCF
time and cycles (PySCF's default initial guess, its threads); the ratio dftad warm / PySCF and
the energy difference. dftad uses incore ERIs while the tensor fits (4 GiB), else density
fitting, and PySCF is run with the same choice.
"""

from __future__ import annotations

import time

import jax.numpy as jnp
from _harness import print_scf_header, pyscf_rks, scf_parser, timed

import dftad
from dftad import energy


def case(name, basis, xc, level):
    mol = dftad.load(name)
    t0 = time.perf_counter()
    setup = dftad.build(mol, basis, xc, grid_level=level)
    coords = jnp.asarray(mol.coords)
    t_setup = time.perf_counter() - t0
    res, t_compile, t_warm = timed(energy.kernel, setup, coords, repeat=1)
    mf = pyscf_rks(mol, basis, xc, level, setup)
    cycles = []
    mf.callback = lambda env: cycles.append(env["cycle"])
    t0 = time.perf_counter()
    e_ref = mf.kernel()
    t_ref = time.perf_counter() - t0
    eri = "DF " if setup.density_fitting else "ERI"
    print(
        f"{name:<9s} nao {setup.nao:4d} {eri}  setup {t_setup:6.1f} s  "
        f"compile {t_compile:6.1f} s  warm {t_warm:7.2f} s ({int(res.scf.cycles)} cyc)  "
        f"PySCF {t_ref:7.2f} s ({len(cycles)} cyc)  ratio {t_warm / t_ref:5.2f}  "
        f"dE {float(res.e_tot) - e_ref:.1e}  conv {bool(res.converged)}",
        flush=True,
    )


def main():
    args = scf_parser(__doc__).parse_args()
    print_scf_header(args)
    for name in args.molecules:
        case(name, args.basis, args.xc, args.grid_level)


if __name__ == "__main__":
    main()
