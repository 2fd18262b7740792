"""Tutorial 5: derivatives of properties with respect to the geometry and an electric field.

Any number computed from the converged SCF is a function of the nuclear coordinates R (Bohr)
and of a uniform electric field F (atomic units, entering the Hamiltonian as h += F . r). dftad
differentiates such functions with ``jax.jacfwd``; the SCF density's own derivative comes from the
implicit function theorem at the fixed point (a linear-response solve per direction), never from
unrolling the SCF iterations. One function of (R, F) returning

    the HOMO-LUMO gap      Delta = e_LUMO - e_HOMO                      (Hartree)
    the dipole moment      mu = sum_A Z_A R_A - sum_mn D_mn <m|r|n>     (a.u., e Bohr)

is differentiated once, in forward mode, into

    d Delta / dR           how the gap changes as each atom moves       (Hartree/Bohr)
    d mu / dR              the atomic polar tensors (IR intensities)    (a.u.: e)
    d mu / dF = alpha      the static polarizability                    (a.u.: e^2 Bohr^2/Hartree)

all from one compiled program. Checks printed: each derivative against central finite
differences of the same function (a five-point stencil along one O-H bond for the gap,
h = 1e-3 Bohr; a two-point one in the field, h = 1e-4 a.u., for alpha), alpha's symmetry, and
the sum rule sum_A d mu / dR_A = (total charge) x identity = 0 for a neutral molecule (moving
every atom together moves the dipole's origin, not the dipole).

The default functional is LDA: through a GGA such as B3LYP the same derivatives need the
functional's second derivatives with respect to the density gradient in every linear-response
step, which takes tens of minutes to compile and run on two cores (``--xc b3lyp``).

    python scripts/tutorial_property_derivatives.py              # water, LDA/def2-SVP (minutes)
    python scripts/tutorial_property_derivatives.py --xc b3lyp   # tens of minutes on 2 cores
    python scripts/tutorial_property_derivatives.py --fast       # HF/STO-3G (seconds; the tests)

Writes ``property_derivatives.png`` into ``--out``: the gap and the dipole along an O-H stretch,
each with its analytic derivative drawn as short tangent lines.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _tutorial import parser, pyplot, save

import dftad
from dftad.constants import BOHR_ANGSTROM, HARTREE_EV

XC, BASIS = "lda", "def2-svp"


def parse_args(argv=None):
    p = parser(__doc__, "HF/STO-3G: seconds (the tests)")
    p.add_argument("--xc", default=XC, help=f"functional (default {XC}; 'hf': Hartree-Fock)")
    p.add_argument("--basis", default=BASIS, help=f"basis set (default {BASIS})")
    return p.parse_args(argv)


def properties_and_derivatives(setup):
    """A jitted function (R, F) -> ((d gap/dR, d gap/dF), (d mu/dR, d mu/dF)), (gap, mu):
    the Jacobian of each output with respect to each argument, and the outputs themselves."""
    homo = setup.occupation.homo

    def props(coords, field):
        res = dftad.kernel(setup, coords, field=field)
        gap = res.scf.mo_energy[homo + 1] - res.scf.mo_energy[homo]
        mu = dftad.dipole(setup, coords, res.scf.dm)
        return (gap, mu), (gap, mu)  # differentiated, and passed through as values

    return jax.jit(jax.jacfwd(props, argnums=(0, 1), has_aux=True))


def plot(r, gaps, dgaps, mus, dmus, title, path):
    """The gap (eV) and the dipole's component along the bond (a.u.) against the O-H distance
    (Angstrom), with tangent lines from the analytic derivatives."""
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = r * BOHR_ANGSTROM
    half = 0.35 * (r[1] - r[0])  # half length of a tangent, Bohr
    for ax, y, dy, unit, label, color in (
            (left, gaps * HARTREE_EV, dgaps * HARTREE_EV, "eV", "HOMO-LUMO gap", "tab:blue"),
            (right, mus, dmus, "a.u.", "dipole along the O-H bond", "tab:green")):
        ax.plot(x, y, "o", color=color, ms=8, zorder=3, label=f"{label} (SCF)")
        for xi, yi, si in zip(r, y, dy):
            t = np.array([xi - half, xi + half])
            ax.plot(t * BOHR_ANGSTROM, yi + si * (t - xi), "-", color="tab:orange", lw=2.5)
        ax.plot([], [], "-", color="tab:orange", lw=2.5, label="tangents from jax.jacfwd")
        ax.set_xlabel("O-H distance (Å)")
        ax.set_ylabel(f"{label} ({unit})")
        ax.legend()
    fig.suptitle(title)
    save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    basis, xc = ("sto-3g", "hf") if args.fast else (args.basis, args.xc)
    dftad.enable_compilation_cache()

    mol = dftad.load("water")
    # tight SCF: finite differences of the gap divide its SCF noise by the step h
    setup = dftad.build(mol, basis, xc, conv_tol=1e-12, conv_tol_grad=1e-10)
    derivatives = properties_and_derivatives(setup)
    coords, zero = jnp.asarray(mol.coords), jnp.zeros(3)

    ((dgap_dr, dgap_df), (dmu_dr, alpha)), (gap, mu) = derivatives(coords, zero)
    dgap_dr, dmu_dr, alpha = np.asarray(dgap_dr), np.asarray(dmu_dr), np.asarray(alpha)
    print(f"water {xc.upper()}/{basis}: gap {float(gap):.6f} Hartree "
          f"({float(gap) * HARTREE_EV:.3f} eV), dipole {np.asarray(mu).round(6)} a.u.")
    print("d gap / dR (Hartree/Bohr):")
    for s, g in zip(mol.symbols, dgap_dr):
        print(f"  {s:2s} {g[0]:12.6f} {g[1]:12.6f} {g[2]:12.6f}")
    print(f"d gap / dF {np.asarray(dgap_df).round(6)} Hartree/a.u. (zero where symmetry "
          "forbids a first-order Stark shift)")
    print("atomic polar tensor of the first hydrogen (atom 2), d mu_x / dR_j (a.u.):")
    for row in dmu_dr[:, 1, :]:
        print("  " + " ".join(f"{a:12.6f}" for a in row))
    print(f"sum over atoms: d gap/dR {np.abs(dgap_dr.sum(axis=0)).max():.1e}, "
          f"d mu/dR {np.abs(dmu_dr.sum(axis=1)).max():.1e} (translations: 0)")

    # the stretch: the first hydrogen moves along the O-H bond by t (Bohr)
    u = np.zeros_like(mol.coords)
    u[1] = (mol.coords[1] - mol.coords[0]) / np.linalg.norm(mol.coords[1] - mol.coords[0])
    r0 = np.linalg.norm(mol.coords[1] - mol.coords[0])
    bond = u[1]  # dipole component along the bond

    def along(t):
        """(gap, d gap/dt, mu . bond, d(mu . bond)/dt) at stretch t (Bohr)."""
        ((dg, _), (dm, _)), (g, m) = derivatives(coords + t * jnp.asarray(u), zero)
        return (float(g), float(np.sum(np.asarray(dg) * u)), float(np.asarray(m) @ bond),
                float(np.einsum("xaj,aj,x->", np.asarray(dm), u, bond)))

    h = 1e-3  # Bohr
    g = {k: along(k * h)[0] for k in (-2, -1, 1, 2)}
    fd_gap = (g[-2] - 8 * g[-1] + 8 * g[1] - g[2]) / (12 * h)
    ad_gap = float(np.sum(dgap_dr * u))
    print(f"d gap / d r(O-H): jacfwd {ad_gap:.10f}, finite difference {fd_gap:.10f} "
          f"Hartree/Bohr (relative difference {abs(ad_gap - fd_gap) / abs(fd_gap):.1e})")

    h_field = 1e-4  # a.u.
    fd_alpha = np.zeros((3, 3))
    for j in range(3):
        step = jnp.zeros(3).at[j].set(h_field)
        mu_plus, mu_minus = (np.asarray(derivatives(coords, s * step)[1][1]) for s in (1, -1))
        fd_alpha[:, j] = (mu_plus - mu_minus) / (2 * h_field)
    alpha_error = np.abs(alpha - fd_alpha).max() / np.abs(alpha).max()
    print("polarizability alpha = d mu / dF (a.u.):")
    for row in alpha:
        print("  " + " ".join(f"{a:12.6f}" for a in row))
    print(f"isotropic {np.trace(alpha) / 3:.6f} a.u.; finite field differs by "
          f"{alpha_error:.1e} (relative), asymmetry {np.abs(alpha - alpha.T).max():.1e}")

    t = np.linspace(-0.3, 0.5, 7)  # Bohr, around the shipped geometry
    scan = np.array([along(ti) for ti in t])
    print(f"scan of r(O-H) over {(r0 + t[0]) * BOHR_ANGSTROM:.3f}-"
          f"{(r0 + t[-1]) * BOHR_ANGSTROM:.3f} Angstrom: gap "
          + " ".join(f"{x * HARTREE_EV:.3f}" for x in scan[:, 0]) + " eV")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "property_derivatives.png"
    plot(r0 + t, *scan.T, f"water {xc.upper()}/{basis}: one O-H bond stretched", path)
    print(f"wrote {path}")
    return {"gap": float(gap), "dgap_dr": dgap_dr, "dmu_dr": dmu_dr, "alpha": alpha,
            "dgap_stretch": ad_gap, "dgap_stretch_fd": fd_gap, "alpha_fd": fd_alpha,
            "scan": scan, "pictures": [path]}


if __name__ == "__main__":
    main()
