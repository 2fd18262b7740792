"""AO values and their first and second derivatives: dftad's ``eval_ao`` vs PySCF's ``eval_gto``.

    python benchmarks/ao.py [--molecule benzene] [--basis def2-svp] [--level 3] [--repeat 3]

Both codes evaluate the same points (dftad's level-``level`` grid, in dftad's blocks of
:data:`dftad.numint.BLOCK_SIZE` points, one jitted ``lax.map`` over the blocks; PySCF
``mol.eval_gto`` on the flat points, unscreened). For deriv = 0, 1, 2 it prints the compile
time, the best warm time of ``--repeat`` runs, PySCF's (best of as many), and the largest
difference from PySCF; then the cost of deriv 2 relative to deriv 1 (issue 23's target: at most 3x).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax
import jax.numpy as jnp
import numpy as np
from _harness import best_of, compile_timed

import dftad
from dftad.basis import Basis
from dftad.grid import Grid, block_grid
from dftad.integrals.ao import eval_ao
from dftad.interop.pyscf import to_pyscf_mole
from dftad.numint import BLOCK_SIZE


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--molecule", default="benzene")
    ap.add_argument("--basis", default="def2-svp")
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from pyscf import lib

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; PySCF threads "
          f"{lib.num_threads()}; jax {jax.__version__} {jax.devices()[0].platform}", flush=True)
    mol = dftad.load(args.molecule)
    pmol = to_pyscf_mole(mol, args.basis)
    basis = Basis.build(mol, args.basis)
    coords = jnp.asarray(mol.coords)
    points, weights = jax.jit(Grid.build(mol, level=args.level).points)(coords)
    blocks, _ = block_grid(points, weights, BLOCK_SIZE)
    npts = points.shape[0]
    flat = np.asarray(points)
    print(f"{mol!r} {args.basis}: nao {basis.nao}, {npts} points in blocks of {BLOCK_SIZE}")
    print("| deriv | components | dftad compile | dftad warm | PySCF | ratio | max diff |")
    print("|---|---|---|---|---|---|---|")
    warm = {}
    for deriv in (0, 1, 2):
        fn, t_compile = compile_timed(jax.jit(eval_ao, static_argnames=("deriv",)),
                                      basis, coords, blocks, deriv=deriv)
        t_warm, ao = best_of(lambda fn=fn: fn(basis, coords, blocks), args.repeat)
        warm[deriv] = t_warm
        ncomp = ao.shape[1]
        # (nblock, ncomp, block, nao) -> (ncomp, npts, nao) without the padding points
        ours = np.moveaxis(np.asarray(ao), 1, 0).reshape(ncomp, -1, basis.nao)[:, :npts]
        kind = "cart" if basis.layout.cart else "sph"
        name = f"GTOval_{kind}_deriv{deriv}" if deriv else f"GTOval_{kind}"
        t_pyscf, ref = best_of(lambda name=name: pmol.eval_gto(name, flat), args.repeat)
        ref = np.asarray(ref).reshape(ncomp, npts, basis.nao)
        err = np.abs(ours - ref).max()
        print(f"| {deriv} | {ncomp} | {t_compile:.1f} s | {t_warm:.3f} s | {t_pyscf:.3f} s | "
              f"{t_warm / t_pyscf:.2f} | {err:.1e} |", flush=True)
        del ao, ours, ref
    print(f"deriv 2 / deriv 1: {warm[2] / warm[1]:.2f}x (target <= 3x; components 10 / 4 = 2.5x)")


if __name__ == "__main__":
    main()
