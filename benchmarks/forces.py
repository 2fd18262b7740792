"""Energy + forces timings: dftad vs PySCF (dft.RKS + nuc_grad_method, same grid) in one process.

    python benchmarks/forces.py [--molecules water ethanol benzene caffeine] [--xc b3lyp]
                                [--hessian water] [--hessian-xc hf b3lyp]

For each molecule (def2-SVP): dftad compile time and warm time of the energy alone and of
energy + forces (one jit each), the forces/energy cost ratio, PySCF's SCF + gradient time (with
and without grid response) and the ratio dftad / PySCF, plus the largest force difference.
``--hessian NAME`` also times one Hessian per ``--hessian-xc`` functional (default HF) in
def2-SVP: for HF through the pieces (analytic second derivatives and CPHF, what ``dftad
frequencies`` runs) and as one program (implicit SCF, forward over reverse; ``--hessian-paths``
picks), for a functional as the program, against PySCF's SCF + ``Hessian()``.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from _harness import best_of, print_scf_header, pyscf_rks, scf_parser, timed

import dftad
from dftad import energy, guess, hamiltonian
from dftad.interop.pyscf import to_pyscf_mole

REPEAT = 2
"""Warm timings are the best of this many runs, for dftad and PySCF alike (``--repeat``)."""


def case(name, basis, xc, level, repeat):
    mol = dftad.load(name)
    setup = dftad.build(mol, basis, xc, grid_level=level)
    coords = jnp.asarray(mol.coords)
    res_e, c_e, t_e = timed(energy.kernel, setup, coords, repeat=repeat)
    res_f, c_f, t_f = timed(dftad.energy_and_forces, setup, coords, repeat=repeat)

    def pyscf_scf():
        # a fresh object per run: a second kernel() of the same object re-uses its ERIs and grid
        mf = pyscf_rks(mol, basis, xc, level, setup)
        mf.kernel()
        return mf

    t_scf, mf = best_of(pyscf_scf, repeat)
    g = mf.nuc_grad_method()
    t_grad, _ = best_of(g.kernel, repeat)
    g.grid_response = True
    t_grad_gr, g_ref = best_of(g.kernel, repeat)
    df = np.abs(np.asarray(res_f.forces) + g_ref).max()
    print(
        f"{name:<9s} nao {setup.nao:4d}  compile E {c_e:5.1f} s, E+F {c_f:5.1f} s | warm E "
        f"{t_e:6.2f} s ({int(res_e.scf.cycles)} cyc), E+F {t_f:6.2f} s (F/E {t_f / t_e:4.2f}) | "
        f"PySCF SCF {t_scf:6.2f} s + grad {t_grad:6.2f} s (grid response {t_grad_gr:6.2f} s) | "
        f"ratio E+F {t_f / (t_scf + t_grad_gr):5.2f} | max |dF| {df:.1e} "
        f"conv {bool(res_f.converged)}",
        flush=True,
    )


def hessian_case(name, basis, xc, level, repeat, paths=("pieces", "program")):
    """One Hessian of ``name`` (SCF included) through the pieces
    (:func:`dftad.hessian_pieces.hessian`, what ``dftad frequencies`` runs; Hartree-Fock only)
    and as one program (:func:`dftad.hessian`), against PySCF's SCF + ``Hessian()``, which for a
    functional leaves out the grid response that dftad's includes (a timing, the difference
    printed for scale). The pieces go first, in a process that has compiled none of them
    ("compile": first call minus the warm one)."""
    from pyscf import scf

    from dftad import hessian_pieces

    mol = dftad.load(name)
    setup = dftad.build(mol, basis, xc, grid_level=level)
    coords = jnp.asarray(mol.coords)
    if xc == "hf":
        mf = scf.RHF(to_pyscf_mole(mol, basis))
        mf.conv_tol = 1e-10
    else:
        mf = pyscf_rks(mol, basis, xc, level, setup)
    t0 = time.perf_counter()
    mf.kernel()
    h_ref = mf.Hessian().kernel().transpose(0, 2, 1, 3)
    t_ref = time.perf_counter() - t0
    runs = {"pieces": lambda: hessian_pieces.hessian(setup, coords),
            "program": lambda: timed(dftad.hessian, setup, coords, repeat=repeat)}
    for path in paths:
        if path == "pieces" and xc != "hf":
            continue
        if path == "pieces":
            t0 = time.perf_counter()
            runs[path]()
            first = time.perf_counter() - t0
            t_h, hess = best_of(runs[path], repeat)
            c_h = first - t_h
        else:
            hess, c_h, t_h = runs[path]()
        diff = np.abs(np.asarray(hess) - h_ref).max()
        grid = "" if xc == "hf" else " (PySCF's without grid response)"
        print(f"Hessian {name} {xc}/{basis} ({path}): dftad compile {c_h:.1f} s, warm {t_h:.2f} s "
              f"(SCF included) | PySCF SCF + Hessian{grid} {t_ref:.2f} s | ratio "
              f"{t_h / t_ref:.2f} | max diff {diff:.1e}", flush=True)


def path_independence(name, basis, xc, level):
    """Time one implicit gradient (of the HOMO energy, not variational) from a poor initial
    guess (core Hamiltonian) and from the converged density: the SCF cycles differ, the
    derivative part must not."""
    mol = dftad.load(name)
    setup = dftad.build(mol, basis, xc, grid_level=level)
    coords = jnp.asarray(mol.coords)

    def homo(c, dm0):
        return energy.kernel(setup, c, dm0=dm0).scf.mo_energy[setup.occupation.homo]

    ints = jax.jit(hamiltonian.integrals)(setup, coords)
    poor = guess.core_guess(ints.h1e, ints.s1e, setup.occupation)
    good = jax.jit(energy.kernel)(setup, coords).scf.dm
    grad = jax.jit(jax.value_and_grad(homo))
    cycles = jax.jit(lambda c, d: energy.kernel(setup, c, dm0=d).scf.cycles)
    jax.block_until_ready(grad(coords, good))  # compile
    jax.block_until_ready(cycles(coords, good))
    for label, dm0 in (("poor guess", poor), ("converged guess", good)):
        t, _ = best_of(functools.partial(grad, coords, dm0), 3)
        print(f"d HOMO/dR {name} {xc}/{basis}, {label}: {int(cycles(coords, dm0))} SCF cycles,"
              f" {t:.2f} s (SCF + implicit gradient, best of 3)")


def main():
    ap = scf_parser(__doc__, molecules_nargs="*")
    ap.add_argument("--repeat", type=int, default=REPEAT, help="warm runs per timing (best of)")
    ap.add_argument("--hessian", nargs="*", default=["water"])
    ap.add_argument("--hessian-xc", nargs="*", default=["hf"],
                    help="functionals of the Hessians (hf: also the pieces; others: the program)")
    ap.add_argument("--hessian-paths", nargs="*", default=["pieces", "program"],
                    choices=["pieces", "program"], help="which Hessians to time")
    ap.add_argument("--path", nargs="*", default=["water"],
                    help="molecules for the poor-vs-good initial guess gradient timing")
    args = ap.parse_args()
    print_scf_header(args)
    # each case compiles large programs; XLA:CPU maps them into memory, and one process ran out of
    # mappings ("LLVM ERROR: Unable to allocate section memory") at the Hessian: free them
    for name in args.molecules:
        case(name, args.basis, args.xc, args.grid_level, args.repeat)
        jax.clear_caches()
    for name in args.hessian:
        for xc in args.hessian_xc:
            hessian_case(name, args.basis, xc, args.grid_level, args.repeat, args.hessian_paths)
            jax.clear_caches()
    for name in args.path:
        path_independence(name, args.basis, args.xc, args.grid_level)


if __name__ == "__main__":
    main()
