"""Energy + forces timings: dftad vs PySCF (dft.RKS + nuc_grad_method, same grid) in one process.

    python benchmarks/forces.py [--molecules water ethanol benzene caffeine] [--xc b3lyp]
                                [--hessian water]

For each molecule (def2-SVP): dftad compile time and warm time of the energy alone and of
energy + forces (one jit each), the forces/energy cost ratio, PySCF's SCF + gradient time (with
and without grid response) and the ratio dftad / PySCF, plus the largest force difference.
``--hessian NAME`` also times one HF/def2-SVP Hessian (implicit SCF, forward over reverse) against
``pyscf.hessian.rhf``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import dftad
from dftad import energy, guess, hamiltonian, properties


REPEAT = 2
"""Warm timings are the best of this many runs, for dftad and PySCF alike."""


def _timed(fn, *args):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t_compile = time.perf_counter() - t0
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return out, t_compile, min(times)


def _best(fn):
    """(result, best wall time of REPEAT calls)."""
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def _pyscf_mol(mol, basis):
    from pyscf import gto

    return gto.M(atom=mol.to_pyscf_atom(), unit="Bohr", basis=basis, charge=mol.charge,
                 spin=mol.spin, verbose=0)


def case(name, basis, xc, level):
    from pyscf import dft

    mol = dftad.load(name)
    setup = dftad.build(mol, basis, xc, grid_level=level)
    coords = jnp.asarray(mol.coords)
    res_e, c_e, t_e = _timed(energy.kernel, setup, coords)
    res_f, c_f, t_f = _timed(dftad.energy_and_forces, setup, coords)

    def pyscf_scf():
        # a fresh object per run: a second kernel() of the same object re-uses its ERIs and grid
        mf = dft.RKS(_pyscf_mol(mol, basis))
        mf.xc = xc
        mf.grids.level = level
        mf.small_rho_cutoff = 0
        mf.conv_tol = 1e-10
        # the same convergence as dftad's defaults (|dE| < 1e-10, commutator norm < 1e-7; PySCF's
        # orbital-gradient norm is 1/sqrt(2) of the commutator's: slightly looser for PySCF)
        mf.conv_tol_grad = 1e-7
        if setup.density_fitting:
            mf = mf.density_fit(auxbasis=setup.jk.auxbasis_name)
        mf.kernel()
        return mf

    mf, t_scf = _best(pyscf_scf)
    g = mf.nuc_grad_method()
    _, t_grad = _best(g.kernel)
    g.grid_response = True
    g_ref, t_grad_gr = _best(g.kernel)
    df = np.abs(np.asarray(res_f.forces) + g_ref).max()
    print(
        f"{name:<9s} nao {setup.nao:4d}  compile E {c_e:5.1f} s, E+F {c_f:5.1f} s | warm E {t_e:6.2f} s"
        f" ({int(res_e.scf.cycles)} cyc), E+F {t_f:6.2f} s (F/E {t_f / t_e:4.2f}) | PySCF SCF {t_scf:6.2f} s"
        f" + grad {t_grad:6.2f} s (grid response {t_grad_gr:6.2f} s) | ratio E+F "
        f"{t_f / (t_scf + t_grad_gr):5.2f} | max |dF| {df:.1e} conv {bool(res_f.converged)}",
        flush=True,
    )


def hessian_case(name, basis):
    from pyscf import scf

    mol = dftad.load(name)
    setup = dftad.build(mol, basis, "hf")
    coords = jnp.asarray(mol.coords)
    hess, c_h, t_h = _timed(properties.hessian, setup, coords)
    mf = scf.RHF(_pyscf_mol(mol, basis))
    mf.conv_tol = 1e-10
    t0 = time.perf_counter()
    mf.kernel()
    h_ref = mf.Hessian().kernel()
    t_ref = time.perf_counter() - t0
    diff = np.abs(np.asarray(hess) - h_ref.transpose(0, 2, 1, 3)).max()
    print(f"Hessian {name} HF/{basis}: dftad compile {c_h:.1f} s, warm {t_h:.2f} s (SCF included)"
          f" | PySCF SCF + Hessian {t_ref:.2f} s | ratio {t_h / t_ref:.2f} | max diff {diff:.1e}")


def path_independence(name, basis, xc, level):
    """Time one implicit gradient (of the HOMO energy, not variational) from a poor initial
    guess (core Hamiltonian) and from the converged density: the SCF cycles differ, the
    derivative part must not."""
    from dftad import guess

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
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            jax.block_until_ready(grad(coords, dm0))
            times.append(time.perf_counter() - t0)
        print(f"d HOMO/dR {name} {xc}/{basis}, {label}: {int(cycles(coords, dm0))} SCF cycles,"
              f" {min(times):.2f} s (SCF + implicit gradient, best of 3)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecules", nargs="*", default=["water", "ethanol", "benzene", "caffeine"])
    ap.add_argument("--basis", default="def2-svp")
    ap.add_argument("--xc", default="b3lyp")
    ap.add_argument("--grid-level", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=REPEAT, help="warm runs per timing (best of)")
    ap.add_argument("--hessian", nargs="*", default=["water"])
    ap.add_argument("--path", nargs="*", default=["water"],
                    help="molecules for the poor-vs-good initial guess gradient timing")
    args = ap.parse_args()
    globals()["REPEAT"] = args.repeat
    from pyscf import lib

    print(f"jax {jax.__version__}, PySCF threads {lib.num_threads()}, {args.xc}/{args.basis}, "
          f"grid level {args.grid_level}")
    # each case compiles large programs; XLA:CPU maps them into memory, and one process ran out of
    # mappings ("LLVM ERROR: Unable to allocate section memory") at the Hessian: free them
    for name in args.molecules:
        case(name, args.basis, args.xc, args.grid_level)
        jax.clear_caches()
    for name in args.hessian:
        hessian_case(name, args.basis)
        jax.clear_caches()
    for name in args.path:
        path_independence(name, args.basis, args.xc, args.grid_level)


if __name__ == "__main__":
    main()
