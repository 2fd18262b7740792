"""Integral timings: dftad vs PySCF (libcint) in one process, same molecules, same CPU.

    python benchmarks/integrals.py [--repeat 3] [--skip-3c] [--classes]

Prints, for each case, dftad's setup (basis + screening plan), compile and warm times, PySCF's
time, the ratio dftad/PySCF (warm) and the largest difference between the two results:

* one-electron matrices (S, T, V) of benzene / def2-SVP;
* the 8-fold symmetric ERIs of benzene / def2-SVP (PySCF: ``mol.intor('int2e', aosym='s8')``);
* the 3-centre integrals (ij|P) of caffeine / def2-SVP with PySCF's default auxiliary basis
  (PySCF: ``df.incore.aux_e2(mol, auxmol, 'int3c2e')``, aosym s1).

With ``--classes``, the ERIs' time by quartet class as well (each class kernel jitted alone,
slowest first, with its primitive quartets and the time per primitive quartet), and the s8
packing apart.

Timings are minima over ``--repeat`` warm runs. PySCF uses its default thread count
(``lib.num_threads()``), as does XLA.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from _harness import best_of, compile_timed

import dftad
from dftad.integrals import one_electron, two_electron
from dftad.integrals.eri_kernel import class_integrals, hermite_pairs
from dftad.interop.pyscf import to_pyscf_mole

ONE_ELECTRON = ("int1e_ovlp", "int1e_kin", "int1e_nuc")
"""PySCF's names of S, T and V, in the order dftad's one-electron program returns them."""


def _report(name, setup, compile_s, warm, ref_s, err):
    print(
        f"{name:<34s} setup {setup:6.2f} s  compile {compile_s:6.2f} s  warm {warm:7.3f} s  "
        f"PySCF {ref_s:7.3f} s  ratio {warm / ref_s:5.2f}  max|diff| {err:.1e}",
        flush=True,
    )


def _one_electron(basis, coords, z):
    return (one_electron.overlap(basis, coords), one_electron.kinetic(basis, coords),
            one_electron.nuclear(basis, coords, z))


def one_electron_case(mol, basis_name, repeat):
    t0 = time.perf_counter()
    basis = dftad.Basis.build(mol, basis_name)
    coords = jax.numpy.asarray(mol.coords)
    z = jax.numpy.asarray(mol.atomic_numbers, dtype=float)
    setup = time.perf_counter() - t0
    fn = jax.jit(lambda b, c: _one_electron(b, c, z))
    compiled, compile_s = compile_timed(fn, basis, coords)
    warm, (s, t, v) = best_of(lambda: compiled(basis, coords), repeat)
    pmol = to_pyscf_mole(mol, basis_name)
    ref_s, ref = best_of(lambda: [pmol.intor(k) for k in ONE_ELECTRON], repeat)
    err = max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip((s, t, v), ref))
    _report(f"S,T,V  {mol!r} {basis_name} (nao {basis.nao})", setup, compile_s, warm, ref_s, err)


def eri_case(mol, basis_name, repeat):
    t0 = time.perf_counter()
    basis = dftad.Basis.build(mol, basis_name)
    coords = jax.numpy.asarray(mol.coords)
    plan = two_electron.build_plan(basis, coords)
    setup = time.perf_counter() - t0
    compiled, compile_s = compile_timed(jax.jit(two_electron.eri_s8), plan, basis, coords)
    warm, eri = best_of(lambda: compiled(plan, basis, coords), repeat)
    del eri
    pmol = to_pyscf_mole(mol, basis_name)
    ref_s, ref = best_of(lambda: pmol.intor("int2e", aosym="s8"), repeat)
    eri = compiled(plan, basis, coords)
    err = float(np.abs(np.asarray(eri) - ref).max())
    _report(f"ERI s8 {mol!r} {basis_name} (nao {basis.nao})", setup, compile_s, warm, ref_s, err)


def eri_classes(mol, basis_name, repeat):
    """The ERIs' warm time by quartet class (``class_integrals`` of each class jitted alone, its
    Hermite pairs computed outside), slowest first, then the s8 packing of all blocks."""
    basis = dftad.Basis.build(mol, basis_name)
    coords = jax.numpy.asarray(mol.coords)
    plan = two_electron.build_plan(basis, coords)
    rows, total = [], 0.0
    for cls, idx in zip(plan.classes, plan.index):
        bs, ks = plan.bra_sets[cls.bra], plan.ket_sets[cls.ket]
        lab, lcd = bs.la + bs.lb, ks.la + ks.lb
        args = (hermite_pairs(basis, coords, bs, ket=False),
                hermite_pairs(basis, coords, ks, ket=True), idx)
        fn = jax.jit(lambda hb, hk, idx, lab=lab, lcd=lcd, nq=cls.nq:
                     class_integrals(hb, hk, lab, lcd, idx, nq))
        compiled, _ = compile_timed(fn, *args)
        warm, _ = best_of(lambda compiled=compiled, args=args: compiled(*args), repeat)
        total += warm
        nprim = int((np.asarray(idx[2]) < cls.nq).sum())
        rows.append((warm, f"  ({bs.la}{bs.lb}|{ks.la}{ks.lb})  quartets {cls.nq:8d}  primitive "
                           f"{nprim:9d}  {warm:7.3f} s  {1e9 * warm / max(nprim, 1):7.1f} ns each"))
    for _, line in sorted(rows, reverse=True):
        print(line)
    blocks = jax.jit(two_electron.eri_blocks)(plan, basis, coords)
    pack, _ = compile_timed(jax.jit(two_electron.pack_s8), plan, basis, blocks)
    warm, _ = best_of(lambda: pack(plan, basis, blocks), repeat)
    print(f"  class kernels {total:.3f} s, s8 packing {warm:.3f} s", flush=True)


def int3c_case(mol, basis_name, repeat):
    from pyscf import df

    pmol = to_pyscf_mole(mol, basis_name)
    auxname = df.addons.make_auxbasis(pmol)
    auxmol = df.addons.make_auxmol(pmol, auxname)
    t0 = time.perf_counter()
    basis = dftad.Basis.build(mol, basis_name)
    aux = dftad.Basis.build(mol, auxname)
    coords = jax.numpy.asarray(mol.coords)
    plan = two_electron.build_plan(basis, coords, aux, kind="3c")
    setup = time.perf_counter() - t0
    compiled, compile_s = compile_timed(jax.jit(two_electron.int3c2e), plan, basis, aux, coords)
    warm, _ = best_of(lambda: compiled(plan, basis, aux, coords), repeat)
    ref_s, ref = best_of(lambda: df.incore.aux_e2(pmol, auxmol, "int3c2e"), repeat)
    out = compiled(plan, basis, aux, coords)
    err = float(np.abs(np.asarray(out) - ref).max())
    _report(f"int3c2e {mol!r} {basis_name} (naux {aux.nao})", setup, compile_s, warm, ref_s, err)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-3c", action="store_true")
    ap.add_argument("--classes", action="store_true", help="the ERIs' time by quartet class")
    args = ap.parse_args()
    from pyscf import lib

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"PySCF threads {lib.num_threads()}")
    benzene = dftad.load("benzene")
    one_electron_case(benzene, "def2-svp", args.repeat)
    eri_case(benzene, "def2-svp", args.repeat)
    if args.classes:
        eri_classes(benzene, "def2-svp", args.repeat)
    if not args.skip_3c:
        int3c_case(dftad.load("caffeine"), "def2-svp", args.repeat)


if __name__ == "__main__":
    main()
