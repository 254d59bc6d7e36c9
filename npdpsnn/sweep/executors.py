"""Where the runs of a sweep execute: in this process, or in a local process pool.

An executor runs a list of run specs (:mod:`.runner`) with
:func:`~.runner.run_one` and reports each run as it ends through
``on_done(spec, result, error)`` (``result`` is run_one's dict, or ``error``
the exception of a failed run: one failed run does not stop the others).  An
interrupt (Ctrl-C) stops the executor: the runs in progress lose at most their
current epoch, and running the sweep again resumes them.

Kernel threads: a pool of ``N`` workers on ``C`` cores gives each worker
:func:`threads_per_worker` ``= max(1, C // N)`` kernel threads, the one rule
every executor uses (Dask too, :mod:`.dask_executor`).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from npdpsnn.errors import UserError
from npdpsnn.training.callbacks import Callback

__all__ = ["Executor", "OnDone", "ProcessPoolSweepExecutor", "SerialExecutor", "threads_per_worker"]

log = logging.getLogger(__name__)

OnDone = Callable[[dict, "dict | None", "BaseException | None"], None]


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Kernel threads of each of ``workers`` processes sharing ``cores`` (default: this process's cores)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be an integer >= 1, got {workers!r}")
    if cores is None:
        from npdpsnn.engine import available_cores

        cores = available_cores()
    return max(1, cores // workers)


class Executor:
    """Runs specs and reports each one to ``on_done``; ``workers`` runs at a time."""

    workers: int = 1
    description: str = "executor"

    def run(self, specs: Sequence[dict], on_done: OnDone) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor holds (a cluster, a client)."""


class SerialExecutor(Executor):
    """One run after another in this process, with all kernel threads (or ``threads``)."""

    def __init__(self, threads: int = 0, callbacks: Sequence[Callback] = ()):
        self.threads = threads
        self.callbacks = tuple(callbacks)
        self.description = "in-process, serial"

    def run(self, specs: Sequence[dict], on_done: OnDone) -> None:
        from npdpsnn.sweep.runner import run_one

        for spec in specs:
            try:
                result = run_one({**spec, "threads": self.threads}, self.callbacks)
            except Exception as exc:  # noqa: BLE001 - one failed run must not stop the sweep
                on_done(spec, None, exc)
            else:
                on_done(spec, result, None)


class ProcessPoolSweepExecutor(Executor):
    """``workers`` local processes (spawned), each with :func:`threads_per_worker` kernel threads."""

    def __init__(self, workers: int, threads: int = 0):
        self.workers = workers
        self.threads = threads or threads_per_worker(workers)
        self.description = f"local process pool, {workers} workers x {self.threads} kernel threads"

    def run(self, specs: Sequence[dict], on_done: OnDone) -> None:
        from npdpsnn.sweep.runner import run_one

        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_ignore_sigint)
        pending = {pool.submit(run_one, {**spec, "threads": self.threads}): spec for spec in specs}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    spec = pending.pop(future)
                    error = future.exception()
                    on_done(spec, None if error else future.result(), error)
        except BaseException:
            _terminate(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's worker processes now (their runs resume from the last checkpoint);
    before :meth:`~ProcessPoolExecutor.shutdown`, which forgets them."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
