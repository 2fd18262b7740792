"""Which memory layout the ERI class kernel vectorises in: quartets first (today's) or last.

    python benchmarks/eri_layout.py [--chunk 4096]

Times one chunk of primitive quartets of several classes (random pair data, the real Boys
function and R recursion) three ways, forward and with its VJP, and prints ns per primitive
quartet and the compile time:

* ``major``: :func:`dftad.integrals.eri_kernel.primitive_quartets` as it is, arrays
  (quartet, hermite, cartesian) and two batched matmuls (R G_ket, then G_bra^T (R G_ket));
* ``minor``: quartets on the last axis, R_tuv as (quartet,) vectors, G as (hermite, cartesian,
  quartet), the two products as static loops of broadcast multiply-adds over (cartesian,
  quartet) arrays, which XLA vectorises across quartets;
* both agree to 1e-12 (printed).

An experiment for issue 23 (the ERI kernel against libcint), not code the package runs.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import dftad  # noqa: F401  (enables float64)
from dftad.basis import ncart
from dftad.integrals import hermite
from dftad.integrals.eri_kernel import alpha_and_prefactor, primitive_quartets

CLASSES = [(1, 0, 1, 0), (1, 1, 1, 0), (2, 0, 1, 0), (2, 1, 1, 0), (2, 0, 2, 0), (2, 2, 1, 0),
           (2, 1, 2, 1)]


def r_vectors(L, alpha, x, y, z):
    """{(t, u, v): R_tuv (c,)} for t + u + v <= L, on quartet-last vectors
    (:func:`dftad.integrals.hermite.hermite_r_rows`)."""
    rows = hermite.hermite_r_rows(L, alpha, x, y, z)
    return {tuple(tuv): r for tuv, r in zip(hermite.hermite_indices(L).tolist(), rows)}


def quartets_minor(bra, ket, lab, lcd):
    """(nab, ncd, c): ``bra`` = (p (c,), P (3, c), G (hab, nab, c)), ``ket`` likewise (its G
    carries the Hermite sign)."""
    p, pb, gb = bra
    q, pk, gk = ket
    alpha, pref = alpha_and_prefactor(p, q)
    x = pb - pk
    r = r_vectors(lab + lcd, alpha, x[0], x[1], x[2])
    hab, hcd = hermite.hermite_indices(lab), hermite.hermite_indices(lcd)
    out = 0.0
    for ti, t in enumerate(hab):
        rg = sum(r[tuple(t + u)][None, :] * gk[ui] for ui, u in enumerate(hcd))  # (ncd, c)
        out = out + gb[ti][:, None, :] * rg[None, :, :]
    return out * pref


def best(fn, args, repeat=20):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return out, min(times), compile_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=4096)
    c = ap.parse_args().chunk
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, {c} primitive quartets per chunk; ns per primitive quartet")
    for la, lb, lc, ld in CLASSES:
        lab, lcd = la + lb, lc + ld
        nab, ncd = ncart(la) * ncart(lb), ncart(lc) * ncart(ld)
        hab, hcd = len(hermite.hermite_indices(lab)), len(hermite.hermite_indices(lcd))
        bra = (jnp.asarray(rng.uniform(0.5, 3, c)), jnp.asarray(rng.normal(size=(c, 3))),
               jnp.asarray(rng.normal(size=(c, hab, nab))))
        ket = (jnp.asarray(rng.uniform(0.5, 3, c)), jnp.asarray(rng.normal(size=(c, 3))),
               jnp.asarray(rng.normal(size=(c, hcd, ncd))))
        minor_args = tuple((a[0], a[1].T, jnp.moveaxis(a[2], 0, -1)) for a in (bra, ket))
        line, outs = f"({la}{lb}|{lc}{ld})", {}
        for name, fn, args in (("major", primitive_quartets, (bra, ket)),
                               ("minor", quartets_minor, minor_args)):
            def fwd(b, k, fn=fn, ls=(lab, lcd)):
                return fn(b, k, *ls)

            def vjp(b, k, fn=fn, ls=(lab, lcd)):
                y, back = jax.vjp(lambda b, k: fn(b, k, *ls), b, k)
                return back(jnp.ones_like(y))

            outs[name], t, comp = best(jax.jit(fwd), args)
            _, tv, compv = best(jax.jit(vjp), args)
            line += (f"  {name}: {1e9 * t / c:7.1f} ns (compile {comp:5.2f} s), "
                     f"VJP {1e9 * tv / c:7.1f} ns ({compv:5.2f} s)")
        diff = float(jnp.abs(outs["major"] - jnp.moveaxis(outs["minor"], -1, 0)).max())
        print(f"{line}  max diff {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
