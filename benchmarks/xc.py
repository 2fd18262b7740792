"""XC energy and potential matrix: dftad vs PySCF's ``nr_rks`` in one process, same points.

    python benchmarks/xc.py [--repeat 5] [--xc b3lyp,scan] [--blocks 2048,4096,8192,16384]
                            [--molecule benzene] [--basis def2-svp] [--level 3]

The density matrix is that of a converged PySCF B3LYP calculation (its own default grid). dftad's
level-``level`` grid points and weights are handed to PySCF through a ``Grids`` object, so both
codes integrate on identical points. For every functional and block size it prints:

* dftad ``ao``: AO values and first derivatives on the blocked grid (``ao_blocks``, jitted), done
  once per geometry and re-used by every SCF cycle; compile and warm time;
* dftad ``xc``: ``exc_vxc`` (E_xc and V_xc by AD over the blocks, jitted) on those AO values;
  compile and warm time;
* PySCF ``nr_rks`` on the same points: unscreened (``non0tab = None``) and with PySCF's own
  AO screening mask (``Grids.make_mask``); both evaluate AOs inside ``nr_rks`` on every call;
* the largest differences of E_xc and V_xc between the two.

The summary picks the block size with the smallest ao + xc time and gives two ratios against the
faster PySCF variant: ``(ao + xc) / PySCF`` (one XC build at a new geometry) and ``xc / PySCF``
(one SCF cycle at a fixed geometry, AOs already evaluated). For context it also times PySCF's
``nr_rks`` on PySCF's own grid of the same level (sorted into boxes, negligible weights dropped,
screened), which is how a PySCF SCF runs. Timings are minima over ``--repeat`` warm runs; PySCF
uses its default thread count (``lib.num_threads()``), as does XLA.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax
import jax.numpy as jnp
import numpy as np
from _harness import best_of, compile_timed

import dftad
from dftad.basis import Basis
from dftad.density import density
from dftad.grid import Grid
from dftad.interop.pyscf import to_pyscf_mole
from dftad.numint import XCTYPE, ao_blocks, exc_vxc
from dftad.xc import parse_xc


def exc_vxc_two_pass(f, params, grid_ao, dm):
    """Experiment, not library code: ``dftad.numint.exc_vxc`` (restricted) split into two
    ``lax.scan`` passes, (1) densities and the functional's derivatives (vrho, vsigma, vtau) per
    block, (2) V_xc as the VJP of the density with those cotangents. The loop boundary keeps
    XLA from fusing the functional's backward pass into the (block x nao) products that feed
    the potential GEMMs, at the price of a second density evaluation."""
    xctype = XCTYPE[f.family]

    def dens(ao, dm):
        d = density(ao, dm, xctype)
        return tuple(x for x in (d.rho, d.sigma, d.tau) if x is not None)

    def kernel(w, *x):
        return jnp.sum(w * f.energy_density(params, *x))

    def pass1(carry, blk):
        ao, w = blk
        x = dens(ao, dm)
        e, g = jax.value_and_grad(kernel, argnums=tuple(range(1, 1 + len(x))))(w, *x)
        return carry + e, g

    exc, cot = jax.lax.scan(pass1, jnp.zeros(()), (grid_ao.ao, grid_ao.weights))

    def pass2(carry, blk):
        ao, g = blk
        _, vjp = jax.vjp(lambda d: dens(ao, d), dm)
        return carry + vjp(g)[0], None

    vxc, _ = jax.lax.scan(pass2, jnp.zeros_like(dm), (grid_ao.ao, cot))
    return exc, 0.5 * (vxc + vxc.T)


def reference_density(pmol):
    """Converged PySCF B3LYP density matrix (PySCF's default grid)."""
    from pyscf import dft

    mf = dft.RKS(pmol, xc="b3lyp")
    mf.conv_tol = 1e-9
    mf.kernel()
    if not mf.converged:
        raise RuntimeError("PySCF B3LYP did not converge")
    return np.asarray(mf.make_rdm1())


def pyscf_grids(pmol, points, weights, screened: bool):
    from pyscf import dft

    g = dft.gen_grid.Grids(pmol)
    g.coords = np.asarray(points)
    g.weights = np.asarray(weights)
    g.non0tab = g.make_mask(pmol, g.coords) if screened else None
    return g


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--xc", default="b3lyp,scan")
    ap.add_argument("--blocks", default="2048,4096,8192,16384")
    ap.add_argument("--molecule", default="benzene")
    ap.add_argument("--basis", default="def2-svp")
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--experiments", action="store_true",
                    help="also time the two-pass exc_vxc variant (see exc_vxc_two_pass)")
    args = ap.parse_args(argv)
    from pyscf import dft, lib

    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} cores; PySCF threads "
          f"{lib.num_threads()}; jax {jax.__version__} {jax.devices()[0].platform}", flush=True)
    mol = dftad.load(args.molecule)
    pmol = to_pyscf_mole(mol, args.basis)
    t0 = time.perf_counter()
    dm_np = reference_density(pmol)
    print(f"PySCF B3LYP SCF for the density: {time.perf_counter() - t0:.1f} s", flush=True)
    dm = jnp.asarray(dm_np)

    basis = Basis.build(mol, args.basis)
    grid = Grid.build(mol, level=args.level)
    coords = jnp.asarray(mol.coords)
    points_fn, grid_compile = compile_timed(jax.jit(grid.points), coords)
    grid_warm, (points, weights) = best_of(lambda: points_fn(coords), args.repeat)
    print(f"{mol!r} {args.basis} nao {basis.nao}, level {args.level} grid: {grid.ngrid} points "
          f"(grid compile {grid_compile:.2f} s, warm {grid_warm:.3f} s)", flush=True)

    ni = dft.numint.NumInt()
    own = dft.gen_grid.Grids(pmol)
    own.level = args.level
    own.build()
    blocks = [int(b) for b in args.blocks.split(",")]
    ao_jit = jax.jit(ao_blocks, static_argnames=("family", "block_size"))
    summary = []
    for xc in args.xc.split(","):
        f = parse_xc(xc)
        grids = {s: pyscf_grids(pmol, points, weights, s) for s in (False, True)}
        # compile every block size first; then time everything in interleaved rounds, so that a
        # change of machine load affects dftad and PySCF alike (minimum over rounds)
        variants = {}
        for bs in blocks:
            ao_fn, ao_compile = compile_timed(ao_jit, basis, coords, points, weights,
                                              family=f.family, block_size=bs)
            ga = jax.block_until_ready(ao_fn(basis, coords, points, weights))
            xc_fn, xc_compile = compile_timed(jax.jit(exc_vxc), f, f.params, ga, dm)
            variants[bs] = [ao_fn, ao_compile, xc_fn, xc_compile, ga, [], []]
        if args.experiments:
            two_pass = jax.jit(functools.partial(exc_vxc_two_pass, f))
            tp_ga = variants[blocks[0]][4]
            tp_compiled, tp_compile = compile_timed(two_pass, f.params, tp_ga, dm)
        t_un, t_scr, t_own, t_tp = [], [], [], []
        # one timed call each per round; functools.partial binds this round's loop variables
        for _ in range(args.repeat):
            t_un.append(best_of(functools.partial(ni.nr_rks, pmol, grids[False], xc, dm_np), 1)[0])
            t_scr.append(best_of(functools.partial(ni.nr_rks, pmol, grids[True], xc, dm_np), 1)[0])
            t_own.append(best_of(functools.partial(ni.nr_rks, pmol, own, xc, dm_np), 1)[0])
            for ao_fn, _, xc_fn, _, ga, ta, tx in variants.values():
                ta.append(best_of(functools.partial(ao_fn, basis, coords, points, weights), 1)[0])
                tx.append(best_of(functools.partial(xc_fn, f, f.params, ga, dm), 1)[0])
            if args.experiments:
                t_tp.append(best_of(functools.partial(tp_compiled, f.params, tp_ga, dm), 1)[0])
        t_un, t_scr, t_own = min(t_un), min(t_scr), min(t_own)
        t_ref = min(t_un, t_scr)
        _, e_ref, v_ref = ni.nr_rks(pmol, grids[False], xc, dm_np)
        print(f"\n{xc}: PySCF nr_rks on dftad's points: unscreened {t_un:.3f} s, "
              f"screened {t_scr:.3f} s; on PySCF's own level-{args.level} grid "
              f"({own.weights.size} points) {t_own:.3f} s", flush=True)
        rows = []
        for bs, (_, ao_compile, xc_fn, xc_compile, ga, ta, tx) in variants.items():
            e, v = xc_fn(f, f.params, ga, dm)
            de = abs(float(e) - e_ref)
            dv = float(np.abs(np.asarray(v) - v_ref).max())
            ao_warm, xc_warm = min(ta), min(tx)
            rows.append((bs, ao_compile, ao_warm, xc_compile, xc_warm, de, dv))
            print(f"  block {bs:6d}: ao compile {ao_compile:5.2f} s warm {ao_warm:6.3f} s | "
                  f"exc_vxc compile {xc_compile:5.2f} s warm {xc_warm:6.3f} s | "
                  f"(ao+xc)/PySCF {(ao_warm + xc_warm) / t_ref:5.2f}  xc/PySCF "
                  f"{xc_warm / t_ref:5.2f} | |dE| {de:.1e} max|dV| {dv:.1e}", flush=True)
        if args.experiments:
            e, v = tp_compiled(f.params, tp_ga, dm)
            print(f"  experiment (not library code) two-pass exc_vxc, block {blocks[0]}: compile "
                  f"{tp_compile:5.2f} s warm {min(t_tp):6.3f} s | xc/PySCF "
                  f"{min(t_tp) / t_ref:5.2f} | |dE| {abs(float(e) - e_ref):.1e} max|dV| "
                  f"{float(np.abs(np.asarray(v) - v_ref).max()):.1e}", flush=True)
        del variants, ga
        tp_ga = None
        best = min(rows, key=lambda r: r[2] + r[4])
        summary.append((xc, best, t_un, t_scr, t_ref, t_own))

    print("\nSummary (best block size by ao + xc warm time; ratios against the faster PySCF "
          "variant on identical points):")
    print("| functional | block | dftad ao (compile / warm) | dftad exc_vxc (compile / warm) "
          "| PySCF nr_rks unscreened / screened | (ao+xc)/PySCF | xc/PySCF | max abs dE "
          "| max abs dV |")
    print("|---|---|---|---|---|---|---|---|---|")
    for xc, (bs, aoc, aow, xcc, xcw, de, dv), t_un, t_scr, t_ref, _ in summary:
        print(f"| {xc} | {bs} | {aoc:.1f} s / {aow:.3f} s | {xcc:.1f} s / {xcw:.3f} s | "
              f"{t_un:.3f} s / {t_scr:.3f} s | {(aow + xcw) / t_ref:.2f} | {xcw / t_ref:.2f} | "
              f"{de:.0e} | {dv:.0e} |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    main()
