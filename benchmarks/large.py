"""Energy and forces of a molecule of ~1000 AOs with density fitting: time and peak memory, dftad
and PySCF.

    python benchmarks/large.py                       # erythromycin, B3LYP/def2-SVP, both codes
    python benchmarks/large.py --side dftad          # one code (what ``both`` runs per process)

Each code runs in its own process, one after the other, so that each peak RSS
(``ru_maxrss``) is its own. dftad: :func:`dftad.energy.kernel_stepwise` and
:func:`dftad.forces.gradient_stepwise` from an empty compile cache (a first answer: compiling is
included, and printed apart where it can be); PySCF: ``RKS.density_fit`` with dftad's auxiliary
basis and grid level, its gradient with grid response (what dftad's forces include), its memory
budget ``max_memory`` set to ``--pyscf-memory`` MB. Prints each side's stages, then the ratio of
the wall times and the largest force difference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_dftad(args) -> dict:
    import jax

    import dftad
    from dftad import energy, forces

    t0 = time.perf_counter()
    mol = dftad.load(args.molecule)
    setup = dftad.build(mol, args.basis, args.xc, grid_level=args.grid_level, density_fit=True)
    coords = jax.device_put(mol.coords)
    t1 = time.perf_counter()
    res = energy.kernel_stepwise(setup, coords)
    t2 = time.perf_counter()
    rss_scf = peak_rss_gb()
    g = forces.gradient_stepwise(setup, coords, res.scf)
    t3 = time.perf_counter()
    return {"nao": setup.nao, "naux": setup.jk.aux.nao, "auxbasis": setup.jk.auxbasis_name,
            "e_tot": float(res.e_tot), "cycles": int(res.scf.cycles),
            "converged": bool(res.converged), "setup": t1 - t0, "scf": t2 - t1,
            "forces": t3 - t2, "total": t3 - t0, "rss_scf": rss_scf, "rss": peak_rss_gb(),
            "gradient": np.asarray(g).tolist()}


def run_pyscf(args) -> dict:
    from pyscf import dft, lib

    import dftad
    from dftad.interop.pyscf import to_pyscf_mole
    from dftad.setup import default_auxbasis

    t0 = time.perf_counter()
    mol = dftad.load(args.molecule)
    mf = dft.RKS(to_pyscf_mole(mol, args.basis))
    mf.xc = args.xc
    mf.grids.level = args.grid_level
    mf.small_rho_cutoff = 0
    mf.conv_tol, mf.conv_tol_grad = 1e-10, 1e-7  # as benchmarks/_harness.pyscf_rks
    mf = mf.density_fit(auxbasis=default_auxbasis(mol, args.basis, True))
    mf.max_memory = args.pyscf_memory
    mf.kernel()
    t1 = time.perf_counter()
    rss_scf = peak_rss_gb()
    grad = mf.nuc_grad_method()
    grad.grid_response = True
    grad.max_memory = args.pyscf_memory
    g = grad.kernel()
    t2 = time.perf_counter()
    return {"threads": lib.num_threads(), "e_tot": float(mf.e_tot), "cycles": int(mf.cycles),
            "converged": bool(mf.converged), "scf": t1 - t0, "forces": t2 - t1,
            "total": t2 - t0, "rss_scf": rss_scf, "rss": peak_rss_gb(),
            "gradient": np.asarray(g).tolist()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecule", default="erythromycin")
    ap.add_argument("--basis", default="def2-svp")
    ap.add_argument("--xc", default="b3lyp")
    ap.add_argument("--grid-level", type=int, default=3)
    ap.add_argument("--pyscf-memory", type=int, default=16000)
    ap.add_argument("--side", choices=("both", "dftad", "pyscf"), default="both")
    ap.add_argument("--out", help="write this side's results (JSON) here")
    args = ap.parse_args()
    if args.side != "both":
        out = (run_dftad if args.side == "dftad" else run_pyscf)(args)
        text = json.dumps(out)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        shown = {k: v for k, v in out.items() if k != "gradient"}
        print(args.side, json.dumps(shown), flush=True)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side in ("dftad", "pyscf"):
            path = os.path.join(tmp, f"{side}.json")
            cmd = [sys.executable, __file__, "--side", side, "--out", path, "--molecule",
                   args.molecule, "--basis", args.basis, "--xc", args.xc, "--grid-level",
                   str(args.grid_level), "--pyscf-memory", str(args.pyscf_memory)]
            subprocess.run(cmd, check=True)
            with open(path) as f:
                results[side] = json.load(f)
    ours, ref = results["dftad"], results["pyscf"]
    df = np.abs(np.asarray(ours["gradient"]) - np.asarray(ref["gradient"])).max()
    print(f"{args.molecule} {args.xc}/{args.basis} nao {ours['nao']} naux {ours['naux']}: "
          f"dftad {ours['total']:.0f} s (setup {ours['setup']:.0f}, SCF {ours['scf']:.0f} in "
          f"{ours['cycles']} cycles, forces {ours['forces']:.0f}), peak RSS {ours['rss']:.1f} GB "
          f"| PySCF {ref['total']:.0f} s (SCF {ref['scf']:.0f} in {ref['cycles']} cycles, "
          f"gradient {ref['forces']:.0f}), peak RSS {ref['rss']:.1f} GB | ratio "
          f"{ours['total'] / ref['total']:.2f} | |dE| {abs(ours['e_tot'] - ref['e_tot']):.1e} "
          f"max |dF| {df:.1e}")


if __name__ == "__main__":
    main()
