"""The ``dftad`` command.

    dftad energy GEOMETRY [--basis def2-svp] [--xc b3lyp] [--charge 0] [--spin 0]
                 [--grid-level 3] [--df/--no-df] [--forces] [--stability] [--json]
    dftad frequencies GEOMETRY [same options] [--json] [--plot spectrum.png]
    dftad properties GEOMETRY [same options] [--json]
    dftad integrals GEOMETRY [--basis def2-svp] [--cart] [--charge 0] [--spin 0] [--json]

GEOMETRY is an .xyz path or the name of a shipped molecule (``dftad energy water``).
Exit status: 0 success; 2 bad input (unknown element, malformed file, impossible charge/spin, a
basis without the element, an option not available) with a one-line ``dftad: error: ...`` and no
traceback; 3 the SCF did not converge.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dftad", description="Differentiable DFT for molecules (JAX).")
    sub = p.add_subparsers(dest="command", required=True)
    en = sub.add_parser("energy", help="SCF energy (HF or Kohn-Sham DFT) of a molecule")
    _calculation_args(en)
    en.add_argument("--forces", action="store_true", help="also compute forces (-dE/dR)")
    en.add_argument("--stability", action="store_true",
                    help="check internal stability (lowest orbital Hessian eigenvalue) and, at a "
                    "saddle point, rotate along the unstable mode and restart the SCF")
    fr = sub.add_parser("frequencies", help="harmonic frequencies and IR intensities (analytic "
                        "Hessian through the implicit SCF) at the given geometry")
    _calculation_args(fr)
    fr.add_argument("--plot", metavar="PNG", help="draw the IR spectrum (needs matplotlib)")
    fr.add_argument("--fwhm", type=float, default=20.0, help="Lorentzian band width (cm-1)")
    pr = sub.add_parser("properties", help="dipole moment and static polarizability")
    _calculation_args(pr)
    ints = sub.add_parser(
        "integrals",
        help="compute the one- and two-electron integrals of a molecule and compare with PySCF",
    )
    ints.add_argument("geometry", help=".xyz file or name of a shipped molecule (e.g. water)")
    ints.add_argument("--basis", default="def2-svp", help="basis set name (PySCF library)")
    ints.add_argument("--cart", action="store_true", help="cartesian instead of spherical AOs")
    ints.add_argument("--charge", type=int, default=None, help="total charge (default: from xyz)")
    ints.add_argument("--spin", type=int, default=None, help="2S = N_alpha - N_beta")
    ints.add_argument("--unit", default="angstrom", choices=["angstrom", "bohr"])
    ints.add_argument("--no-check", action="store_true", help="skip the comparison with PySCF")
    ints.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _calculation_args(p):
    p.add_argument("geometry", help=".xyz file or name of a shipped molecule (e.g. water)")
    p.add_argument("--basis", default="def2-svp", help="basis set name (PySCF library)")
    p.add_argument("--xc", default="b3lyp", help="functional, PySCF names ('hf' = Hartree-Fock)")
    p.add_argument("--charge", type=int, default=None, help="total charge (default: from xyz)")
    p.add_argument("--spin", type=int, default=None, help="2S = N_alpha - N_beta (default: from xyz)")
    p.add_argument("--unit", default="angstrom", choices=["angstrom", "bohr"])
    p.add_argument("--grid-level", type=int, default=3, help="PySCF grid level 0-9")
    p.add_argument("--df", dest="df", action="store_true", default=None, help="density fitting")
    p.add_argument("--no-df", dest="df", action="store_false", help="incore 4-centre ERIs")
    p.add_argument("--max-cycle", type=int, default=100)
    p.add_argument("--level-shift", type=float, default=0.0)
    p.add_argument("--damp", type=float, default=0.0)
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    import dftad

    dftad.enable_compilation_cache()  # a second run of the same calculation skips compiling
    try:
        if args.command == "integrals":
            return _integrals(args)
        if args.command == "energy":
            return _energy(args)
        if args.command in ("frequencies", "properties"):
            return _response(args)
    except ValueError as err:
        print(f"dftad: error: {err}", file=sys.stderr)
        return 2
    return 0


def _integrals(args) -> int:
    import jax
    import numpy as np

    import dftad
    from dftad.integrals import one_electron, two_electron

    dftad.check_x64()
    t0 = time.perf_counter()
    mol = dftad.load(args.geometry, unit=args.unit, charge=args.charge, spin=args.spin)
    basis = dftad.Basis.build(mol, args.basis, cart=args.cart)
    coords = jax.numpy.asarray(mol.coords)
    charges = jax.numpy.asarray(mol.atomic_numbers, dtype=float)
    plan = two_electron.build_plan(basis, coords)
    t_setup = time.perf_counter() - t0

    def ints(basis, coords, plan):
        return (
            one_electron.overlap(basis, coords),
            one_electron.kinetic(basis, coords),
            one_electron.nuclear(basis, coords, charges),
            two_electron.eri_s8(plan, basis, coords),
        )

    fn = jax.jit(ints)
    t0 = time.perf_counter()
    compiled = fn.lower(basis, coords, plan).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    s, t, v, eri = jax.block_until_ready(compiled(basis, coords, plan))
    t_run = time.perf_counter() - t0
    s, t, v, eri = (np.asarray(x) for x in (s, t, v, eri))
    out = {
        "molecule": repr(mol),
        "natm": mol.natm,
        "nelectron": mol.nelectron,
        "basis": args.basis,
        "cart": args.cart,
        "nao": basis.nao,
        "energy_nuc": mol.energy_nuc(),
        "n_eri_unique": int(eri.size),
        "quartets_computed": int(sum(c.nq for c in plan.classes)),
        "trace_s": float(np.trace(s)),
        "timings": {"setup": t_setup, "compile": t_compile, "integrals": t_run},
    }
    if not args.no_check:
        from pyscf import gto

        pmol = gto.M(
            atom=mol.to_pyscf_atom(), unit="Bohr", basis=args.basis, cart=args.cart,
            charge=mol.charge, spin=mol.spin, verbose=0,
        )
        out["max_abs_diff_vs_pyscf"] = {
            "int1e_ovlp": float(np.abs(s - pmol.intor("int1e_ovlp")).max()),
            "int1e_kin": float(np.abs(t - pmol.intor("int1e_kin")).max()),
            "int1e_nuc": float(np.abs(v - pmol.intor("int1e_nuc")).max()),
            "int2e": float(np.abs(eri - pmol.intor("int2e", aosym="s8")).max()),
        }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['molecule']}  {mol.natm} atoms, {mol.nelectron} electrons, basis {args.basis}"
          f" ({'cartesian' if args.cart else 'spherical'}), nao = {basis.nao}")
    print(f"nuclear repulsion      {out['energy_nuc']:.10f} Eh")
    print(f"unique ERIs            {out['n_eri_unique']} ({out['quartets_computed']} shell quartets after screening)")
    tm = out["timings"]
    print(f"timings                setup {tm['setup']:.2f} s, compile {tm['compile']:.2f} s,"
          f" integrals {tm['integrals']:.3f} s")
    for name, err in out.get("max_abs_diff_vs_pyscf", {}).items():
        print(f"max |dftad - PySCF|    {name:<11s} {err:.2e}")
    return 0


def _build(args):
    """(mol, setup, coords, setup time) from the shared calculation options."""
    import jax

    import dftad
    from dftad import energy

    dftad.check_x64()
    if not 0 <= args.grid_level <= 9:
        raise ValueError(f"--grid-level must be 0..9, got {args.grid_level}")
    t0 = time.perf_counter()
    mol = dftad.load(args.geometry, unit=args.unit, charge=args.charge, spin=args.spin)
    try:
        setup = energy.build(
            mol, args.basis, args.xc, grid_level=args.grid_level, density_fit=args.df,
            max_cycle=args.max_cycle, level_shift=args.level_shift, damp=args.damp,
            verbose=not args.json and args.command == "energy",
        )
    except KeyError as err:  # unknown functional component
        raise ValueError(str(err).strip("'\"")) from None
    return mol, setup, jax.numpy.asarray(mol.coords), time.perf_counter() - t0


def _not_converged(res) -> int:
    print(
        f"dftad: error: SCF did not converge in {int(res.scf.cycles)} cycles "
        f"(|dE| {abs(float(res.scf.e_change)):.1e}, |[F,D]| {float(res.scf.grad_norm):.1e}); "
        "try --max-cycle 300, --level-shift 0.3 or --damp 0.5",
        file=sys.stderr,
    )
    return 3


def _second_order(setup, coords, res, quiet: bool):
    """``res``, continued by second-order steps where DIIS did not converge."""
    from dftad import energy

    if bool(res.converged):
        return res
    if not quiet:
        print(f"DIIS did not converge in {int(res.scf.cycles)} cycles: going on with "
              "second-order (trust-region Newton) steps", flush=True)
    return energy.converge(setup, coords, res)


def _energy(args) -> int:
    import jax
    import numpy as np

    from dftad import energy, stability

    mol, setup, coords, t_setup = _build(args)
    if not args.json:
        kind = ("R" if setup.restricted else "U") + ("HF" if args.xc.lower() == "hf" else "KS")
        print(f"{mol!r}: {kind} {args.xc} / {args.basis}, nao = {setup.nao}, "
              f"{'density fitting (' + setup.auxbasis_name + ')' if setup.density_fitting else 'incore ERIs'}"
              + (f", grid level {args.grid_level}" if setup.grid is not None else ""), flush=True)
    # A program that prints the SCF cycles as they happen holds a host callback, which XLA's
    # persistent cache cannot store. So with human output the SCF runs on its own, and the forces
    # (the larger program, cached on disk) restart from its converged density (one SCF cycle).
    quiet = dataclasses.replace(setup, options=setup.options._replace(verbose=False))
    t_compile = t_run = 0.0
    res = None
    if setup.options.verbose or not args.forces or args.stability:
        t0 = time.perf_counter()
        compiled = jax.jit(energy.kernel).lower(setup, coords).compile()
        t_compile += time.perf_counter() - t0
        if not args.json:
            print(f"compiled in {t_compile:.1f} s", flush=True)
        t0 = time.perf_counter()
        res = jax.block_until_ready(compiled(setup, coords))
        res = _second_order(setup, coords, res, args.json)
        t_run += time.perf_counter() - t0
    stab, t_stab = None, 0.0
    if args.stability and bool(res.converged):
        t0 = time.perf_counter()
        res, stab = stability.follow(setup, coords, res)
        t_stab = time.perf_counter() - t0
    if args.forces and (res is None or bool(res.converged)):
        dm0 = None if res is None else res.scf.dm
        t0 = time.perf_counter()
        compiled = jax.jit(energy.energy_and_forces).lower(quiet, coords, None, dm0).compile()
        t_compile += time.perf_counter() - t0
        if not args.json:
            print(f"forces compiled ({t_compile:.1f} s compile in all)", flush=True)
        t0 = time.perf_counter()
        forces_res = jax.block_until_ready(compiled(quiet, coords, None, dm0))
        if not bool(forces_res.converged):  # DIIS alone did not converge (dm0 was None)
            forces_res = _second_order(quiet, coords, forces_res, args.json)
            if bool(forces_res.converged):
                forces_res = jax.jit(energy.energy_and_forces)(quiet, coords, None,
                                                              forces_res.scf.dm)
        t_run += time.perf_counter() - t0
        res = forces_res if res is None else res._replace(forces=forces_res.forces)
    r, comp = res.scf, res.components
    converged = bool(r.converged)
    out = {
        "energy": float(r.e_tot),
        "converged": converged,
        "iterations": int(r.cycles),
        "nao": setup.nao,
        "xc": args.xc,
        "basis": args.basis,
        "charge": mol.charge,
        "spin": mol.spin,
        "density_fitting": setup.density_fitting,
        "components": {k: float(v) for k, v in comp._asdict().items()},
        "timings": {"setup": t_setup, "compile": t_compile,
                    ("scf+forces" if args.forces else "scf"): t_run},
    }
    if stab is not None:
        out["stability"] = {"stable": bool(stab.stable), "lowest_eigenvalue": stab.lowest,
                            "restarts": stab.restarts, "descent": stab.descent}
        out["timings"]["stability"] = t_stab
    if res.forces is not None:
        out["forces"] = np.asarray(res.forces).tolist()
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'converged' if converged else 'NOT converged'} after {out['iterations']} cycles")
        for k, v in out["components"].items():
            print(f"  {k:<8s} {v:20.12f}")
        what = "scf+forces" if args.forces else "scf"
        print(f"E_tot = {out['energy']:.12f} Eh   (setup {t_setup:.1f} s, compile {t_compile:.1f} s,"
              f" {what} {t_run:.2f} s)")
        if stab is not None:
            verdict = "stable" if stab.stable else "UNSTABLE"
            print(f"internal stability: {verdict} (lowest orbital Hessian eigenvalue "
                  f"{stab.lowest:.3e} Eh, {stab.restarts} restart(s), {t_stab:.1f} s)")
        if res.forces is not None:
            print("forces (-dE/dR, Hartree/Bohr)")
            for sym, f in zip(mol.symbols, out["forces"]):
                print(f"  {sym:<3s} {f[0]:16.10f} {f[1]:16.10f} {f[2]:16.10f}")
    if not converged:
        return _not_converged(res)
    if stab is not None and not stab.stable:
        print(f"dftad: warning: the solution is still a saddle point after {stab.restarts} "
              "restarts (lowest orbital Hessian eigenvalue "
              f"{stab.lowest:.2e} Eh); try another --xc or initial guess", file=sys.stderr)
    return 0


def _response(args) -> int:
    """``dftad frequencies`` and ``dftad properties``."""
    import jax
    import numpy as np

    from dftad import properties
    from dftad.constants import MASSES

    if args.command == "frequencies" and args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'dftad[plot]'") from None
    mol, setup, coords, t_setup = _build(args)
    t0 = time.perf_counter()
    if args.command == "properties":
        res, mu, alpha = jax.jit(properties.dipole_and_polarizability)(setup, coords)
    else:
        d = jax.block_until_ready(jax.jit(properties.second_derivatives)(setup, coords))
        res = d.result
    t_run = time.perf_counter() - t0
    if not bool(res.converged):
        return _not_converged(res)
    out = {"energy": float(res.e_tot), "converged": True, "iterations": int(res.scf.cycles),
           "nao": setup.nao, "xc": args.xc, "basis": args.basis, "charge": mol.charge,
           "spin": mol.spin}
    if args.command == "properties":
        mu = np.asarray(mu)
        out["dipole_au"] = mu.tolist()
        out["dipole_debye"] = properties.to_debye(mu).tolist()
        out["polarizability_au"] = np.asarray(alpha).tolist()
    else:
        max_force = float(np.abs(np.asarray(d.gradient)).max())
        masses = [MASSES[z] for z in mol.atomic_numbers]
        vib = properties.harmonic_analysis(d.hessian, mol.coords, masses, d.dipole_derivative)
        out["frequencies_cm1"] = vib.frequencies_cm1.tolist()
        out["ir_intensities_km_mol"] = vib.ir_intensities_km_mol.tolist()
        out["max_force"] = max_force
        if max_force > 1e-3:
            print(f"dftad: warning: the geometry is not a stationary point (max |force| "
                  f"{max_force:.1e} Ha/Bohr); harmonic frequencies there are not meaningful",
                  file=sys.stderr)
    out["timings"] = {"setup": t_setup, f"{args.command} (compile + run)": t_run}
    if args.command == "frequencies" and args.plot:
        plot_ir_spectrum(out["frequencies_cm1"], out["ir_intensities_km_mol"], args.plot,
                         fwhm=args.fwhm, title=f"{mol!r} {args.xc}/{args.basis}")
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{mol!r}: {args.xc} / {args.basis}, E = {out['energy']:.10f} Eh "
          f"({out['iterations']} SCF cycles)")
    if args.command == "properties":
        d = out["dipole_debye"]
        print(f"dipole (Debye)   {d[0]:12.6f} {d[1]:12.6f} {d[2]:12.6f}   |mu| = "
              f"{float(np.linalg.norm(d)):.6f}")
        print("polarizability (a.u.)")
        for row in out["polarizability_au"]:
            print("  " + " ".join(f"{x:12.6f}" for x in row))
    else:
        print("mode  frequency (cm-1)  IR intensity (km/mol)")
        for k, (f, i) in enumerate(zip(out["frequencies_cm1"], out["ir_intensities_km_mol"])):
            print(f"{k + 1:4d}  {f:16.2f}  {i:21.4f}")
        if args.plot:
            print(f"spectrum written to {args.plot}")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in out["timings"].items()))
    return 0


def plot_ir_spectrum(freqs, intensities, path, fwhm=20.0, title=""):
    """Lorentzian-broadened IR spectrum (absorbance in km/mol per cm-1) with stick bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    freqs, intensities = np.asarray(freqs), np.asarray(intensities)
    real = freqs > 0
    x = np.linspace(0.0, max(4000.0, freqs.max() + 200.0), 4000)
    g = fwhm / 2.0
    y = np.sum(intensities[real, None] * (g / np.pi)
               / ((x[None, :] - freqs[real, None]) ** 2 + g**2), axis=0)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(x, y, color="black", lw=1.2)
    ax.vlines(freqs[real], 0, intensities[real] / (np.pi * g), color="tab:red", lw=1,
              label="harmonic modes")
    ax.set_xlim(x.max(), x.min())  # wavenumbers decrease to the right, as chemists draw them
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("absorbance (km mol$^{-1}$ / cm$^{-1}$)")
    ax.set_title(f"IR spectrum {title}  (Lorentzian FWHM {fwhm:g} cm$^{{-1}}$)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
