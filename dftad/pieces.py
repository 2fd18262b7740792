"""Compiled pieces: jitted functions kept as executables, in memory and on disk.

A :class:`Piece` wraps a function like ``jax.jit`` does, and keeps one compiled executable per
*key*: the function, its static arguments and the shapes and dtypes of its array arguments.
Pieces are small functions whose keys recur across molecules (the integral class kernels of
:mod:`dftad.integrals.eri_pieces` and :mod:`dftad.integrals.one_electron_pieces`), so a new
molecule mostly finds what it needs already compiled.

With the on-disk cache on (:func:`dftad.enable_compilation_cache`), each executable is also
written, serialized, next to JAX's compilation cache (``<cache dir>-pieces``), and a later
process loads it without tracing, lowering or compiling (``jax.jit``'s own persistent cache
still traces and lowers every program to find it: most of a cached run's time). The files live
in a folder named by a hash of the versions of jax and jaxlib, the device kind and dftad's own
source, so a changed dftad or JAX never loads a stale executable (older folders can be
deleted); a file that does not load is compiled again. Small arrays computed once per key (the
atoms' SAD densities, :func:`dftad.scf_pieces.atomic_density`) live there too
(:func:`data_path`).

*Quick executables.* ``piece(*args, quick=True)`` compiles and runs the call's key without
LLVM's optimisations (:data:`QUICK_OPTIONS`): about half the compile time for 2-4x the run time
of the code XLA generates (matrix products call the same library either way). It is a separate
key, chosen by the caller from the size of the job (:func:`quick_for`: the integral class
kernels of molecules up to :data:`QUICK_NAO` AOs, which call each class a few times; water's
cold start compiles ~60 such programs), so that a given calculation always runs the same code:
the numbers never depend on what an earlier calculation compiled. Calculations that call the
kernels many times (:func:`repeated_job`: geometry optimization, Hessians, training) take the
optimised executables at every size. ``DFTAD_QUICK_COMPILE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import pickle
import threading
from concurrent import futures

import jax
import jax.numpy as jnp
import numpy as np


@functools.cache
def _salt() -> str:
    """What every executable depends on besides its key: JAX, the device, dftad's source."""
    import jaxlib

    h = hashlib.sha256()
    dev = jax.devices()[0]
    h.update(f"{jax.__version__} {jaxlib.__version__} {dev.platform} {dev.device_kind}".encode())
    h.update(repr(jax.config.jax_enable_x64).encode())
    root = os.path.dirname(os.path.abspath(__file__))
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    h.update(name.encode() + f.read())
    return h.hexdigest()[:16]


def cache_dir() -> str | None:
    """Where serialized pieces live: beside JAX's compilation cache, None when that is off."""
    path = jax.config.jax_compilation_cache_dir
    return None if not path else os.path.abspath(path).rstrip(os.sep) + "-pieces"


def _spec(x):
    """(shape, dtype, weak type) of an argument leaf: the dtype object itself (hashable, a
    stable repr), as ``str(dtype)`` costs 2.7 us per leaf and a warm ethanol run keys ~29000."""
    if x is None:
        return None
    a = x if hasattr(x, "shape") and hasattr(x, "dtype") else np.asarray(x)
    return (tuple(a.shape), a.dtype, bool(getattr(a, "weak_type", False)))


def _device():
    """The device a piece runs on when it is not the first one (``jax.default_device``, which
    :mod:`dftad.parallel` sets per thread): an executable is compiled for one device."""
    dev = jax.config.jax_default_device
    if dev is None or isinstance(dev, str) or dev == jax.local_devices()[0]:
        return None
    return (dev.platform, dev.id)


REGISTRY: list = []
"""Every :class:`Piece` made in this process."""

QUICK_OPTIONS = {"xla_backend_optimization_level": 0}
"""XLA options of a quick executable: LLVM's optimisation passes off (XLA's own passes run)."""

QUICK_NAO = 64
"""Molecules with at most this many AOs (after padding to the pieces' nao bucket) run the
integral class kernels quick (:func:`quick_for`)."""

QUICK_ENABLED = os.environ.get("DFTAD_QUICK_COMPILE", "1") != "0"
"""Quick executables on (``DFTAD_QUICK_COMPILE=0``: every key optimised)."""


def quick_for(nao_b: int) -> bool:
    """Whether a molecule whose AO arrays are padded to ``nao_b`` is small enough for the quick
    integral class kernels (module docstring): their run time is small there next to their
    compile time (water B3LYP/def2-SVP from an empty cache: ~10 s less CPU to compile, ~0.4 s
    more to run them, ``benchmarks/RESULTS.md``). Calculations that call them many times
    (:func:`repeated_job`) take the optimised ones whatever the size."""
    return QUICK_ENABLED and nao_b <= QUICK_NAO


_JOB = threading.local()


def in_repeated_job() -> bool:
    """Whether this thread runs inside :func:`repeated_job`."""
    return getattr(_JOB, "repeated", False)


@contextlib.contextmanager
def repeated_job(on: bool = True):
    """Within the block, in this thread, the calculation calls the pieces many times (geometry
    optimization, Hessians, training): it runs the optimised class kernels at every size (a
    water Hessian through pieces: 20.6 s warm with the quick ones, 14.4 s with these, for 4 s
    more of compiling). A thread started for the same calculation takes it over:
    ``with repeated_job(flag)``, ``flag = in_repeated_job()`` read where it is started."""
    before = in_repeated_job()
    _JOB.repeated = bool(on)
    try:
        yield
    finally:
        _JOB.repeated = before


def repeated(fun):
    """Decorator: ``fun`` runs inside :func:`repeated_job`."""
    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        with repeated_job():
            return fun(*args, **kwargs)

    return wrapper


class Piece:
    """``jax.jit(fun, static_argnums=..., donate_argnums=...)`` with its executables kept by key
    (see the module docstring). Call it with positional arguments only. ``donate_argnums``: an
    accumulator updated in place (``acc = piece(acc, ...)``), not copied on every call."""

    def __init__(self, fun, static_argnums=(), donate_argnums=()):
        self.fun = fun
        self.static_argnums = tuple(static_argnums)
        self.donate_argnums = tuple(donate_argnums)
        self.jitted = jax.jit(fun, static_argnums=self.static_argnums,
                              donate_argnums=self.donate_argnums)
        self.name = f"{fun.__module__}.{fun.__qualname__}"
        self._compiled: dict = {}
        self._lock = threading.Lock()  # guards the dicts; each key has its own compile lock
        self._key_locks: dict = {}
        functools.update_wrapper(self, fun)
        REGISTRY.append(self)

    def _split(self, args):
        static = tuple(a for i, a in enumerate(args) if i in self.static_argnums)
        dynamic = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
        return static, dynamic

    def _key(self, static, dynamic):
        leaves, tree = jax.tree_util.tree_flatten(dynamic)
        return static, str(tree), tuple(_spec(x) for x in leaves), _device()

    def cache_size(self) -> int:
        """Executables compiled or loaded in this process."""
        return len(self._compiled)

    def __call__(self, *args, quick: bool = False):
        static, dynamic = self._split(args)
        key = self._key(static, dynamic)
        if quick:
            key = key + ("quick",)
        exe = self._compiled.get(key)
        if exe is None:
            exe = self._get(key, args, quick)
        return exe(*dynamic)

    def _get(self, key, args, quick=False):
        """Load or compile the executable of ``key``, once: threads that want the same key
        wait for the one compiling it (:func:`dftad.forces.compile_ahead` compiles in a
        background thread); different keys compile concurrently."""
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._compiled:
                return self._compiled[key]
            path = self._path(key)
            exe = _take(path) if path is not None else None
            if exe is None:
                exe, fresh = self._compile(path, args, quick=quick)
                if path is not None and not fresh:
                    # JAX's cache holds the program but its file is gone or does not load:
                    # compile it once more under another name (JAX's cache cannot answer), so
                    # that it is saved and later processes load it instead of tracing it again
                    exe, fresh = self._compile(path, args, again=True, quick=quick)
                if path is not None and fresh:
                    _save(path, exe)
            self._compiled[key] = exe
            return exe

    def _compile(self, path, args, again=False, quick=False):
        """``(executable, fresh)``; ``fresh``: compiled here, not loaded from JAX's on-disk
        cache. XLA:CPU serializes an executable it loaded from that cache without its kernels (a
        later load fails, or crashes), so only fresh ones are saved. Naming the program after its
        piece file, salt included, keeps JAX's cache from answering for a piece whose file does
        not exist yet (else a piece whose program JAX had cached before a change of dftad's
        source would never be saved again: traced, lowered and loaded in every run).
        ``again``: another name, for a piece JAX's cache answers but whose file is missing.
        ``quick``: with :data:`QUICK_OPTIONS` (which JAX's cache key includes)."""
        jitted = self.jitted
        if path is not None:
            def named(*a):
                return self.fun(*a)

            salt, base = os.path.split(path)
            name = f"{base.split('.')[0]}_{os.path.basename(salt)}".replace("-", "_")
            name += "_again" if again else ""
            named.__name__ = named.__qualname__ = name
            jitted = jax.jit(named, static_argnums=self.static_argnums,
                             donate_argnums=self.donate_argnums)
        hits = _hits()
        with _not_in_jax_cache():
            lowered = jitted.lower(*args)
            exe = lowered.compile(QUICK_OPTIONS) if quick else lowered.compile()
        return exe, _hits() == hits

    def _path(self, key):
        if key[3] is not None:
            return None  # a serialized executable loads onto the first device only
        return _cache_file(self.fun.__name__, repr((self.name, key)), "bin")


def _not_in_jax_cache():
    """In this thread, JAX's on-disk cache does not write what is compiled (a piece has its own
    file: writing it twice cost ~0.9 s of a cold start's CPU, and doubled the cache on disk)."""
    try:
        from jax._src import config as jax_config

        return jax_config.persistent_cache_min_compile_time_secs(float("inf"))
    except (ImportError, AttributeError, TypeError):  # another JAX version: write it twice
        return contextlib.nullcontext()


_CACHE_HITS = threading.local()
"""Hits of JAX's on-disk compilation cache in this thread (see :meth:`Piece._compile`): JAX
reports them in the thread that compiles, and a hit in another thread (``compile_ahead``'s) must
not make a fresh executable look loaded (it would never be saved)."""


def _hits() -> int:
    return getattr(_CACHE_HITS, "n", 0)


def _count_hit(event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _CACHE_HITS.n = _hits() + 1


jax.monitoring.register_event_listener(_count_hit)


@functools.cache
def _register_kernels() -> None:
    """Register the CPU LAPACK kernels (eigh, cholesky, ...). JAX does it when it lowers a
    program that uses them; a loaded executable skips lowering and would call an unset kernel
    (a crash) in a process that has not lowered one yet."""
    try:
        from jax._src.lax import linalg

        linalg.initialize_lapack()
    except Exception:  # noqa: BLE001 - another JAX version: nothing to register by hand
        pass


def _load(path):
    from jax.experimental import serialize_executable

    _register_kernels()
    try:
        with open(path, "rb") as f:
            payload, in_tree, out_tree = pickle.load(f)
        return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a stale or truncated file: compile again
        return None


_AHEAD: dict = {}
"""Piece file -> ``Future`` of its executable, loaded by :func:`preload`'s thread."""
_USED: dict = {}
"""The piece files this process asked for, in order (an ordered set; what :func:`remember`
writes, and what the preload thread skips)."""
_AHEAD_LOCK = threading.Lock()


def _take(path):
    """The executable at ``path``: the one :func:`preload`'s thread loaded (waiting for it while
    it loads it), else loaded here; None when there is none (compile)."""
    with _AHEAD_LOCK:
        _USED[path] = None
        ahead = _AHEAD.pop(path, None)
    exe = ahead.result() if ahead is not None else None
    return exe if exe is not None else _load(path)


def _manifest(job: str) -> str | None:
    return _cache_file("manifest", job, "txt")


def preload(job: str) -> threading.Thread | None:
    """Start loading, in a thread, the piece files that ``job`` (a string naming a calculation,
    e.g. the command line) used the last time it ran (:func:`remember`), in the order it asked
    for them: a repeated calculation finds its executables loaded while it sets up, and the
    SCF's while the forces' load. Loading only: a file that is not needed costs time, never a
    wrong result. Returns the thread (join it when the job is done), None without a record."""
    with _AHEAD_LOCK:
        _USED.clear()
    path = _manifest(job)
    try:
        with open(path) as f:
            names = f.read().split()
    except (OSError, TypeError):
        return None
    folder = os.path.dirname(path)
    files = [os.path.join(folder, n) for n in names if n.endswith(".bin") and os.sep not in n]

    def run():
        for file in files:
            with _AHEAD_LOCK:
                if file in _AHEAD or file in _USED:
                    continue
                ahead = _AHEAD[file] = futures.Future()
            exe = _load(file)
            ahead.set_result(exe)
            if exe is None:
                with _AHEAD_LOCK:
                    _AHEAD.pop(file, None)

    thread = threading.Thread(target=run, name="dftad-preload", daemon=True)
    thread.start()
    return thread


def remember(job: str | None, thread: threading.Thread | None = None) -> None:
    """Write which piece files ``job`` used since its :func:`preload` (for the next one; None:
    write nothing, e.g. the job failed); join ``thread`` (the preload) and drop what it loaded
    that was not used."""
    if thread is not None:
        thread.join()
    with _AHEAD_LOCK:
        used = [os.path.basename(p) for p in _USED]
        _AHEAD.clear()
    path = None if job is None else _manifest(job)
    if path is not None and used:
        _write(path, "\n".join(used).encode())


def _save(path, exe) -> None:
    from jax.experimental import serialize_executable

    try:
        blob = pickle.dumps(serialize_executable.serialize(exe))
    except Exception:  # noqa: BLE001 - not serializable here: keep it in memory only
        return
    _write(path, blob)


def _write(path, blob: bytes) -> None:
    """``blob`` to ``path`` atomically (a temporary file renamed); nothing on a read-only or
    full disk (kept in memory only)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except OSError:
        pass


def _cache_file(stem: str, key: str, ext: str) -> str | None:
    """``<cache>-pieces/<salt>/<stem>-<hash of key>.<ext>``, None when the on-disk cache is off."""
    base = cache_dir()
    if base is None:
        return None
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return os.path.join(base, _salt(), f"{stem}-{digest}.{ext}")


def data_path(kind: str, key: str) -> str | None:
    """Where a small array computed once per ``key`` (a string) lives beside the pieces (same
    salted folder), None when the on-disk cache is off."""
    return _cache_file(kind, key, "npy")


def load_array(path) -> np.ndarray | None:
    """The array saved at ``path`` (:func:`save_array`), None if absent or unreadable."""
    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def save_array(path, a) -> None:
    """Save ``a`` at ``path`` (atomically; nothing where the cache is off or the disk full)."""
    if path is not None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(a))
        _write(path, buf.getvalue())


def piece(static_argnums=(), donate_argnums=()):
    """Decorator form of :class:`Piece`."""
    return lambda fun: Piece(fun, static_argnums, donate_argnums)


@piece((0,))
def _zeros(shape):
    return jnp.zeros(shape)


def zeros(shape) -> jax.Array:
    """float64 zeros made on the device by a piece keyed by the shape: outside ``jit``,
    ``jnp.zeros`` traces and looks up (or compiles) a program per shape in every process, 20-50
    ms each; a piece loads from its file. (A host array put on the device instead compiles
    nothing, but writes every page of a fresh buffer: 6 ms for an 8 MB AO block.) For the
    accumulators that the pieces' loops start from."""
    return _zeros(tuple(int(n) for n in shape))
