"""Dask distributed executor: one task per run, on a cluster or a local one.

The optional extra ``npdpsnn[dask]``; this is the only module that imports
Dask.  Each task calls :func:`npdpsnn.sweep.runner.run_one` with a plain run
spec, so a worker needs nothing but ``npdpsnn`` installed, the datasets (its
``$NPDPSNN_DATA`` or ``--data-dir``) and the sweep folder on a filesystem it
shares with the client: run folders are written by the workers and the
results table by the client.

* ``scheduler="tcp://HOST:8786"`` or ``scheduler_file=PATH``: an existing
  cluster.  Start its workers with ``--nthreads 1`` (one run per process) and,
  on GPU machines, one worker process per GPU (``CUDA_VISIBLE_DEVICES``);
  ``threads`` sets each run's kernel threads (0: the worker's
  ``NPDPSNN_THREADS``, else all its cores).
* ``local_workers=N``: a :class:`distributed.LocalCluster` of ``N`` worker
  processes with one Dask thread each and
  :func:`~npdpsnn.sweep.executors.threads_per_worker` kernel threads each
  (``NUMBA_NUM_THREADS`` set to that, BLAS limited to one thread).

A worker that dies mid-run (killed, out of memory) loses its current epoch:
Dask reschedules the task on another worker, and :func:`run_one` resumes the
run from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence

from npdpsnn.errors import UserError
from npdpsnn.sweep.executors import Executor, OnDone, threads_per_worker

__all__ = ["DaskExecutor"]

log = logging.getLogger(__name__)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("the Dask executor needs Dask distributed: pip install 'npdpsnn[dask]'") from None
    return distributed


class DaskExecutor(Executor):
    """Runs each spec as one Dask task (give exactly one of ``scheduler``,
    ``scheduler_file``, ``local_workers``)."""

    def __init__(self, scheduler: str | None = None, scheduler_file: str | os.PathLike | None = None,
                 local_workers: int | None = None, threads: int = 0):
        given = [x for x in (scheduler, scheduler_file, local_workers) if x is not None]
        if len(given) != 1:
            raise UserError("give exactly one of a Dask scheduler address, a scheduler file or a local worker count")
        distributed = _distributed()
        # Dask logs at INFO through its own handler; follow this program's level instead (-v shows them)
        logging.getLogger("distributed").setLevel(max(logging.getLogger().getEffectiveLevel(), logging.INFO))
        self.cluster = None
        self.threads = threads
        try:
            if local_workers is not None:
                self.threads = threads or threads_per_worker(local_workers)
                limits = {"NUMBA_NUM_THREADS": str(self.threads), "OMP_NUM_THREADS": "1",
                          "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
                self.cluster = distributed.LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                                                        dashboard_address=":0", silence_logs=logging.ERROR,
                                                        env=limits)
                self.client = distributed.Client(self.cluster)
                where = f"local Dask cluster, {local_workers} workers x {self.threads} kernel threads"
            elif scheduler is not None:
                self.client = distributed.Client(scheduler, timeout="30s")
                where = f"Dask scheduler {scheduler}"
            else:
                if not os.path.isfile(scheduler_file):
                    raise UserError(f"no Dask scheduler file {scheduler_file}")
                self.client = distributed.Client(scheduler_file=os.fspath(scheduler_file), timeout="30s")
                where = f"Dask scheduler from {scheduler_file}"
        except (OSError, TimeoutError) as exc:
            self.close()
            raise UserError(f"cannot start or reach the Dask cluster: {exc}") from None
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.description = where

    def run(self, specs: Sequence[dict], on_done: OnDone) -> None:
        from npdpsnn.sweep.runner import run_one

        distributed = _distributed()
        tag = uuid.uuid4().hex[:8]
        futures = {}
        for spec in specs:
            future = self.client.submit(run_one, {**spec, "threads": self.threads}, key=f"npdpsnn-{spec['name']}-{tag}",
                                        pure=False)
            futures[future.key] = (future, spec)
        try:
            for future in distributed.as_completed([f for f, _ in futures.values()]):
                spec = futures.pop(future.key)[1]
                error = future.exception()
                on_done(spec, None if error else future.result(), error)
        except BaseException:
            self.client.cancel([f for f, _ in futures.values()])
            raise

    def close(self) -> None:
        client, cluster = getattr(self, "client", None), self.cluster
        self.client, self.cluster = None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
