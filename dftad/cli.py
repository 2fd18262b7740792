"""The ``dftad`` command: one function per subcommand, the shared options defined once.

    dftad energy GEOMETRY [--basis def2-svp] [--xc b3lyp] [--disp d3bj|d3zero [--atm]]
                 [--charge 0] [--spin 0] [--grid-level 3] [--df/--no-df] [--forces]
                 [--stability] [--json [--schema dftad|qcschema]]
    dftad frequencies GEOMETRY [same options] [--json] [--plot spectrum.png]
    dftad properties GEOMETRY [same options] [--json]
    dftad optimize GEOMETRY [same options] [--optimizer geometric|jax|ase-bfgs] [--convergence gau]
                 [--max-steps 300]
                 [--constraints FILE] [--transition] [--hessian never|first|last|first+last]
                 [--trajectory traj.xyz] [--output final.xyz] [--json]
    dftad integrals GEOMETRY [--basis def2-svp] [--cart] [--charge 0] [--spin 0] [--json]
    dftad train CONFIG.toml [--resume] [--compare b3lyp,pbe] [--no-report]
                [--report-splits train,validation,test]

GEOMETRY is an .xyz path or the name of a shipped molecule (``dftad energy water``).
Exit status: 0 success; 2 bad input (unknown element, malformed file, impossible charge/spin, a
basis without the element, an option not available) with a one-line ``dftad: error: ...`` and no
traceback; 3 the SCF did not converge (``optimize``: or the step limit was reached); 4 an
optimization ended where the final Hessian has the wrong number of imaginary modes (a minimum
with one, a transition state without exactly one).

Adding a command: write ``def _name(args) -> int`` and register it in :data:`COMMANDS` with the
function that adds its options. The physics lives in the library (:func:`dftad.energy.converge`,
:func:`dftad.forces.gradient_at`, :mod:`dftad.properties`); this module parses, times and
prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

STATIONARY_FORCE = 1e-3
"""Largest |force| (Hartree/Bohr) at which ``frequencies`` treats the geometry as stationary."""


class BadInput(ValueError):
    """An input error reported as ``dftad: error: ...`` with exit status 2."""


# ------------------------------------------------------------------------------ options
def _molecule_args(p):
    p.add_argument("geometry", help=".xyz file or name of a shipped molecule (e.g. water)")
    p.add_argument("--basis", default="def2-svp", help="basis set name (PySCF library)")
    p.add_argument("--charge", type=int, default=None, help="total charge (default: from xyz)")
    p.add_argument("--spin", type=int, default=None,
                   help="2S = N_alpha - N_beta (default: from xyz)")
    p.add_argument("--unit", default="angstrom", choices=["angstrom", "bohr"])
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")


def _calculation_args(p):
    _molecule_args(p)
    p.add_argument("--xc", default="b3lyp", help="functional, PySCF names ('hf' = Hartree-Fock; "
                   "a D3 suffix as in 'b3lyp-d3bj' adds dispersion), or the functional.json a "
                   "'dftad train' run wrote")
    p.add_argument("--disp", choices=["d3bj", "d3zero"], default=None,
                   help="DFT-D3 dispersion with the functional's published parameters")
    p.add_argument("--atm", action="store_true", help="with --disp: the three-body ATM term")
    p.add_argument("--grid-level", type=int, default=3, help="PySCF grid level 0-9")
    p.add_argument("--df", dest="df", action="store_true", default=None, help="density fitting")
    p.add_argument("--no-df", dest="df", action="store_false", help="incore 4-centre ERIs")
    p.add_argument("--max-cycle", type=int, default=100)
    p.add_argument("--level-shift", type=float, default=0.0)
    p.add_argument("--damp", type=float, default=0.0)


def _energy_args(p):
    _calculation_args(p)
    p.add_argument("--forces", action="store_true", help="also compute forces (-dE/dR)")
    p.add_argument("--stability", action="store_true",
                   help="check internal stability (lowest orbital Hessian eigenvalue) and, at a "
                   "saddle point, rotate along the unstable mode and restart the SCF")
    p.add_argument("--schema", choices=["dftad", "qcschema"], default="dftad",
                   help="with --json: dftad's own object (default) or a QCSchema AtomicResult "
                   "(Bohr, Hartree; needs qcelemental)")


def _frequencies_args(p):
    _calculation_args(p)
    p.add_argument("--plot", metavar="PNG", help="draw the IR spectrum (needs matplotlib)")
    p.add_argument("--fwhm", type=float, default=20.0, help="Lorentzian band width (cm-1)")


def _optimize_args(p):
    from dftad.geomopt import CONVERGENCE_SETS, HESSIAN_CHOICES, OPTIMIZERS

    _calculation_args(p)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="geometric",
                   help="geomeTRIC (internal coordinates, as PySCF), dftad's JAX Cartesian "
                   "BFGS (gau criteria) or ASE's Cartesian BFGS (converged on the largest "
                   "atomic force alone)")
    p.add_argument("--convergence", choices=CONVERGENCE_SETS, default="gau",
                   help="geomeTRIC criteria set (gau: dE 1e-6 Ha, RMS/max gradient "
                   "3e-4/4.5e-4 Ha/Bohr, RMS/max step 1.2e-3/1.8e-3 A)")
    p.add_argument("--max-steps", type=int, default=300, help="optimization cycles")
    p.add_argument("--constraints", metavar="FILE", help="geomeTRIC constraints file "
                   "($freeze / $set / $scan: xyz, distance, angle, dihedral)")
    p.add_argument("--transition", action="store_true",
                   help="a transition state (first-order saddle), from the exact Hessian")
    p.add_argument("--hessian", choices=HESSIAN_CHOICES, default="never",
                   help="exact (AD) Hessian as the initial one (first) and/or for frequencies "
                   "at the end (last)")
    p.add_argument("--trajectory", metavar="XYZ", help="write every step (multi-frame xyz)")
    p.add_argument("--output", metavar="XYZ", help="write the final geometry")


def _integrals_args(p):
    _molecule_args(p)
    p.add_argument("--cart", action="store_true", help="cartesian instead of spherical AOs")
    p.add_argument("--no-check", action="store_true", help="skip the comparison with PySCF")


# ------------------------------------------------------------------------------ shared steps
class _Clock:
    """Named wall-clock intervals (seconds), printed and reported in ``timings``."""

    def __init__(self):
        self.timings = {}

    def __call__(self, name, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        return out


def _compile(clock, fn, *args):
    """``jax.jit(fn)`` compiled for ``args`` (timed as ``compile``)."""
    import jax

    return clock("compile", lambda: jax.jit(fn).lower(*args).compile())


def _load(args):
    import dftad

    dftad.check_x64()
    return dftad.load(args.geometry, unit=args.unit, charge=args.charge, spin=args.spin)


def _build(args, clock):
    """(mol, setup, coords) from the shared calculation options."""
    import jax
    import numpy as np

    import dftad

    if not 0 <= args.grid_level <= 9:
        raise BadInput(f"--grid-level must be 0..9, got {args.grid_level}")

    def build():
        mol = _load(args)
        setup = dftad.build(mol, args.basis, args.xc, grid_level=args.grid_level,
                            density_fit=args.df, max_cycle=args.max_cycle,
                            level_shift=args.level_shift, damp=args.damp,
                            disp=args.disp, atm=args.atm)
        return mol, setup, jax.device_put(np.asarray(mol.coords, dtype=np.float64))

    return clock("setup", build)


def _describe(mol, setup, args) -> str:
    kind = ("R" if setup.restricted else "U") + ("HF" if setup.xc.family == "hf" else "KS")
    grid = f", grid level {args.grid_level}" if setup.semilocal else ""
    return (f"{mol!r}: {kind} {args.xc} / {args.basis}, nao = {setup.nao}, "
            f"{setup.jk.describe()}{grid}")


def _scf(args, clock, quiet: bool, forces: bool = False):
    """(mol, setup, coords, converged result): the SCF (printing cycles unless ``quiet``),
    continued by second-order steps where DIIS does not converge."""
    from dftad import energy
    from dftad import forces as forces_module
    from dftad.scf import cycle_line

    mol, setup, coords = _build(args, clock)
    if not quiet:
        print(_describe(mol, setup, args), flush=True)

    def show(st):
        print(cycle_line(st), flush=True)

    # compiles on the first call (or loads the programs from the on-disk cache); ``forces``:
    # the forces' pieces compile beside it, and what is left of that after the SCF is timed
    with forces_module.compile_ahead(setup, coords, forces) as compiling:
        res = clock("scf", energy.kernel_stepwise, setup, coords, None if quiet else show)
        if not bool(res.converged):
            if not quiet:
                print(f"DIIS did not converge in {int(res.scf.cycles)} cycles: going on with "
                      "second-order (trust-region Newton) steps", flush=True)
            res = clock("scf", energy.converge, setup, coords, res)
        if forces:
            clock("forces compile", compiling)
    return mol, setup, coords, res


def _not_converged(res) -> int:
    print(
        f"dftad: error: SCF did not converge in {int(res.scf.cycles)} cycles "
        f"(|dE| {abs(float(res.scf.e_change)):.1e}, |[F,D]| {float(res.scf.grad_norm):.1e}); "
        "try --max-cycle 300, --level-shift 0.3 or --damp 0.5",
        file=sys.stderr,
    )
    return 3


def _summary(mol, setup, args, res) -> dict:
    return {"energy": float(res.e_tot), "converged": bool(res.converged),
            "iterations": int(res.scf.cycles), "nao": setup.nao, "xc": args.xc,
            "basis": args.basis, "charge": mol.charge, "spin": mol.spin,
            "density_fitting": setup.density_fitting}


def _print_timings(timings):
    print("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


# ------------------------------------------------------------------------------ commands
def _energy(args) -> int:
    import numpy as np

    from dftad import forces, stability

    _check_schema(args)
    clock = _Clock()
    mol, setup, coords, res = _scf(args, clock, quiet=args.json, forces=args.forces)
    stab = None
    if args.stability and bool(res.converged):
        res, stab = clock("stability", stability.follow, setup, coords, res)
    if args.forces and bool(res.converged):
        res = res._replace(forces=-clock("forces", forces.gradient_stepwise, setup, coords,
                                         res.scf))
    out = _summary(mol, setup, args, res)
    out["components"] = {k: float(v) for k, v in res.components._asdict().items()}
    if stab is not None:
        out["stability"] = {"stable": bool(stab.stable), "lowest_eigenvalue": stab.lowest,
                            "restarts": stab.restarts, "descent": stab.descent}
    if res.forces is not None:
        out["forces"] = np.asarray(res.forces).tolist()
    out["timings"] = clock.timings
    if args.json and args.schema == "qcschema":
        print(_qcschema(mol, setup, args, res, out).json())
    elif args.json:
        print(json.dumps(out))
    else:
        _print_energy(mol, out, stab)
    if not out["converged"]:
        return _not_converged(res)
    if stab is not None and not stab.stable:
        print(f"dftad: warning: the solution is still a saddle point after {stab.restarts} "
              "restarts (lowest orbital Hessian eigenvalue "
              f"{stab.lowest:.2e} Eh); try another --xc or initial guess", file=sys.stderr)
    return 0


def _check_schema(args):
    """``--schema qcschema`` needs ``--json`` and qcelemental (checked before the SCF)."""
    if args.schema == "dftad":
        return
    if not args.json:
        raise BadInput(f"--schema {args.schema} needs --json")
    from dftad.interop import qcschema

    try:
        qcschema.require_qcelemental()
    except ImportError as err:
        raise BadInput(f"--schema qcschema needs qcelemental: {qcschema.INSTALL_HINT}") from err


def _qcschema(mol, setup, args, res, out):
    """The QCSchema AtomicResult of ``energy`` (:mod:`dftad.interop.qcschema`): method as
    given (``--disp`` appended as a suffix), the SCF options as keywords, dftad's components,
    stability and timings as extras."""
    from dftad.interop import qcschema

    method = setup.xc.name if args.xc.endswith(".json") else args.xc.lower()
    if args.disp:
        method += f"-{args.disp}"
    if args.atm and not method.endswith("-atm"):
        method += "-atm"
    keywords = {"grid_level": args.grid_level, "density_fitting": setup.density_fitting,
                "max_cycle": args.max_cycle, "level_shift": args.level_shift,
                "damp": args.damp, "stability": args.stability}
    extras = {"dftad": {k: out[k] for k in ("components", "stability", "timings") if k in out}}
    return qcschema.atomic_result(mol, setup, res, method=method,
                                  driver="gradient" if args.forces else "energy",
                                  keywords=keywords, extras=extras, routine="dftad.cli")


def _print_energy(mol, out, stab):
    state = "converged" if out["converged"] else "NOT converged"
    print(f"{state} after {out['iterations']} cycles")
    for k, v in out["components"].items():
        print(f"  {k:<8s} {v:20.12f}")
    print(f"E_tot = {out['energy']:.12f} Eh")
    _print_timings(out["timings"])
    if stab is not None:
        verdict = "stable" if stab.stable else "UNSTABLE"
        print(f"internal stability: {verdict} (lowest orbital Hessian eigenvalue "
              f"{stab.lowest:.3e} Eh, {stab.restarts} restart(s))")
    if "forces" in out:
        print("forces (-dE/dR, Hartree/Bohr)")
        for sym, f in zip(mol.symbols, out["forces"]):
            print(f"  {sym:<3s} {f[0]:16.10f} {f[1]:16.10f} {f[2]:16.10f}")


def _second_derivatives(setup, coords):
    """:func:`dftad.properties.second_derivatives_stepwise` with a progress bar over the atoms
    on stderr (on a terminal; the first step includes the SCF and, on first use, compiling)."""
    from tqdm import tqdm

    from dftad import properties

    with tqdm(total=len(coords), desc="Hessian", unit="atom", file=sys.stderr, disable=None,
              dynamic_ncols=True) as bar:
        return properties.second_derivatives_stepwise(
            setup, coords, progress=lambda done, total: bar.update(done - bar.n))


def _frequencies(args) -> int:
    import numpy as np

    from dftad import hessian_pieces, plot, properties

    if args.plot:
        plot.require_matplotlib()
    clock = _Clock()
    mol, setup, coords = _build(args, clock)
    try:
        d = clock("frequencies", _second_derivatives, setup, coords)
    except hessian_pieces.CPHFNotConverged as err:
        print(f"dftad: error: {err}", file=sys.stderr)
        return 3
    if not bool(d.result.converged):
        return _not_converged(d.result)
    max_force = float(np.abs(np.asarray(d.gradient)).max())
    vib = properties.harmonic_analysis(d.hessian, mol.coords, mol.masses, d.dipole_derivative)
    out = _summary(mol, setup, args, d.result)
    out.update(frequencies_cm1=vib.frequencies_cm1.tolist(),
               ir_intensities_km_mol=vib.ir_intensities_km_mol.tolist(), max_force=max_force,
               timings=clock.timings)
    if max_force > STATIONARY_FORCE:
        print(f"dftad: warning: the geometry is not a stationary point (max |force| "
              f"{max_force:.1e} Ha/Bohr); harmonic frequencies there are not meaningful",
              file=sys.stderr)
    if args.plot:
        plot.ir_spectrum(out["frequencies_cm1"], out["ir_intensities_km_mol"], args.plot,
                         fwhm=args.fwhm, title=f"{mol!r} {args.xc}/{args.basis}")
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{mol!r}: {args.xc} / {args.basis}, E = {out['energy']:.10f} Eh "
          f"({out['iterations']} SCF cycles)")
    print("mode  frequency (cm-1)  IR intensity (km/mol)")
    for k, (f, i) in enumerate(zip(out["frequencies_cm1"], out["ir_intensities_km_mol"])):
        print(f"{k + 1:4d}  {f:16.2f}  {i:21.4f}")
    if args.plot:
        print(f"spectrum written to {args.plot}")
    _print_timings(out["timings"])
    return 0


def _properties(args) -> int:
    import jax
    import numpy as np

    from dftad import properties

    clock = _Clock()
    mol, setup, coords = _build(args, clock)
    res, mu, alpha = clock("properties", lambda: jax.block_until_ready(
        jax.jit(properties.dipole_and_polarizability)(setup, coords)))
    if not bool(res.converged):
        return _not_converged(res)
    out = _summary(mol, setup, args, res)
    mu = np.asarray(mu)
    out.update(dipole_au=mu.tolist(), dipole_debye=properties.to_debye(mu).tolist(),
               polarizability_au=np.asarray(alpha).tolist(), timings=clock.timings)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{mol!r}: {args.xc} / {args.basis}, E = {out['energy']:.10f} Eh "
          f"({out['iterations']} SCF cycles)")
    d = out["dipole_debye"]
    print(f"dipole (Debye)   {d[0]:12.6f} {d[1]:12.6f} {d[2]:12.6f}   |mu| = "
          f"{float(np.linalg.norm(d)):.6f}")
    print("polarizability (a.u.)")
    for row in out["polarizability_au"]:
        print("  " + " ".join(f"{x:12.6f}" for x in row))
    _print_timings(out["timings"])
    return 0


def _optimize(args) -> int:
    import numpy as np

    from dftad import geomopt
    from dftad.constants import BOHR_ANGSTROM

    constraints = None
    if args.constraints:
        try:
            with open(args.constraints) as f:
                constraints = f.read()
        except OSError as err:
            raise BadInput(f"cannot read the constraints file: {err}") from err
    if args.max_steps < 1:
        raise BadInput(f"--max-steps must be at least 1, got {args.max_steps}")
    clock = _Clock()
    mol, setup, _ = _build(args, clock)
    quiet = args.json
    if not quiet:
        print(_describe(mol, setup, args), flush=True)
        print(f"{args.optimizer}, {args.convergence.upper()} criteria"
              + (", transition state" if args.transition else ""))
        print(" step  energy (Eh)          dE (Eh)     max|F|     rms|F|  step (A)  trust (A)  SCF")

    def show(st):
        if not quiet:
            print(f"{st.step:5d}  {st.e_tot:.10f}  {st.e_change:10.3e}  {st.max_force:9.2e}  "
                  f"{st.rms_force:9.2e}  {st.displacement * BOHR_ANGSTROM:8.2e}  "
                  f"{'-' if st.trust is None else f'{st.trust:.2e}':>9s}  {st.scf_cycles:3d}",
                  flush=True)

    try:
        opt = clock("optimize", lambda: geomopt.run(
            setup, mol, optimizer=args.optimizer, convergence=args.convergence,
            max_steps=args.max_steps,
            constraints=constraints, transition=args.transition, hessian=args.hessian,
            callback=show))
    except geomopt.SCFNotConverged as err:
        print(f"dftad: error: {err}; try --max-cycle 300, --level-shift 0.3 or --damp 0.5",
              file=sys.stderr)
        return 3
    if args.trajectory:
        geomopt.write_trajectory(args.trajectory, mol, opt.trajectory)
    if args.output:
        opt.mol.write_xyz(args.output, f"E = {opt.e_tot:.10f} Eh dftad optimize {args.xc}/"
                          f"{args.basis}")
    fmax, frms = geomopt.force_stats(opt.result.forces)
    out = _summary(mol, setup, args, opt.result)
    out.update(energy=opt.e_tot, converged=opt.converged, steps=opt.steps,
               symbols=list(mol.symbols), coordinates_angstrom=opt.mol.coords_angstrom.tolist(),
               max_force=fmax, rms_force=frms, trajectory=[s.e_tot for s in opt.trajectory],
               transition=args.transition)
    if opt.vibrations is not None:
        out.update(frequencies_cm1=opt.vibrations.frequencies_cm1.tolist(),
                   n_imaginary=opt.n_imaginary)
    out["timings"] = clock.timings
    if args.json:
        print(json.dumps(out))
    else:
        state = "converged" if opt.converged else "NOT converged"
        print(f"{state} after {opt.steps} steps: E = {opt.e_tot:.10f} Eh, max|F| {fmax:.2e} "
              "Eh/Bohr")
        print(opt.mol.to_xyz(f"optimized {args.xc}/{args.basis}"), end="")
        if opt.vibrations is not None:
            freqs = " ".join(f"{f:.1f}" for f in opt.vibrations.frequencies_cm1)
            print(f"frequencies (cm-1, imaginary negative): {freqs}")
        _print_timings(out["timings"])
    if not opt.converged:
        print(f"dftad: error: the optimization did not converge in {args.max_steps} steps "
              f"(max|F| {fmax:.1e} Eh/Bohr); try --max-steps or another start", file=sys.stderr)
        return 3
    expected = 1 if args.transition else 0
    if opt.n_imaginary is not None and opt.n_imaginary != expected:
        kind = "transition state" if args.transition else "minimum"
        print(f"dftad: warning: the {kind} has {opt.n_imaginary} imaginary frequencies "
              f"(expected {expected}): {np.round(opt.vibrations.frequencies_cm1[:3], 1)}",
              file=sys.stderr)
        return 4
    return 0


def _integrals(args) -> int:
    import jax
    import numpy as np

    import dftad
    from dftad.integrals import one_electron, two_electron

    clock = _Clock()

    def setup():
        mol = _load(args)
        basis = dftad.Basis.build(mol, args.basis, cart=args.cart)
        coords = jax.numpy.asarray(mol.coords)
        return mol, basis, coords, two_electron.build_plan(basis, coords)

    mol, basis, coords, plan = clock("setup", setup)
    charges = jax.numpy.asarray(mol.atomic_numbers, dtype=float)

    def ints(basis, coords, plan):
        return (one_electron.overlap(basis, coords), one_electron.kinetic(basis, coords),
                one_electron.nuclear(basis, coords, charges),
                two_electron.eri_s8(plan, basis, coords))

    compiled = _compile(clock, ints, basis, coords, plan)
    s, t, v, eri = (np.asarray(x) for x in clock(
        "integrals", lambda: jax.block_until_ready(compiled(basis, coords, plan))))
    out = {"molecule": repr(mol), "natm": mol.natm, "nelectron": mol.nelectron,
           "basis": args.basis, "cart": args.cart, "nao": basis.nao,
           "energy_nuc": mol.energy_nuc(), "n_eri_unique": int(eri.size),
           "quartets_computed": int(sum(c.nq for c in plan.classes)),
           "trace_s": float(np.trace(s)), "timings": clock.timings}
    if not args.no_check:
        from dftad.interop.pyscf import to_pyscf_mole

        pmol = to_pyscf_mole(mol, args.basis, args.cart)
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
    print(f"unique ERIs            {out['n_eri_unique']} "
          f"({out['quartets_computed']} shell quartets after screening)")
    _print_timings(out["timings"])
    for name, err in out.get("max_abs_diff_vs_pyscf", {}).items():
        print(f"max |dftad - PySCF|    {name:<11s} {err:.2e}")
    return 0


def _train_args(p):
    p.add_argument("config", help="training config (TOML; see dftad.train)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is in the config's folder")
    p.add_argument("--compare", default="b3lyp,pbe",
                   help="functionals the final report compares with (comma separated; '' none)")
    p.add_argument("--no-report", action="store_true", help="skip the final report")
    p.add_argument("--report-splits", default="train,validation,test",
                   help="the splits the final report evaluates (comma separated)")


def _train(args) -> int:
    from dftad import train

    cfg = train.read_config(args.config)
    state = train.run(cfg, resume=args.resume)
    folder = cfg["run"]["checkpoint"]
    print(f"{state.step} steps; checkpoint, metrics.csv in {folder}")
    if not args.no_report:
        compare = [c.strip() for c in args.compare.split(",") if c.strip()]
        splits = [s.strip() for s in args.report_splits.split(",") if s.strip()]
        bad = [s for s in splits if s not in train.SPLITS]
        if bad:
            raise train.ConfigError(f"--report-splits: unknown split {bad[0]!r}; known: "
                                    f"{', '.join(train.SPLITS)}")
        print(train.report(cfg, state, compare, splits, progress=True))
    return 0


COMMANDS = {
    "energy": ("SCF energy (HF or Kohn-Sham DFT) of a molecule", _energy_args, _energy),
    "frequencies": ("harmonic frequencies and IR intensities (analytic Hessian through the "
                    "implicit SCF) at the given geometry", _frequencies_args, _frequencies),
    "properties": ("dipole moment and static polarizability", _calculation_args, _properties),
    "optimize": ("geometry optimization (minimum or, with --transition, a saddle point) with "
                 "geomeTRIC", _optimize_args, _optimize),
    "train": ("train a learnable functional on reaction energies through the SCF",
              _train_args, _train),
    "integrals": ("compute the one- and two-electron integrals of a molecule and compare with "
                  "PySCF", _integrals_args, _integrals),
}
"""name -> (help, function adding the options, function running the command)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dftad", description="Differentiable DFT for molecules (JAX).")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=text))
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    import dftad
    from dftad import pieces

    dftad.enable_compilation_cache()  # a second run of the same calculation skips compiling
    job = repr(sorted(vars(args).items()))
    preloading = pieces.preload(job)  # what this command loaded last time, in a thread
    code = 2
    try:
        code = COMMANDS[args.command][2](args)
        return code
    except (ValueError, ImportError) as err:  # bad input; an optional dependency missing
        print(f"dftad: error: {err}", file=sys.stderr)
        return 2
    finally:
        pieces.remember(job if code == 0 else None, preloading)


def entry() -> None:
    """The ``dftad`` command: :func:`main`, then the process ends at once. JAX's exit handlers
    would release every compiled program one by one (~0.5 s after energy and forces, a tenth of
    a cached run); by then every result is printed and every file written and closed (the
    commands write files in ``with`` blocks, compiles finish before their results are used, no
    thread is left running), so nothing is lost without them. An exception ends the process the
    usual way."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
