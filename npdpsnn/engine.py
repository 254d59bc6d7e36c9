"""Engine settings and per-run engine state: the one home of every engine default.

Settings (each read from its environment variable *when used*, never at import):

* CPU kernel threads -- ``NPDPSNN_THREADS``, default: the cores this process may run on;
* CUDA threads per example block -- ``NPDPSNN_CUDA_THREADS``, default 256 (1..1024);
* CUDA workspace budget -- ``NPDPSNN_CUDA_WORKSPACE_MB``, default 4096 MiB of
  per-example device buffers (larger batches run in chunks, same results);
* CUDA register cap -- ``NPDPSNN_CUDA_MAXREG``, default none (a tuning knob, read
  when the kernels compile, once per process; ignored by the simulator);
* Numba cache directory -- ``NPDPSNN_NUMBA_CACHE_DIR``, default Numba's own
  (``NUMBA_CACHE_DIR`` or ``__pycache__``), read when the CPU kernels are imported.

The first three can also be fixed per :class:`Engine`.

Two values are fixed because the results' bits depend on them: BLAS runs
single-threaded inside the library's calls (:data:`BLAS_THREADS`) and the CPU
kernels split a batch into work items of :data:`CHUNK` examples, one float64
partial sum each, added in chunk order.  So kernel threads x BLAS threads <=
cores by default, and results are bit-identical for any number of kernel
threads and any BLAS threading of the environment (``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``, ...; this module never changes environment variables).

Per-run state -- the kernel thread pool, CUDA workspaces, device data and
table caches, backend objects -- lives in an :class:`Engine`; two engines used
from two threads share none of it.  :func:`default_engine` is the process-wide
engine of the convenience API (``Network.forward(x, backend="numba")``).

The BLAS thread limit is the one process-wide piece: OpenBLAS keeps a single
global thread count, so :func:`blas_single_threaded` is a reference-counted
guard (threadpoolctl) that sets it to 1 while any library call runs and
restores the previous value when the last one ends (BLAS calls the user makes
from other threads meanwhile run single-threaded too).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from npdpsnn.errors import BackendError

log = logging.getLogger(__name__)

BLAS_THREADS = 1
"""BLAS threads inside the library's calls (fixed: determinism, no oversubscription)."""

CHUNK = 16
"""Examples per work item of the CPU kernels (and per float64 partial sum of the clipped sum)."""


# ------------------------------------------------------------------ settings
@dataclass(frozen=True)
class IntSetting:
    """An integer setting with an environment override, read on every call of :meth:`get`."""

    env: str
    lo: int
    hi: int | None
    default: Callable[[], int | None]

    def check(self, value: int, what: str | None = None) -> int:
        if isinstance(value, bool) or int(value) != value or value < self.lo or (self.hi and value > self.hi):
            rng = f"{self.lo}..{self.hi}" if self.hi else f">= {self.lo}"
            raise BackendError(f"{what or self.env} must be an integer in {rng}, got {value!r}")
        return int(value)

    def get(self) -> int | None:
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default()
        try:
            value = int(raw)
        except ValueError:
            raise BackendError(f"{self.env} must be an integer, got {raw!r}") from None
        return self.check(value)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


THREADS = IntSetting("NPDPSNN_THREADS", 1, None, available_cores)
CUDA_THREADS = IntSetting("NPDPSNN_CUDA_THREADS", 1, 1024, lambda: 256)
CUDA_WORKSPACE_MB = IntSetting("NPDPSNN_CUDA_WORKSPACE_MB", 1, None, lambda: 4096)
CUDA_MAXREG = IntSetting("NPDPSNN_CUDA_MAXREG", 1, 255, lambda: None)


def numba_cache_dir() -> str | None:
    """``NPDPSNN_NUMBA_CACHE_DIR``, or None for Numba's own choice."""
    return os.environ.get("NPDPSNN_NUMBA_CACHE_DIR", "").strip() or None


def configure_numba_cache() -> None:
    """Point Numba's cache at :func:`numba_cache_dir` when it is set.

    Numba chooses a function's cache location when ``@njit(cache=True)``
    decorates it, so the kernel modules call this first, at their import (the
    first use of the setting).  Only ``numba.config`` changes, never the
    environment."""
    path = numba_cache_dir()
    if path is None:
        return
    from numba import config

    if config.CACHE_DIR != path:
        config.CACHE_DIR = path


# ------------------------------------------------------------------ BLAS guard
class _BlasGuard:
    """Reference-counted process-wide BLAS limit (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._controller = None
        self._limiter = None

    def _ctl(self):
        if self._controller is None:
            # Load the BLAS that Numba's np.dot calls (SciPy's) before threadpoolctl
            # looks for loaded libraries.
            import scipy.linalg.cython_blas  # noqa: F401
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        return self._controller

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._limiter = self._ctl().limit(limits=BLAS_THREADS, user_api="blas")
            self._depth += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._limiter.restore_original_limits()
                self._limiter = None


_BLAS_GUARD = _BlasGuard()


def blas_single_threaded() -> _BlasGuard:
    """Context manager: BLAS runs with :data:`BLAS_THREADS` threads inside it."""
    return _BLAS_GUARD


# ------------------------------------------------------------------ engine
T = TypeVar("T")


class Engine:
    """Per-run engine state and settings.

    ``threads``, ``cuda_threads`` and ``cuda_workspace_bytes`` fix a setting for
    this engine; left as None, each is read from its environment variable (or
    default) when used.  The thread pool and every backend's state (see
    :meth:`state`) belong to this object; :meth:`close` frees them.
    """

    def __init__(self, threads: int | None = None, cuda_threads: int | None = None,
                 cuda_workspace_bytes: int | None = None):
        self._threads = None if threads is None else THREADS.check(threads, "threads")
        self._cuda_threads = None if cuda_threads is None else CUDA_THREADS.check(cuda_threads,
                                                                                  "CUDA threads per block")
        if cuda_workspace_bytes is not None and not int(cuda_workspace_bytes) >= 1:
            raise BackendError(f"CUDA workspace must be >= 1 byte, got {cuda_workspace_bytes}")
        self._workspace = None if cuda_workspace_bytes is None else int(cuda_workspace_bytes)
        self._lock = threading.RLock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._state: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"Engine(threads={self.threads}, cuda_threads={self.cuda_threads})"

    # -------------------------------------------------------------- settings
    @property
    def threads(self) -> int:
        """CPU kernel threads (``NPDPSNN_THREADS`` unless set on this engine)."""
        return self._threads if self._threads is not None else THREADS.get()

    def set_threads(self, n: int | None) -> None:
        """Fix the number of CPU kernel threads (None: back to the environment/default)."""
        n = None if n is None else THREADS.check(n, "threads")
        if n is not None and n > available_cores():
            log.warning("%d kernel threads on %d cores: the threads will compete for cores", n, available_cores())
        self._threads = n

    @property
    def cuda_threads(self) -> int:
        """CUDA threads per example block (``NPDPSNN_CUDA_THREADS`` unless set here)."""
        return self._cuda_threads if self._cuda_threads is not None else CUDA_THREADS.get()

    def set_cuda_threads(self, n: int | None) -> None:
        self._cuda_threads = None if n is None else CUDA_THREADS.check(n, "CUDA threads per block")

    @property
    def cuda_workspace_bytes(self) -> int:
        """Device memory for per-example buffers; larger batches run in chunks."""
        return self._workspace if self._workspace is not None else CUDA_WORKSPACE_MB.get() * 2**20

    # -------------------------------------------------------------- CPU work
    def _executor(self, n: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pool_size != n:
                if self._pool is not None:
                    self._pool.shutdown()
                self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="npdpsnn")
                self._pool_size = n
            return self._pool

    def run_chunks(self, fn: Callable[[int, int, int], None], batch: int, chunk: int = CHUNK) -> None:
        """Call ``fn(i, lo, hi)`` for the fixed chunks ``[lo, hi)`` of ``range(batch)``
        (``chunk`` items each) on this engine's threads, BLAS single-threaded.
        The chunks do not depend on the number of threads."""
        chunks = [(i, lo, min(lo + chunk, batch)) for i, lo in enumerate(range(0, batch, chunk))]
        n = self.threads
        with blas_single_threaded():
            if n == 1 or len(chunks) <= 1:
                for c in chunks:
                    fn(*c)
                return
            pool = self._executor(n)
            for f in [pool.submit(fn, *c) for c in chunks]:
                f.result()

    # -------------------------------------------------------------- state
    def state(self, key: Any, factory: Callable[[], T]) -> T:
        """This engine's object under ``key``, made by ``factory()`` on first use
        (backends keep their workspaces and caches here)."""
        with self._lock:
            obj = self._state.get(key)
            if obj is None:
                obj = self._state[key] = factory()
            return obj

    def close(self) -> None:
        """Shut the thread pool down and drop all state (workspaces, caches)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool, self._pool_size = None, 0
            self._state.clear()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_DEFAULT: Engine | None = None
_DEFAULT_LOCK = threading.Lock()


def default_engine() -> Engine:
    """The process-wide engine of the convenience API (created on first use)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Engine()
        return _DEFAULT

