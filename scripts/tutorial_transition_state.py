"""Tutorial 3: the transition state of HCN <-> HNC and its imaginary mode.

A transition state is a first-order saddle point of the energy E(R): the forces vanish, and the
Hessian d^2E/dR dR (Hartree/Bohr^2) has exactly one negative eigenvalue, along the reaction
coordinate. geomeTRIC searches for it (``transition=True``) starting from dftad's exact Hessian
(automatic differentiation through the implicit SCF); at the end the Hessian is computed again
and diagonalised with the nuclear masses (translations and rotations projected out): the
harmonic frequencies nu_k = sqrt(k_k / mu_k) / 2 pi c in cm^-1, where a negative curvature
gives an imaginary frequency (printed as a negative number).

For HCN <-> HNC the imaginary mode moves the hydrogen around the C-N bond, from the carbon
towards the nitrogen. The start is geomeTRIC's own example (``examples/0-performance-tests/
hcn-hnc-ts/start.xyz``, BSD-3-Clause), a T-shaped guess.

    python scripts/tutorial_transition_state.py          # HF/3-21G (about a minute)
    python scripts/tutorial_transition_state.py --fast   # HF/STO-3G (about a minute)

Writes ``transition_state.png`` into ``--out``: the saddle point with the imaginary mode drawn
as arrows on its atoms (Angstrom, in the molecule's plane), and the energy and the largest force
at each step of the search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _tutorial import draw_atoms, fit_view, in_plane, parser, pyplot, save

import dftad
from dftad.constants import BOHR_ANGSTROM

START = """
C     0.0000000000     0.0000000000     0.0000000000
N     0.0000000000     0.0000000000     1.1483800000
H    -1.5853600000     0.0000000000     1.1483800000
"""  # Angstrom; geomeTRIC's hcn-hnc-ts start.xyz


def parse_args(argv=None):
    p = parser(__doc__, "HF/STO-3G (the tests)")
    return p.parse_args(argv)


def plot(ts, mode, freq, trajectory, title, path):
    plt = pyplot()

    axes, xy = in_plane(ts.coords)  # xy in Angstrom
    arrows = mode @ axes.T
    arrows *= 0.7 / np.abs(arrows).max()  # the longest arrow is 0.7 Angstrom
    # which way along the mode the hydrogen nears the carbon (HCN) or the nitrogen (HNC)
    c, h = ts.symbols.index("C"), ts.symbols.index("H")
    towards_c = np.dot(mode[h] - mode[c], ts.coords[c] - ts.coords[h]) > 0

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, j in ((0, 1), (0, 2), (1, 2)):  # the triangle, faint
        left.plot(*xy[[i, j]].T, color="0.8", lw=1, zorder=1)
    draw_atoms(left, xy, ts.symbols, ts.symbols, offset=18, fontsize=10)
    for sign, color in ((1, "tab:purple"), (-1, "tab:green")):
        left.quiver(xy[:, 0], xy[:, 1], sign * arrows[:, 0], sign * arrows[:, 1], angles="xy",
                    scale_units="xy", scale=1, color=color, width=0.012, zorder=4,
                    label=f"towards {'HCN' if (sign > 0) == towards_c else 'HNC'}")
    fit_view(left, xy, xy + arrows, xy - arrows)
    left.set_xlabel("Å (plane of the molecule)")
    left.legend(loc="lower left", fontsize=8)
    left.set_title(f"the imaginary mode, {abs(freq):.0f}i cm$^{{-1}}$")

    steps = [s.step for s in trajectory]
    energies = np.array([s.e_tot for s in trajectory])
    right.plot(steps, energies - energies[-1], "o-", color="tab:blue")
    right.set_xlabel("step of the search (one SCF and its forces)")
    right.xaxis.get_major_locator().set_params(integer=True)
    right.set_ylabel("E - E(saddle) (Hartree)", color="tab:blue")
    twin = right.twinx()
    twin.semilogy(steps, [s.max_force for s in trajectory], "s--", color="tab:red", ms=4)
    twin.set_ylabel("largest atomic force (Hartree/Bohr)", color="tab:red")
    right.set_title("the search")
    fig.suptitle(title)
    save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    basis, xc = ("sto-3g", "hf") if args.fast else ("3-21g", "hf")
    dftad.enable_compilation_cache()

    start = dftad.load(START)
    # hessian="first+last": the exact Hessian starts the search and gives the frequencies at the end
    opt = dftad.optimize(start, basis, xc, transition=True, hessian="first+last")
    vib = opt.vibrations
    freqs = vib.frequencies_cm1  # ascending: an imaginary one (negative) comes first
    k = int(np.argmin(freqs))
    mode = vib.modes[k]  # (natm, 3) Cartesian displacements of the imaginary mode
    print(f"HCN <-> HNC, {xc.upper()}/{basis}: converged {opt.converged} in {opt.steps} steps, "
          f"E = {opt.e_tot:.10f} Hartree")
    print("frequencies (cm-1, imaginary ones negative): "
          + " ".join(f"{f:.1f}" for f in freqs))
    print(f"imaginary frequency: {abs(freqs[k]):.1f}i cm-1 ({opt.n_imaginary} imaginary)")
    share = np.linalg.norm(mode, axis=1) ** 2 / np.sum(mode**2)
    print("share of each atom in the imaginary mode: "
          + ", ".join(f"{s} {w:.2f}" for s, w in zip(opt.mol.symbols, share)))
    d = np.linalg.norm(opt.mol.coords[:, None] - opt.mol.coords[None], axis=-1) * BOHR_ANGSTROM
    print(f"saddle point: C-N {d[0, 1]:.4f}, C-H {d[0, 2]:.4f}, N-H {d[1, 2]:.4f} Angstrom")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "transition_state.png"
    plot(opt.mol, mode, freqs[k], opt.trajectory,
         f"HCN ⇌ HNC transition state, {xc.upper()}/{basis}", path)
    print(f"wrote {path}")
    return {"converged": opt.converged, "frequencies_cm1": freqs, "n_imaginary": opt.n_imaginary,
            "mode": mode, "symbols": opt.mol.symbols, "mode_share": share, "pictures": [path]}


if __name__ == "__main__":
    main()
