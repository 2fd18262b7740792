"""Shared test setup: float64 on, PySCF references built on the fly, one core per xdist worker,
one compilation cache for the session."""

import gc
import os
import shutil
import tempfile


def _share_cores():
    """Give each xdist worker its own share of the CPUs (one core each on a 2-core machine).

    Unpinned, both workers' XLA thread pools and PySCF's OpenMP threads share both cores; the
    benzene B3LYP stepwise SCF took 160-206 s in CI beside PySCF jobs (24-35 s alone), 34-36 s
    with the workers pinned and the session cache below (measured together). Runs before JAX
    or PySCF start their thread pools, which size themselves by this affinity."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    share = cpus[int(worker[2:]) % count::count]
    if share:
        os.sched_setaffinity(0, share)


_share_cores()

import jax  # noqa: E402 - after the affinity is set
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

# One on-disk compilation cache for the whole session, shared by the xdist workers (made by the
# controller, inherited through the environment, removed when the controller ends): programs one
# worker compiled (the water SCFs many files run) load in the other, and again after
# jax.clear_caches(). Never ~/.cache: the CLI, called in-process, enables the cache it names.
_OWN_CACHE = None
if "DFTAD_TEST_CACHE" not in os.environ:
    _OWN_CACHE = os.environ["DFTAD_TEST_CACHE"] = tempfile.mkdtemp(prefix="dftad-tests-")
os.environ.setdefault("DFTAD_CACHE_DIR", os.path.join(os.environ["DFTAD_TEST_CACHE"], "xla"))
import dftad  # noqa: E402

dftad.enable_compilation_cache()


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


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
