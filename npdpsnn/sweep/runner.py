"""One run of a sweep: :func:`run_one`, the plain entry point that every executor calls.

A *run spec* is a plain, JSON-able dict, so it travels to a process pool or a
Dask worker unchanged::

    {"name": "kind-snn_sigma-1.0_rep-0",           # the run's name in the sweep
     "folder": "sweeps/table1/runs/kind-snn_sigma-1.0_rep-0",
     "config": {...},                              # TrainConfig.to_dict() of the planned run
     "data_dir": None,                             # dataset folder (None: $NPDPSNN_DATA or the cache)
     "threads": 0}                                 # kernel threads of the run (0: NPDPSNN_THREADS or all cores)

:func:`run_one` locks the folder (:class:`~npdpsnn.training.lock.RunLock`),
then trains the run from scratch, resumes it from its ``checkpoint.h5``
(losing at most the epoch that was running when it stopped), or does nothing
when ``summary.json`` already records every epoch; it returns a plain dict with
the folder's records.  A folder holding a different run (a conflicting
configuration) is refused with a :class:`~npdpsnn.errors.UserError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.sweep.plan import PlannedRun
from npdpsnn.sweep.results import read_run
from npdpsnn.training.callbacks import Callback
from npdpsnn.training.checkpoint import CHECKPOINT_NAME
from npdpsnn.training.config import TrainConfig, field_paths

__all__ = ["RunStatus", "make_spec", "run_one", "run_status"]

log = logging.getLogger(__name__)

_SPEC_KEYS = ("name", "folder", "config", "data_dir", "threads")
_DATASETS: dict[tuple, Any] = {}  # loaded datasets, per process (a worker keeps its data between runs)


@dataclass(frozen=True)
class RunStatus:
    """Where a run folder stands: ``epochs_done`` of the planned ``epochs``
    (from ``summary.json``; 0 when it has none) and whether a checkpoint exists."""

    epochs_done: int
    epochs: int
    has_checkpoint: bool

    @property
    def finished(self) -> bool:
        return self.epochs_done >= self.epochs


def make_spec(run: PlannedRun, sweep_dir: str | Path, data_dir: str | Path | None = None,
              threads: int = 0) -> dict:
    """The run spec of ``run`` in the sweep folder ``sweep_dir`` (see the module docstring)."""
    return {"name": run.name, "folder": str(run.folder(sweep_dir)), "config": run.config.to_dict(),
            "data_dir": None if data_dir is None else str(data_dir), "threads": int(threads)}


def run_status(folder: str | Path, config: TrainConfig) -> RunStatus:
    """How far the run in ``folder`` got, checking that it is the run ``config`` plans."""
    folder = Path(folder)
    has_checkpoint = (folder / CHECKPOINT_NAME).is_file()
    done = 0
    if (folder / "summary.json").is_file():
        record = read_run(folder)
        _same_run(record.train_config, config, folder)
        done = int(record.summary.get("epochs_completed") or 0)
        if done > config.optim.epochs:
            raise UserError(f"{folder} holds {done} epochs, more than the {config.optim.epochs} planned; remove it "
                            f"or choose another output folder")
    return RunStatus(done, config.optim.epochs, has_checkpoint)


def run_one(spec: dict, callbacks: Sequence[Callback] = ()) -> dict:
    """Train, resume or skip the run ``spec`` describes; returns ``{"name", "folder",
    "status"}`` (``trained``, ``resumed`` or ``finished``), ``started_at_epoch``,
    ``epochs``, ``record`` (:meth:`RunRecord.to_dict` of the folder) and ``seconds``.

    Errors are plain :class:`UserError` (picklable, for process pools and Dask)."""
    t0 = time.perf_counter()
    try:
        name, folder, config, data_dir, threads = _parse_spec(spec)
        status, started = _train_or_resume(folder, config, data_dir, threads, callbacks)
        record = read_run(folder)
    except UserError as exc:
        raise UserError(str(exc)) from None
    return {"name": name, "folder": str(folder), "status": status, "started_at_epoch": started,
            "epochs": config.optim.epochs, "record": record.to_dict(), "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------ helpers
def _parse_spec(spec: Any) -> tuple[str, Path, TrainConfig, str | None, int]:
    if not isinstance(spec, dict) or set(spec) != set(_SPEC_KEYS):
        got = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise UserError(f"a run spec is a dict with the keys {', '.join(_SPEC_KEYS)}, got {got}")
    threads = spec["threads"]
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise UserError(f"run spec threads must be an integer >= 0, got {threads!r}")
    config = TrainConfig.from_dict(spec["config"])
    return str(spec["name"]), Path(spec["folder"]), config, spec["data_dir"], threads


def _train_or_resume(folder: Path, config: TrainConfig, data_dir: str | None, threads: int,
                     callbacks: Sequence[Callback]) -> tuple[str, int]:
    from npdpsnn.engine import Engine
    from npdpsnn.kernels.backend import resolve_device
    from npdpsnn.training.lock import RunLock
    from npdpsnn.training.recorder import RunRecorder
    from npdpsnn.training.trainer import Trainer, open_resume

    with RunLock(folder):
        status = run_status(folder, config)
        if status.finished:
            return "finished", status.epochs_done
        data = _dataset(config, data_dir)
        state = open_resume(folder) if status.has_checkpoint else None
        if state is not None:
            config = _same_run(TrainConfig.from_dict(state.train_config), config, folder)
        with Engine(threads=threads or None) as engine:  # its own kernel threads, freed after the run
            trainer = Trainer(config, data, backend=resolve_device(config.run.device), resume=state, engine=engine)
            started = trainer.epoch
            if started:
                log.info("%s: resuming from epoch %d of %d", folder.name, started, config.optim.epochs)
            trainer.fit([RunRecorder(folder), *callbacks])
    return ("resumed" if started else "trained"), started


def _same_run(saved: TrainConfig, planned: TrainConfig, folder: Path) -> TrainConfig:
    """``saved`` continued as ``planned`` (only the epochs, threads and device may differ)."""
    from npdpsnn.training.resume import resume_config

    calibrated = planned.dp.target_epsilon is not None and planned.dp.sigma is None
    requested = {p: planned.get(p) for p in field_paths() if p != "spec" and not (calibrated and p == "dp.sigma")}
    try:
        return resume_config(saved, requested)
    except UserError as exc:
        raise UserError(f"{folder} holds a different run ({exc}); remove it or choose another output folder") from None


def _dataset(config: TrainConfig, data_dir: str | None):
    from npdpsnn.data import load_dataset

    key = (config.dataset, data_dir, config.run.split_seed)
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(config.dataset, data_dir=data_dir, seed=config.run.split_seed)
    return _DATASETS[key]
