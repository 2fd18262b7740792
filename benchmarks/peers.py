"""dftad against its peers on one job: B3LYP/def2-SVP energy and forces (grid level 3), each
code in fresh processes on the same machine, one after another.

    python benchmarks/peers.py [--molecules water ethanol] [--pyscfad-python PATH]

For each molecule and code, one new Python process runs the job twice:

* ``first``: the time from the process's start to the first energy and forces (imports,
  setup, compilation, SCF, gradient); for dftad with an empty compile cache, and once more in
  a second process with the cache the first one wrote (``cached``);
* ``warm``: the same job again in the same process (for dftad and pyscfad: compiled or traced
  programs kept in memory).

Codes: dftad (``dftad.run(..., forces=True)``, the README job's path), PySCF (``dft.RKS`` and its
analytic gradient with grid response) and pyscfad (``jax.value_and_grad`` of its RKS energy with
respect to the molecule; its grid is not differentiated, so its forces lack the grid response).
pyscfad runs in the interpreter ``--pyscfad-python`` (default: this one), and is left out with a
note where it is not installed there (``pip install pyscfad``; it pins PySCF and JAX versions, so
a separate virtual environment is the safe place). The largest force difference from PySCF's
is printed for each code. The table is what README.md's benchmark table is made of.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# each job: argv[1] the molecule's xyz path; prints one JSON line with its timings and results
COMMON = """
import json, sys, time
t_start = time.perf_counter()
BOHR = 0.52917721092  # Angstrom
lines = open(sys.argv[1]).read().splitlines()
atoms = [(ln.split()[0], tuple(float(x) / BOHR for x in ln.split()[1:4]))
         for ln in lines[2:2 + int(lines[0])]]  # Bohr
def report(first, warm, e, forces):
    print("RESULT " + json.dumps({"first": first, "warm": warm, "e": float(e),
                                  "forces": [[float(x) for x in row] for row in forces]}))
"""

# each job defines job() -> (energy, forces) and ends with this: the first answer, then again
TWICE = """
e, f = job()
first = time.perf_counter() - t_start
t0 = time.perf_counter()
job()
report(first, time.perf_counter() - t0, e, f)
"""

DFTAD_JOB = COMMON + """
import numpy as np
import dftad
dftad.enable_compilation_cache()  # as the dftad command does (DFTAD_CACHE_DIR)
mol = dftad.load(sys.argv[1])
def job():
    res = dftad.run(mol, "def2-svp", "b3lyp", forces=True)
    assert bool(res.converged)
    return res.e_tot, np.asarray(res.forces)
""" + TWICE

PYSCF_JOB = COMMON + """
from pyscf import dft, gto
def job():
    pmol = gto.M(atom=atoms, unit="Bohr", basis="def2-svp", verbose=0)
    mf = dft.RKS(pmol)
    mf.xc, mf.grids.level, mf.conv_tol, mf.conv_tol_grad = "b3lyp", 3, 1e-10, 1e-7
    mf.kernel()
    assert mf.converged
    g = mf.nuc_grad_method()
    g.grid_response = True
    return mf.e_tot, -g.kernel()
""" + TWICE

PYSCFAD_JOB = COMMON + """
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
from pyscfad import dft, gto
def job():
    pmol = gto.Mole()
    pmol.atom, pmol.unit, pmol.basis, pmol.verbose = atoms, "Bohr", "def2-svp", 0
    pmol.build(trace_exp=False, trace_ctr_coeff=False)
    def energy(m):
        mf = dft.RKS(m, xc="b3lyp")
        mf.grids.level, mf.conv_tol, mf.conv_tol_grad = 3, 1e-10, 1e-7
        return mf.kernel()
    e, g = jax.value_and_grad(energy)(pmol)
    return float(e), -np.asarray(g.coords)
""" + TWICE


class JobFailed(RuntimeError):
    """A job that ended with an error or was killed (its message says which)."""


def run(python, script, xyz, env):
    """The job's RESULT dict (``first``: seconds from the script's start to its first answer,
    ``warm``: the second answer's); :class:`JobFailed` when the job fails."""
    out = subprocess.run([python, "-c", script, xyz], env=env, capture_output=True, text=True,
                         cwd=ROOT)
    if out.returncode == -9:
        raise JobFailed("killed (SIGKILL: out of memory on this machine)")
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        raise JobFailed(f"failed (exit status {out.returncode})")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def has_pyscfad(python) -> bool:
    return subprocess.run([python, "-c", "import pyscfad"], capture_output=True).returncode == 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecules", nargs="+", default=["water", "ethanol"])
    ap.add_argument("--pyscfad-python", default=sys.executable,
                    help="Python interpreter with pyscfad installed")
    args = ap.parse_args(argv)
    import numpy as np

    print(f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    with_pyscfad = has_pyscfad(args.pyscfad_python)
    if not with_pyscfad:
        print(f"pyscfad is not importable by {args.pyscfad_python}: left out", flush=True)
    print("| molecule | code | first answer (fresh process) | with the compile cache | "
          "warm (same process) | max abs(F - F_PySCF) |")
    print("|---|---|---|---|---|---|")
    for name in args.molecules:
        xyz = os.path.join(ROOT, "molecules", f"{name}.xyz")
        ref = None
        for code in ("PySCF", "dftad", "pyscfad"):
            cached = None
            try:
                if code == "PySCF":
                    res = run(sys.executable, PYSCF_JOB, xyz, dict(os.environ))
                    ref = np.asarray(res["forces"])
                elif code == "dftad":
                    with tempfile.TemporaryDirectory() as cache:
                        env = dict(os.environ, DFTAD_CACHE_DIR=os.path.join(cache, "xla"))
                        res = run(sys.executable, DFTAD_JOB, xyz, env)
                        cached = f"{run(sys.executable, DFTAD_JOB, xyz, env)['first']:.1f} s"
                elif with_pyscfad:
                    res = run(args.pyscfad_python, PYSCFAD_JOB, xyz, dict(os.environ))
                else:
                    continue
            except JobFailed as err:
                print(f"| {name} | {code} | {err} | | | |", flush=True)
                continue
            df = np.abs(np.asarray(res["forces"]) - ref).max() if ref is not None else np.nan
            print(f"| {name} | {code} | {res['first']:.1f} s | {cached or '-'} | "
                  f"{res['warm']:.2f} s | {df:.1e} |", flush=True)

if __name__ == "__main__":
    main()
