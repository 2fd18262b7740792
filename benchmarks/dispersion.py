"""DFT-D3 timings: dftad's JAX D3 against the ``dftd3`` package (simple-dftd3) in one process.

    python benchmarks/dispersion.py [--xc b3lyp] [--repeat 5] [--natm 200]

Warm energy + gradient (best of ``--repeat``) of the largest shipped molecule and of a random
``--natm``-atom C/H/N/O cluster (a jittered cubic lattice, neighbours ~2.6 Bohr apart), D3(BJ)
with and without the three-body (ATM) term; the compile time separately; the ratio dftad /
dftd3 and the largest energy and gradient differences.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from _harness import best_of

import dftad
from dftad import dispersion


def _cluster(natm: int, seed: int = 0):
    """Atomic numbers and Bohr coordinates of a random C/H/N/O cluster."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(natm ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    coords = 2.6 * grid[:natm] + rng.uniform(-0.3, 0.3, (natm, 3))
    return rng.choice([1, 6, 7, 8], size=natm), coords


def case(label, numbers, coords, xc, atm, repeat):
    from dftd3.interface import DispersionModel, RationalDampingParam

    model = dispersion.setup(numbers)
    params = dispersion.d3_params(xc, "bj", atm=atm)
    fn = jax.jit(jax.value_and_grad(dispersion.energy, argnums=1))
    t0 = time.perf_counter()
    compiled = fn.lower(model, coords, params).compile()
    t_compile = time.perf_counter() - t0
    t_ours, (e, g) = best_of(lambda: jax.block_until_ready(compiled(model, coords, params)),
                             repeat)
    ref_model = DispersionModel(np.asarray(numbers), np.asarray(coords))
    ref_param = RationalDampingParam(method=xc, atm=atm)
    t_ref, ref = best_of(lambda: ref_model.get_dispersion(ref_param, grad=True), repeat)
    de = abs(float(e) - ref["energy"])
    dg = np.abs(np.asarray(g) - ref["gradient"]).max()
    print(f"| {label} | {len(numbers)} | {'yes' if atm else 'no'} | {t_compile:.2f} s | "
          f"{1e3 * t_ours:.2f} ms | {1e3 * t_ref:.2f} ms | {t_ours / t_ref:.2f} | {de:.1e} | "
          f"{dg:.1e} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xc", default="b3lyp")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--natm", type=int, default=200)
    args = ap.parse_args()
    largest = max(dftad.shipped_molecules(), key=lambda n: dftad.load(n).natm)
    mol = dftad.load(largest)
    systems = [(largest, mol.atomic_numbers, mol.coords),
               ("random cluster", *_cluster(args.natm))]
    print(f"D3(BJ) {args.xc}: warm energy + gradient, best of {args.repeat}")
    print("| system | natm | ATM | compile | dftad | dftd3 | ratio | max dE (Ha) | "
          "max dG (Ha/Bohr) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, numbers, coords in systems:
        for atm in (False, True):
            case(label, numbers, np.asarray(coords), args.xc, atm, args.repeat)


if __name__ == "__main__":
    main()
