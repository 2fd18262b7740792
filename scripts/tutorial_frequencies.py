"""Tutorial 4: harmonic frequencies and the infrared spectrum.

Near a minimum the energy is quadratic in the displacements: E ~ E0 + 1/2 dR^T H dR, with the
Hessian H = d^2E/dR dR (Hartree/Bohr^2). dftad computes it exactly by forward-mode automatic
differentiation of the analytic gradient, the SCF density following the geometry through the
implicit function theorem (one linear-response solve per coordinate), together with the dipole
derivatives d mu / dR (atomic units). Diagonalising the mass-weighted Hessian, with translations
and rotations projected out, gives the normal modes Q_k and their harmonic frequencies
nu_k = sqrt(k_k) / 2 pi c (cm^-1); a mode's IR intensity is
A_k = N_A / (12 eps0 c^2) |d mu / d Q_k|^2 (km/mol).

Frequencies mean something only at a stationary point, so the molecule is optimized first
(geomeTRIC, "gau_tight": largest force below 1.5e-5 Hartree/Bohr). For water at HF/3-21G (the
default) the NIST CCCBDB lists the harmonic frequencies 1800, 3811 and 3944 cm^-1
(``molecules/reference/cccbdb_water_hf_3-21g.json``); they are printed beside dftad's.

    python scripts/tutorial_frequencies.py          # water, HF/3-21G (about a minute)
    python scripts/tutorial_frequencies.py --fast   # HF/STO-3G (the tests)

Writes into ``--out``: ``ir_spectrum.png`` (Lorentzian-broadened spectrum with the stick bands,
drawn by :func:`dftad.plot.ir_spectrum`) and ``normal_modes.png`` (each mode's displacements as
arrows on the atoms, in the molecule's best plane, Angstrom).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _tutorial import ROOT, draw_atoms, fit_view, in_plane, parser, pyplot, save

import dftad
from dftad import geomopt
from dftad import plot as dftad_plot

CCCBDB = ROOT / "molecules" / "reference" / "cccbdb_water_hf_3-21g.json"


def parse_args(argv=None):
    p = parser(__doc__, "HF/STO-3G (the tests)")
    p.add_argument("--molecule", default="water", help="shipped molecule or .xyz file")
    return p.parse_args(argv)


def plot_modes(mol, vib, title, path, most=6):
    """The normal modes (at most ``most``, the most intense) as arrows on the atoms."""
    plt = pyplot()

    shown = np.sort(np.argsort(vib.ir_intensities_km_mol)[::-1][:most])
    axes, xy = in_plane(mol.coords)  # xy in Angstrom
    fig, panels = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.8), squeeze=False)
    for ax, k in zip(panels[0], shown):
        arrows = vib.modes[k] @ axes.T
        arrows *= 0.6 / np.abs(arrows).max()  # the longest arrow is 0.6 Angstrom
        draw_atoms(ax, xy, mol.symbols, size=500)
        ax.quiver(xy[:, 0], xy[:, 1], arrows[:, 0], arrows[:, 1], angles="xy",
                  scale_units="xy", scale=1, color="tab:purple", width=0.015, zorder=3)
        fit_view(ax, xy, xy + arrows)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{vib.frequencies_cm1[k]:.0f} cm$^{{-1}}$, "
                     f"{vib.ir_intensities_km_mol[k]:.1f} km/mol", fontsize=10)
    fig.suptitle(title)
    save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    basis, xc = ("sto-3g", "hf") if args.fast else ("3-21g", "hf")
    dftad.enable_compilation_cache()

    mol = dftad.load(args.molecule)
    opt = dftad.optimize(mol, basis, xc, convergence="gau_tight")
    mol = opt.mol
    max_force, _ = geomopt.force_stats(opt.result.forces)  # Hartree/Bohr
    print(f"{args.molecule} {xc.upper()}/{basis}: optimized in {opt.steps} steps, "
          f"E = {opt.e_tot:.10f} Hartree, largest force {max_force:.1e} Hartree/Bohr")

    setup = dftad.build(mol, basis, xc, conv_tol=1e-12, conv_tol_grad=1e-9)
    d = jax.jit(dftad.second_derivatives)(setup, jnp.asarray(mol.coords))
    vib = dftad.harmonic_analysis(d.hessian, mol.coords, mol.masses, d.dipole_derivative)
    freqs, intensities = vib.frequencies_cm1, vib.ir_intensities_km_mol
    print(f"{len(freqs)} vibrations (3N - 6 = {3 * mol.natm - 6} for a nonlinear molecule)")
    print(f"{'mode':>4s} {'cm-1':>10s} {'km/mol':>10s} {'reduced mass (amu)':>19s}")
    for k, (f, a, m) in enumerate(zip(freqs, intensities, vib.reduced_masses)):
        print(f"{k + 1:4d} {f:10.1f} {a:10.2f} {m:19.4f}")
    hess = np.asarray(d.hessian).reshape(3 * mol.natm, 3 * mol.natm)
    print(f"Hessian asymmetry {np.abs(hess - hess.T).max():.1e} Hartree/Bohr^2, "
          f"dipole {np.linalg.norm(np.asarray(d.dipole)):.4f} a.u.")
    if args.molecule == "water" and (xc, basis) == ("hf", "3-21g"):
        ref = json.loads(CCCBDB.read_text())["frequencies_cm1"]
        print("CCCBDB (cm-1):", " ".join(f"{f:.0f}" for f in ref),
              "| dftad - CCCBDB:", " ".join(f"{a - b:+.1f}" for a, b in zip(freqs, ref)))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spectrum, modes = out / "ir_spectrum.png", out / "normal_modes.png"
    title = f"{args.molecule}, {xc.upper()}/{basis}"
    dftad_plot.ir_spectrum(freqs, intensities, spectrum, title=title)
    plot_modes(mol, vib, f"normal modes of {title}", modes)
    print(f"wrote {spectrum} and {modes}")
    return {"frequencies_cm1": freqs, "ir_intensities_km_mol": intensities, "natm": mol.natm,
            "max_force": max_force, "pictures": [spectrum, modes]}


if __name__ == "__main__":
    main()
