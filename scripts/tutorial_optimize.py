"""Tutorial 2: a geometry optimization, step by step.

A minimum of the energy E(R) is a geometry where every force F_A = -dE/dR_A vanishes.
geomeTRIC (the optimizer PySCF uses) proposes the steps in internal coordinates (bonds, angles,
dihedrals); each step is one dftad SCF, started from the previous step's density, and its
analytic forces. The optimization stops when geomeTRIC's "gau" criteria hold together: energy
change below 1e-6 Hartree, largest atomic force below 4.5e-4 Hartree/Bohr (RMS 3e-4), largest
step below 1.8e-3 Angstrom (RMS 1.2e-3).

The start is the shipped geometry with every atom moved 0.1 Angstrom in a random (seeded)
direction. Energies are in Hartree and forces in Hartree/Bohr; geometries are Bohr inside and
written in Angstrom.

    python scripts/tutorial_optimize.py                      # water, B3LYP/def2-SVP (1-2 minutes)
    python scripts/tutorial_optimize.py --molecule ethanol   # a larger one
    python scripts/tutorial_optimize.py --fast               # HF/STO-3G (seconds; the tests)

Writes ``optimize.png`` into ``--out``: the energy above the final one and the largest force at
each step, with the force threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _tutorial import parser, pyplot, save

import dftad
from dftad.constants import ANGSTROM_BOHR, BOHR_ANGSTROM


def parse_args(argv=None):
    p = parser(__doc__, "HF/STO-3G: seconds (the tests)")
    p.add_argument("--molecule", default="water", help="shipped molecule or .xyz file")
    p.add_argument("--distortion", type=float, default=0.1,
                   help="how far each atom is moved from the shipped geometry (Angstrom)")
    p.add_argument("--seed", type=int, default=7, help="seed of the random directions")
    return p.parse_args(argv)


def distorted(mol, distance, seed):
    """``mol`` with every atom moved ``distance`` Angstrom in a random direction."""
    rng = np.random.default_rng(seed)
    step = rng.normal(size=mol.coords.shape)
    step *= distance * ANGSTROM_BOHR / np.linalg.norm(step, axis=1, keepdims=True)
    return mol.with_coords(mol.coords + step)  # Bohr


def gau_thresholds():
    """geomeTRIC's "gau" criteria: (energy change in Hartree, max force in Hartree/Bohr)."""
    from geometric.params import OptParams

    params = OptParams(convergence_set="GAU")
    return params.Convergence_energy, params.Convergence_gmax


def plot(steps, energies, max_forces, rms_forces, threshold, title, path):
    plt = pyplot()

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 6), sharex=True)
    above = energies - energies[-1]
    shown = above > 0  # the last step is the reference (0 on a log scale is off the axis)
    top.semilogy(steps[shown], above[shown], "o-", color="tab:blue")
    top.set_ylabel("E - E(final) (Hartree)")
    top.set_title(title)
    bottom.semilogy(steps, max_forces, "o-", color="tab:red", label="largest atomic force")
    bottom.semilogy(steps, rms_forces, "s--", color="tab:orange", ms=4, label="RMS force")
    bottom.axhline(threshold, color="black", ls=":", label=f"threshold {threshold:.1e}")
    bottom.set_ylabel("force (Hartree/Bohr)")
    bottom.set_xlabel("optimization step (one SCF and its forces)")
    bottom.legend()
    save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    basis, xc = ("sto-3g", "hf") if args.fast else ("def2-svp", "b3lyp")
    dftad.enable_compilation_cache()

    mol = distorted(dftad.load(args.molecule), args.distortion, args.seed)
    print(f"{args.molecule} {xc}/{basis}, every atom moved {args.distortion} Angstrom:")
    print(f"{'step':>4s} {'E (Hartree)':>18s} {'dE':>10s} {'max|F| (Ha/Bohr)':>17s}")
    opt = dftad.optimize(mol, basis, xc, callback=lambda s: print(
        f"{s.step:4d} {s.e_tot:18.10f} {s.e_change:10.2e} {s.max_force:17.2e}"))
    steps = np.array([s.step for s in opt.trajectory])
    energies = np.array([s.e_tot for s in opt.trajectory])  # Hartree
    max_forces = np.array([s.max_force for s in opt.trajectory])  # Hartree/Bohr
    rms_forces = np.array([s.rms_force for s in opt.trajectory])
    _, threshold = gau_thresholds()
    print(f"converged: {opt.converged} in {opt.steps} steps; E = {opt.e_tot:.10f} Hartree, "
          f"{energies[0] - opt.e_tot:.2e} Hartree below the start")
    print("optimized geometry (Angstrom):")
    for s, xyz in zip(opt.mol.symbols, opt.mol.coords * BOHR_ANGSTROM):
        print(f"  {s:2s} {xyz[0]:12.6f} {xyz[1]:12.6f} {xyz[2]:12.6f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "optimize.png"
    plot(steps, energies, max_forces, rms_forces, threshold,
         f"{args.molecule}, {xc.upper()}/{basis}: {opt.steps} steps", path)
    print(f"wrote {path}")
    return {"converged": opt.converged, "energies": energies, "max_forces": max_forces,
            "force_threshold": threshold, "final": opt.mol, "pictures": [path]}


if __name__ == "__main__":
    main()
