"""Time to first answer: whole ``dftad`` commands in fresh processes, against PySCF's time for
the same job (also a fresh process).

    python benchmarks/startup.py [--new methanol]

Cases, one after another, each a new Python process:

1. the README's main job, ``dftad energy molecules/water.xyz --forces`` (B3LYP/def2-SVP), with
   an empty compile cache;
2. the same again, with the cache the first run wrote;
3. ``dftad energy NEW --forces`` for a molecule never run before (default methanol), with
   only the water run's cache;
4. PySCF: the same energy and forces (RKS B3LYP/def2-SVP, grid level 3, gradient with grid
   response), one process per molecule.

Prints the wall time of each process and the timings line dftad itself prints (setup, scf,
compile, forces). The cache lives in a temporary directory, never in ``~/.cache``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PYSCF_JOB = """
import sys
from pyscf import dft, gto
import dftad
from dftad.interop.pyscf import to_pyscf_mole
mf = dft.RKS(to_pyscf_mole(dftad.load(sys.argv[1]), "def2-svp"))
mf.xc, mf.grids.level, mf.conv_tol, mf.conv_tol_grad = "b3lyp", 3, 1e-10, 1e-7
mf.kernel()
g = mf.nuc_grad_method()
g.grid_response = True
g.kernel()
print(f"E = {mf.e_tot:.10f}")
"""


def wall(cmd, env) -> tuple[float, str]:
    """(wall seconds, stdout) of one process; raises with its stderr when it fails."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    return dt, out.stdout


def dftad_line(stdout: str) -> str:
    lines = [ln for ln in stdout.splitlines() if ln.startswith(("E_tot", "timings"))]
    return " | ".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new", default="methanol", help="the molecule never run before")
    args = ap.parse_args()
    dftad_cmd = [sys.executable, "-m", "dftad.cli", "energy"]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, DFTAD_CACHE_DIR=os.path.join(cache, "xla"))
        cases = [
            ("water, empty cache", dftad_cmd + ["molecules/water.xyz", "--forces"]),
            ("water, cached", dftad_cmd + ["molecules/water.xyz", "--forces"]),
            (f"{args.new}, water's cache", dftad_cmd + [args.new, "--forces"]),
        ]
        for label, cmd in cases:
            t, out = wall(cmd, env)
            print(f"dftad {label:<28s} {t:7.1f} s wall   {dftad_line(out)}", flush=True)
    for name in ("water", args.new):
        t, out = wall([sys.executable, "-c", PYSCF_JOB, name], dict(os.environ))
        print(f"PySCF {name:<28s} {t:7.1f} s wall   {out.strip()}", flush=True)


if __name__ == "__main__":
    main()
