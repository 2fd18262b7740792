"""Tutorial 1: the energy and the forces of a molecule, checked against PySCF.

The Kohn-Sham SCF finds the density D* that makes the energy stationary at the nuclear positions
R (Bohr); its energy E(R) is in Hartree. The forces are F_A = -dE/dR_A (Hartree/Bohr): dftad
takes them from the converged density in one reverse pass through the integrals, the grid and
the functional (the moving grid's response included), so the SCF itself is never
differentiated.

Two laws every force field of an isolated molecule obeys are printed as checks: the forces sum
to zero (moving the whole molecule changes nothing: translational invariance) and so do their
torques sum_A R_A x F_A (rotating it changes nothing; exact for Hartree-Fock, and for DFT up to
the small error of a grid that does not turn with the molecule). PySCF, run independently on
the same molecule, basis, functional and grid, gives the reference energy and gradient.

    python scripts/tutorial_energy_forces.py            # water, B3LYP/def2-SVP (under a minute)
    python scripts/tutorial_energy_forces.py --fast     # HF/STO-3G (seconds; what the tests run)

Writes ``energy_forces.png`` into ``--out``: the molecule in its best plane with the force on each
atom drawn as an arrow, and the Cartesian components of the forces per atom.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _tutorial import draw_atoms, fit_view, in_plane, parser, pyplot, save

import dftad
from dftad.interop.pyscf import mean_field


def parse_args(argv=None):
    p = parser(__doc__, "HF/STO-3G: seconds (the tests)")
    p.add_argument("--molecule", default="water", help="shipped molecule or .xyz file")
    return p.parse_args(argv)


def pyscf_energy_and_forces(mol, basis, xc, grid_level):
    """PySCF's SCF energy (Hartree) and analytic forces (Hartree/Bohr, grid response included)
    for the same molecule, basis, functional and grid as dftad."""
    mf = mean_field(mol, basis, xc, grid_level)
    mf.conv_tol = 1e-11
    e_tot = mf.kernel()
    grad = mf.nuc_grad_method()
    if xc != "hf":
        grad.grid_response = True
    return float(e_tot), -np.asarray(grad.kernel())


def plot(mol, forces, title, path):
    plt = pyplot()

    axes, xy = in_plane(mol.coords)  # xy in Angstrom
    fxy = forces @ axes.T  # Hartree/Bohr, in the same plane
    scale = 0.5 / max(np.abs(fxy).max(), 1e-12)  # the longest arrow is 0.5 Angstrom
    labels = [f"{s}{i + 1}" for i, s in enumerate(mol.symbols)]

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    draw_atoms(left, xy, mol.symbols, labels)
    arrows = fxy * scale
    left.quiver(xy[:, 0], xy[:, 1], arrows[:, 0], arrows[:, 1], angles="xy",
                scale_units="xy", scale=1, color="tab:orange", width=0.012, zorder=4)
    fit_view(left, xy, xy + arrows)
    left.set_xlabel("Å (best plane of the atoms)")
    left.set_title(f"forces (longest arrow {np.abs(fxy).max():.2e} Hartree/Bohr)")

    width = 0.25
    idx = np.arange(mol.natm)
    for k, (axis, color) in enumerate(zip("xyz", ("tab:blue", "tab:orange", "tab:green"))):
        right.bar(idx + (k - 1) * width, forces[:, k], width, label=f"$F_{axis}$", color=color)
    right.axhline(0.0, color="black", lw=0.8)
    right.set_xticks(idx, labels)
    right.set_ylabel("force (Hartree/Bohr)")
    right.set_title("force components per atom")
    right.legend()
    fig.suptitle(title)
    save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    basis, xc = ("sto-3g", "hf") if args.fast else ("def2-svp", "b3lyp")
    grid_level = 3
    dftad.enable_compilation_cache()  # a second run loads the compiled programs from disk

    mol = dftad.load(args.molecule)
    res = dftad.run(mol, basis, xc, forces=True, grid_level=grid_level, conv_tol=1e-11)
    e_tot = float(res.e_tot)
    forces = np.asarray(res.forces)  # (natm, 3) Hartree/Bohr, -dE/dR
    print(f"{args.molecule} {xc.upper()}/{basis}: E = {e_tot:.10f} Hartree "
          f"(converged: {bool(res.converged)})")
    for name, value in res.components._asdict().items():
        print(f"  {name:8s} {float(value):18.10f}")
    print("forces (Hartree/Bohr):")
    for i, (s, f) in enumerate(zip(mol.symbols, forces)):
        print(f"  {s}{i + 1:<3d} {f[0]:14.8f} {f[1]:14.8f} {f[2]:14.8f}")

    net_force = forces.sum(axis=0)
    net_torque = np.cross(mol.coords, forces).sum(axis=0)
    print(f"sum of forces  {np.abs(net_force).max():.1e} Hartree/Bohr (translations: 0)")
    print(f"sum of torques {np.abs(net_torque).max():.1e} Hartree (rotations: 0)")

    e_ref, forces_ref = pyscf_energy_and_forces(mol, basis, xc, grid_level)
    print(f"PySCF: E = {e_ref:.10f} Hartree, dE = {e_tot - e_ref:.1e}, "
          f"max |F - F_PySCF| = {np.abs(forces - forces_ref).max():.1e} Hartree/Bohr")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "energy_forces.png"
    plot(mol, forces, f"{args.molecule}, {xc.upper()}/{basis}: E = {e_tot:.6f} Hartree", path)
    print(f"wrote {path}")
    return {"e_tot": e_tot, "e_pyscf": e_ref, "forces": forces, "forces_pyscf": forces_ref,
            "net_force": net_force, "net_torque": net_torque, "pictures": [path]}


if __name__ == "__main__":
    main()
