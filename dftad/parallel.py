"""Data parallelism over molecules: each molecule of a dataset is owned by one JAX device of
one process, and per-molecule results are gathered in a fixed order.

Training (:mod:`dftad.train`) needs, per step, one converged SCF and one gradient per molecule;
molecules are independent, so they are spread over the devices:

* **devices of this process**: one Python thread per local device, each running its molecules
  one after another under ``jax.default_device(device)`` (thread-local), so that a molecule's
  integrals, grid and SCF live on its device; JAX releases the GIL while a device computes.
* **processes** (``jax.distributed.initialize()`` before training, one process per host; on
  CPUs also ``jax.config.update("jax_cpu_collectives_implementation", "gloo")``): each
  process computes its own molecules; the results are exchanged with
  ``multihost_utils.process_allgather`` (rows of zeros for the molecules a process does not
  own, summed), so every process holds all of them.

A molecule's owner is fixed by its position in the dataset's sorted species names (global
device ``i mod (processes x local devices)``), so it keeps its device, and its cached
integrals, from step to step. Sums over molecules are formed afterwards on the host in the
caller's order: the gradient does not depend on how many devices computed it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np

from . import pieces


def local_devices(count: int = 0) -> list:
    """The first ``count`` local JAX devices (all with 0); an error if there are fewer."""
    devices = jax.local_devices()
    if count < 0 or count > len(devices):
        raise ValueError(f"{count} devices asked for; this process has {len(devices)} "
                         f"({devices[0].platform})")
    return devices[:count] if count else devices


class Layout:
    """Which process and local device owns each molecule (module docstring)."""

    def __init__(self, all_names: Sequence[str], devices: Sequence):
        self.devices = list(devices)
        self.processes = jax.process_count()
        self.process = jax.process_index()
        total = self.processes * len(self.devices)
        self.slot = {n: i % total for i, n in enumerate(sorted(all_names))}

    def owner(self, name: str) -> tuple[int, int]:
        """(process, local device index) of ``name``."""
        return divmod(self.slot[name], len(self.devices))

    def map(self, fn: Callable, names: Sequence[str], pack: Callable | None = None,
            unpack: Callable | None = None) -> dict:
        """{name: fn(name)} for all ``names``, each computed on its owner's device. With several
        processes, ``pack(result) -> 1-d float array`` (one length for all names) and
        ``unpack(array) -> result`` carry the results between them."""
        mine = [n for n in names if self.owner(n)[0] == self.process]
        groups = [[n for n in mine if self.owner(n)[1] == k] for k in range(len(self.devices))]

        job = pieces.in_repeated_job()  # each thread runs the caller's kind of pieces

        def work(k):
            with jax.default_device(self.devices[k]), pieces.repeated_job(job):
                return {n: fn(n) for n in groups[k]}

        busy = [k for k in range(len(self.devices)) if groups[k]]
        if len(busy) <= 1:
            parts = [work(k) for k in busy]
        else:
            with ThreadPoolExecutor(len(busy)) as pool:
                parts = list(pool.map(work, busy))
        results = {n: r for part in parts for n, r in part.items()}
        if self.processes > 1:
            results = self._share(names, results, pack, unpack)
        return {n: results[n] for n in names}

    def _share(self, names, results, pack, unpack) -> dict:
        from jax.experimental import multihost_utils

        if pack is None or unpack is None:
            raise ValueError("several processes: Layout.map needs pack and unpack")
        rows = {n: np.asarray(pack(r), dtype=np.float64) for n, r in results.items()}
        width = np.asarray(multihost_utils.process_allgather(
            np.array([max((len(r) for r in rows.values()), default=0)]))).max()
        table = np.zeros((len(names), width))
        for i, n in enumerate(names):
            if n in rows:
                table[i] = rows[n]
        # each row is non-zero on its owner only: the sum over processes is that row
        table = np.asarray(multihost_utils.process_allgather(table)).sum(axis=0)
        return {n: unpack(table[i]) for i, n in enumerate(names)}
