"""The device check of docs/gpu.md: the same dftad code on whatever JAX runs on (CPU or GPU).

    python benchmarks/gpu.py --out cpu.json                              # here, the reference
    JAX_PLATFORMS=cuda python benchmarks/gpu.py --reference cpu.json --out gpu.json

Phases, each written to ``--out`` as soon as it ends (a run stopped early keeps what it did):

1. ``energy_forces``: B3LYP/def2-SVP energy and forces of water (the README's job) and, with
   ``--large`` (last), of benzene: first call (compile + run) and the warm time (best of three).
2. ``conformers``: ``--conformers`` random conformers of ethanol (HF/STO-3G) minimised by
   :func:`dftad.bfgs.minimize_batch` as one batch and one at a time (:func:`dftad.bfgs.minimize`
   jitted once): first and warm times, evaluations, final energies, and the largest
   batch-versus-sequential energy difference.

With ``--reference`` (this script's JSON from another device), prints the largest energy and
force differences from it, phase by phase (the same code on two devices: rounding only).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

import dftad
from dftad import bfgs


def timed(fn, *args):
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t


def energy_forces(name, basis, xc):
    mol = dftad.load(name)
    setup = dftad.build(mol, basis, xc)
    coords = jax.numpy.asarray(mol.coords)
    fn = jax.jit(dftad.energy_and_forces)
    res, first = timed(fn, setup, coords)
    warm = min(timed(fn, setup, coords)[1] for _ in range(3))
    return {"molecule": name, "basis": basis, "xc": xc, "nao": setup.nao, "first_s": first,
            "warm_s": warm, "e_tot": float(res.e_tot), "forces": np.asarray(res.forces).tolist(),
            "converged": bool(res.converged)}


def conformers(n, seed=0, amplitude=0.1, max_steps=200):
    mol = dftad.load("ethanol")
    setup = dftad.build(mol, "sto-3g", "hf")
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, *np.shape(mol.coords)))
    batch = np.asarray(mol.coords)[None] + d * amplitude / np.linalg.norm(d, axis=-1,
                                                                            keepdims=True)
    batched = lambda c: bfgs.minimize_batch(setup, c, max_steps=max_steps)  # noqa: E731
    res, first = timed(batched, batch)
    _, warm = timed(batched, batch)
    one = jax.jit(bfgs.minimize, static_argnames=("max_steps",))
    _, one_first = timed(lambda c: one(setup, c, max_steps=max_steps), batch[0])
    seq, seq_s = [], 0.0
    for c in batch:
        r, t = timed(lambda c: one(setup, c, max_steps=max_steps), c)
        seq.append(r)
        seq_s += t
    e_batch = np.asarray(res.e_tot)
    e_seq = np.array([float(r.e_tot) for r in seq])
    return {"molecule": "ethanol", "basis": "sto-3g", "xc": "hf", "conformers": n,
            "batch_first_s": first, "batch_warm_s": warm, "one_first_s": one_first,
            "sequential_warm_s": seq_s, "e_tot": e_batch.tolist(), "e_sequential": e_seq.tolist(),
            "steps": np.asarray(res.steps).tolist(),
            "converged": np.asarray(res.converged).tolist(),
            "batch_vs_sequential": float(np.abs(e_batch - e_seq).max())}


def compare(phase, got, ref):
    """Largest |E - E_ref| (and |F - F_ref|) of a phase against the reference run."""
    if phase == "energy_forces":
        for g in got:
            r = next((r for r in ref if r["molecule"] == g["molecule"]), None)
            if r is not None:
                de = abs(g["e_tot"] - r["e_tot"])
                df = np.abs(np.asarray(g["forces"]) - np.asarray(r["forces"])).max()
                print(f"  {g['molecule']}: |E - E_ref| {de:.1e} Ha, max |F - F_ref| {df:.1e} "
                      "Ha/Bohr")
    else:
        de = np.abs(np.asarray(got["e_tot"]) - np.asarray(ref["e_tot"])).max()
        print(f"  conformers: max |E - E_ref| {de:.1e} Ha")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu.json")
    ap.add_argument("--reference", help="this script's JSON from another device")
    ap.add_argument("--conformers", type=int, default=8)
    ap.add_argument("--large", action="store_true", help="also benzene energy and forces")
    args = ap.parse_args(argv)
    ref = json.load(open(args.reference)) if args.reference else {}
    out = {"device": str(jax.devices()[0]), "jax": jax.__version__}
    print(f"device {out['device']}, jax {out['jax']}", flush=True)

    def save():
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)

    out["energy_forces"] = []

    def one_molecule(name):
        r = energy_forces(name, "def2-svp", "b3lyp")
        out["energy_forces"].append(r)
        save()
        print(f"{name} B3LYP/def2-SVP (nao {r['nao']}) E+F: first call {r['first_s']:.1f} s, "
              f"warm {r['warm_s']:.3f} s, E = {r['e_tot']:.10f}", flush=True)
        if "energy_forces" in ref:
            compare("energy_forces", [r], ref["energy_forces"])

    one_molecule("water")
    r = out["conformers"] = conformers(args.conformers)
    save()
    print(f"ethanol HF/STO-3G, {r['conformers']} conformers: batch first {r['batch_first_s']:.1f} "
          f"s, warm {r['batch_warm_s']:.2f} s; one at a time first {r['one_first_s']:.1f} s, "
          f"all warm {r['sequential_warm_s']:.2f} s; batch vs sequential "
          f"{r['batch_vs_sequential']:.1e} Ha; evaluations {r['steps']}", flush=True)
    if "conformers" in ref:
        compare("conformers", r, ref["conformers"])
    if args.large:
        one_molecule("benzene")

if __name__ == "__main__":
    main()
