"""Many molecules in one process: B3LYP/def2-SVP energies and forces of 20 shipped closed-shell
molecules (H, C, N, O; up to 10 atoms) through the public API (``dftad.run``), against PySCF's
time for the same 20 jobs, with the number of XLA compilations each molecule adds.

    python benchmarks/sweep.py [--molecules water methanol ...]

dftad runs first, from an empty in-memory cache (no on-disk cache), so the first molecule pays
for the shared pieces and each later one only for what it does not share (its size bucket's
first visit, and what is still compiled per molecule). PySCF: RKS, grid level 3, gradient with
grid response, one fresh object per molecule. Energies are compared (|dE|).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
from _harness import best_of, pyscf_rks

import dftad
from dftad import scf_pieces

MOLECULES = (
    "water", "hydrogen", "nitrogen", "carbon_monoxide", "hydroxide", "ammonia", "hydronium",
    "methane", "ammonium", "acetylene", "formaldehyde", "methanol", "formic_acid", "ethylene",
    "baker/08_methylamine", "baker/03_ethane", "urea", "ethanol", "acetone", "glycine",
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMPILES = [0]


def _count(event: str, duration: float, **_) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES[0] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecules", nargs="+", default=MOLECULES)
    args = ap.parse_args()
    jax.monitoring.register_event_duration_secs_listener(_count)
    mols = [dftad.load(os.path.join(ROOT, "molecules", f"{m}.xyz") if "/" in m else m)
            for m in args.molecules]
    print(f"{'molecule':<22s} {'natm':>4s} {'nao':>4s} {'bucket':>6s} {'dftad s':>8s} "
          f"{'compiles':>8s} {'PySCF s':>8s} {'|dE| Ha':>9s}", flush=True)
    total_d = total_p = 0.0
    for name, mol in zip(args.molecules, mols):
        before = COMPILES[0]
        t0 = time.perf_counter()
        res = dftad.run(mol, "def2-svp", "b3lyp", forces=True)
        jax.block_until_ready(res.forces)
        t_d = time.perf_counter() - t0
        added = COMPILES[0] - before
        setup = dftad.build(mol, "def2-svp", "b3lyp")

        def job(mol=mol, setup=setup):
            mf = pyscf_rks(mol, "def2-svp", "b3lyp", 3, setup)
            mf.kernel()
            g = mf.nuc_grad_method()
            g.grid_response = True
            g.kernel()
            return mf

        t_p, mf = best_of(job, 1)
        total_d, total_p = total_d + t_d, total_p + t_p
        print(f"{name:<22s} {mol.natm:>4d} {setup.nao:>4d} {scf_pieces.nao_bucket(setup.nao):>6d} "
              f"{t_d:>8.1f} {added:>8d} {t_p:>8.1f} {abs(float(res.e_tot) - mf.e_tot):>9.1e}",
              flush=True)
    print(f"total: dftad {total_d:.1f} s, PySCF {total_p:.1f} s, ratio {total_d / total_p:.2f}; "
          f"{COMPILES[0]} XLA compilations", flush=True)
    return np.array([total_d, total_p])


if __name__ == "__main__":
    main()
