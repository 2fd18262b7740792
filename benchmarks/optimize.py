"""Geometry optimizations: dftad + geomeTRIC (and dftad + ASE BFGS, dftad's JAX BFGS) against
PySCF + geomeTRIC, from the same start, with the same method and criteria (GAU).

    python benchmarks/optimize.py [--basis sto-3g] [--xc hf] [--molecules water ammonia ...]

Per molecule: the energy and gradient evaluations each optimizer took, the final energies and
their difference, the largest difference of interatomic distances (A) between dftad's and
PySCF's minimum, and the wall time of the whole optimization (dftad's compile included: each
molecule is new to the process, so each compiles; ``compile`` is the first step's time, most
of which is compiling). Cases: the shipped geometries, a water with one O-H bond stretched to
1.5 A (far from the minimum) and a pyramidal methyl radical (UHF).

``--baker``: Baker's 30-molecule set (``molecules/baker/``, RHF/STO-3G) instead, with a count of
the molecules whose dftad + geomeTRIC energy equals PySCF + geomeTRIC's to 1e-5 Ha and the wall
time of the whole set for each optimizer.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

import dftad
from dftad.constants import BOHR_ANGSTROM

DEFAULT = ["water", "ammonia", "ethanol", "methyl_radical", "water_stretched"]


BAKER = sorted((pathlib.Path(__file__).resolve().parents[1] / "molecules" / "baker")
               .glob("*.xyz"))


def molecule(name):
    if name.endswith(".xyz"):
        return dftad.load(name)
    if name == "water_stretched":
        mol = dftad.load("water")
        c = np.array(mol.coords)
        d = c[1] - c[0]
        c[1] = c[0] + d / np.linalg.norm(d) * 1.5 / BOHR_ANGSTROM
        return mol.with_coords(c)
    mol = dftad.load(name)
    if name == "methyl_radical":  # planar in G2; pyramidal start (planar is a saddle at UHF)
        c = np.array(mol.coords)
        c[0, 2] += 0.3
        mol = mol.with_coords(c)
    return mol


def distances(coords):
    c = np.asarray(coords)
    return np.linalg.norm(c[:, None] - c[None], axis=-1) * BOHR_ANGSTROM


def run_pyscf(mol, basis, xc):
    from pyscf import dft, gto, scf
    from pyscf.geomopt.geometric_solver import optimize

    pmol = gto.M(atom=mol.to_pyscf_atom(), unit="bohr", basis=basis, charge=mol.charge,
                 spin=mol.spin, verbose=0)
    if xc == "hf":
        mf = scf.UHF(pmol) if mol.spin else scf.RHF(pmol)
    else:
        mf = dft.UKS(pmol) if mol.spin else dft.RKS(pmol)
        mf.xc = xc
    mf.conv_tol = 1e-10
    steps = []
    t0 = time.perf_counter()
    popt = optimize(mf, callback=lambda env: steps.append(float(env["energy"])))
    wall = time.perf_counter() - t0
    final = mf.__class__(popt)  # the energy at the final structure (not the last evaluation's)
    if xc != "hf":
        final.xc = xc
    return final.run(conv_tol=1e-10).e_tot, popt.atom_coords(), len(steps), wall


def run_dftad(mol, basis, xc, optimizer):
    times = []
    t0 = time.perf_counter()
    opt = dftad.optimize(mol, basis, xc, optimizer=optimizer,
                         callback=lambda s: times.append(time.perf_counter() - t0))
    return opt, time.perf_counter() - t0, times[0]


def cartesian(mol, args, optimizer, skip):
    """(steps, wall time) of dftad with a Cartesian BFGS (``"ase-bfgs"`` or ``"jax"``); steps
    marked ``!`` when it did not converge, ``-`` when skipped."""
    if skip:
        return "-", float("nan")
    t0 = time.perf_counter()
    opt = dftad.optimize(mol, args.basis, args.xc, optimizer=optimizer)
    return (str(opt.steps) if opt.converged else f"{opt.steps}!"), time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--basis", default="sto-3g")
    p.add_argument("--xc", default="hf")
    p.add_argument("--molecules", nargs="+", default=DEFAULT)
    p.add_argument("--no-ase", action="store_true", help="skip dftad + ASE BFGS")
    p.add_argument("--no-jax", action="store_true", help="skip dftad's JAX BFGS")
    p.add_argument("--baker", action="store_true", help="Baker's set (RHF/STO-3G)")
    args = p.parse_args()
    if args.baker:
        args.molecules, args.basis, args.xc = [str(f) for f in BAKER], "sto-3g", "hf"
    agree, totals = 0, np.zeros(4)
    print(f"{args.xc}/{args.basis}, GAU criteria; steps = energy+gradient evaluations")
    print(f"{'molecule':24s} {'dftad':>5s} {'ase':>4s} {'jax':>4s} {'pyscf':>5s}  "
          f"{'E dftad (Eh)':>16s} {'dE vs pyscf':>11s} {'max dR (A)':>10s}  {'dftad s':>7s} "
          f"{'compile':>7s} {'ase s':>6s} {'jax s':>6s} {'pyscf s':>7s}")
    bar = _progress(len(args.molecules))
    for name in args.molecules:
        bar.set_description(pathlib.Path(name).stem)
        mol = molecule(name)
        name = pathlib.Path(name).stem
        opt, wall, first = run_dftad(mol, args.basis, args.xc, "geometric")
        ase_steps, ase_wall = cartesian(mol, args, "ase-bfgs", args.no_ase)
        jax_steps, jax_wall = cartesian(mol, args, "jax", args.no_jax)
        e_ref, coords_ref, steps_ref, wall_ref = run_pyscf(mol, args.basis, args.xc)
        dr = np.abs(distances(opt.mol.coords) - distances(coords_ref)).max()
        flag = "" if opt.converged else " (not converged)"
        agree += opt.converged and abs(opt.e_tot - e_ref) < 1e-5
        totals += (wall, ase_wall, jax_wall, wall_ref)
        print(f"{name[:24]:24s} {opt.steps:5d} {ase_steps:>4s} {jax_steps:>4s} {steps_ref:5d}  "
              f"{opt.e_tot:16.10f} {opt.e_tot - e_ref:11.2e} {dr:10.2e}  {wall:7.1f} {first:7.1f} "
              f"{ase_wall:6.1f} {jax_wall:6.1f} {wall_ref:7.1f}{flag}", flush=True)
        bar.update()
    bar.close()
    print(f"{agree} of {len(args.molecules)} at PySCF + geomeTRIC's energy (1e-5 Ha); wall time "
          f"of the set: dftad + geomeTRIC {totals[0]:.0f} s, dftad + ASE {totals[1]:.0f} s, "
          f"dftad JAX BFGS {totals[2]:.0f} s, PySCF + geomeTRIC {totals[3]:.0f} s")


def _progress(total: int):
    """A progress bar over the molecules on stderr, so that the table on stdout stays clean."""
    from tqdm import tqdm

    return tqdm(total=total, unit="molecule", file=sys.stderr, dynamic_ncols=True)


if __name__ == "__main__":
    main()
