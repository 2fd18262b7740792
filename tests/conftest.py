"""Shared test setup: float64 on, PySCF references built on the fly."""

import gc
import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
# the CLI keeps compiled programs on disk; tests call it in-process and must not write to ~/.cache
os.environ.setdefault("DFTAD_CACHE_DIR", "off")


def _map_count():
    """Number of memory mappings of this process (Linux), None where /proc is absent."""
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def _max_map_count():
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65530


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Free JAX's compiled programs once they hold a third of the process' memory mappings.

    XLA:CPU loads every compiled program as many small JIT code mappings (one energy+forces
    program for a 6-31G* molecule: ~11,000). jit caches keep them alive for the whole process, so
    the slow suites, which compile one large program per case, reached the kernel's
    ``vm.max_map_count`` (65530 by default) after five cases and XLA died in the sixth compile
    (SIGABRT or SIGSEGV in ``backend_compile_and_load``, with memory to spare)."""
    yield
    n = _map_count()
    if n is not None and n > _max_map_count() // 3:
        jax.clear_caches()
        gc.collect()
