"""Optimise random conformers of one molecule as one batch with the JAX BFGS minimiser
(:func:`dftad.bfgs.minimize_batch`), and the same conformers one at a time.

    python scripts/optimize_conformers.py                         # ethanol, sto-3g, hf, 8
    python scripts/optimize_conformers.py water --conformers 2 --seed 1
    JAX_PLATFORMS=cuda python scripts/optimize_conformers.py ethanol --xc b3lyp

Conformers are the shipped geometry with every atom moved by ``--amplitude`` Bohr in a random
direction. Prints, per conformer, the energy (Hartree), evaluations and convergence of the batch
and of the one-at-a-time run, then wall times: each first call (compile + run) and a second call
(run only), batched and sequential.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import dftad
from dftad import bfgs


def conformers(mol, n, seed, amplitude):
    """``n`` copies of ``mol.coords`` (Bohr), each atom moved by ``amplitude`` Bohr."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, *np.shape(mol.coords)))
    d *= amplitude / np.linalg.norm(d, axis=-1, keepdims=True)
    return np.asarray(mol.coords)[None] + d


def timed(fn, *args):
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("molecule", nargs="?", default="ethanol", help="shipped name or .xyz path")
    ap.add_argument("--basis", default="sto-3g")
    ap.add_argument("--xc", default="hf")
    ap.add_argument("--conformers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--amplitude", type=float, default=0.1, help="displacement per atom, Bohr")
    ap.add_argument("--max-steps", type=int, default=200)
    args = ap.parse_args(argv)

    mol = dftad.load(args.molecule)
    setup = dftad.build(mol, args.basis, args.xc)
    batch = conformers(mol, args.conformers, args.seed, args.amplitude)
    print(f"{args.molecule} {args.basis} {args.xc}: {args.conformers} conformers, "
          f"device {jax.devices()[0]}")

    batched = lambda c: bfgs.minimize_batch(setup, c, max_steps=args.max_steps)  # noqa: E731
    res, t_batch_first = timed(batched, batch)
    _, t_batch = timed(batched, batch)

    one = jax.jit(bfgs.minimize, static_argnames=("max_steps",))
    single = lambda c: one(setup, c, max_steps=args.max_steps)  # noqa: E731
    _, t_one_first = timed(single, batch[0])
    seq, t_seq = [], 0.0
    for c in batch:
        r, t = timed(single, c)
        seq.append(r)
        t_seq += t

    print(f"{'conf':>4} {'E batch (Ha)':>18} {'steps':>5} {'conv':>5}  "
          f"{'E one (Ha)':>18} {'steps':>5} {'conv':>5}")
    for i, r in enumerate(seq):
        print(f"{i:4d} {float(res.e_tot[i]):18.10f} {int(res.steps[i]):5d} "
              f"{bool(res.converged[i])!s:>5}  {float(r.e_tot):18.10f} {int(r.steps):5d} "
              f"{bool(r.converged)!s:>5}")
    print(f"batched:    first call {t_batch_first:8.2f} s (compile + run), run {t_batch:8.2f} s")
    print(f"sequential: first call {t_one_first:8.2f} s (compile + run of conformer 0), "
          f"run of all {t_seq:8.2f} s")


if __name__ == "__main__":
    main()
