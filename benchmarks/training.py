"""The SCF-consistent parameter gradient does not depend on the SCF's path: its time and memory
after an SCF of ~10 cycles and after one of ~60 (damped, DIIS started late) are the same.

    python benchmarks/training.py [--molecule h2o] [--basis def2-svp]

The gradient (:func:`dftad.learn.params_gradient`) is evaluated at the converged density alone;
nothing of the iterations is kept or differentiated. Prints, per case: SCF cycles, the SCF's
time, the gradient's time (best of 3) and the process' peak RSS growth during the gradient.
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import numpy as np

import dftad
from dftad import learn, scf_pieces
from dftad.xc.models import B3LYP3


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecule", default="h2o")
    ap.add_argument("--basis", default="def2-svp")
    args = ap.parse_args()
    mol = dftad.load(f"molecules/w4-11/species/{args.molecule}.xyz")
    model = B3LYP3()
    theta = model.init()
    f = model.functional(theta)
    cases = {"fast (DIIS from cycle 1)": {},
             "slow (damped, DIIS from cycle 50)": {"damp": 0.8, "diis_start_cycle": 50,
                                                   "max_cycle": 200}}
    grads = []
    for label, opts in cases.items():
        sp = learn.Species.build(args.molecule, mol, f, args.basis, **opts)
        setup = sp.setup.replace(xc=f)
        p = scf_pieces.Problem(setup, sp.coords)
        t0 = time.perf_counter()
        res, st = scf_pieces.iterate(p)
        t_scf = time.perf_counter() - t0
        learn.params_gradient(p, st.dm)  # compile (first case) / warm
        before = peak_rss_mb()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            g = learn.params_gradient(p, st.dm)
            np.asarray(g["alpha"])
            times.append(time.perf_counter() - t0)
        grads.append(g)
        print(f"{label:<36s} {int(res.scf.cycles):3d} cycles, SCF {t_scf:6.2f} s | gradient "
              f"{min(times) * 1e3:7.1f} ms (best of 3), peak RSS +{peak_rss_mb() - before:.0f} MB",
              flush=True)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])))
    print(f"max |gradient difference| between the two paths: {diff:.1e}")


if __name__ == "__main__":
    main()
