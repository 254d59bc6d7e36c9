"""A sweep: expand an experiment, run what is not finished, collect the results table.

The sweep folder holds::

    sweep.json        the expanded plan: every run's name, replicate, grid values and seed
    experiment.toml   the experiment file as read
    runs/<name>/      one run folder per run (npdpsnn.training.recorder.RunRecorder)
    results.csv       the tidy results table (npdpsnn.sweep.results), one row per finished run
    results.json      the same rows as a JSON list

Running a sweep again skips the runs whose ``summary.json`` records every
epoch, resumes the interrupted ones from their checkpoint and trains the rest;
a grown grid adds runs without touching the existing ones.  Before anything
runs, every existing run folder is checked to hold the run the plan expects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from npdpsnn.errors import UserError
from npdpsnn.sweep.executors import Executor, SerialExecutor
from npdpsnn.sweep.experiment import Experiment
from npdpsnn.sweep.plan import PlannedRun, plan_runs
from npdpsnn.sweep.progress import SweepProgress
from npdpsnn.sweep.results import RunRecord, read_run, result_columns, result_row, write_results
from npdpsnn.sweep.runner import make_spec, run_status
from npdpsnn.training.files import atomic_write_json, atomic_write_text

__all__ = ["OnProgress", "SweepOutcome", "run_sweep"]

log = logging.getLogger(__name__)

#: ``on_progress(progress, name, result, error)``: once at the start (``name`` None), then per run.
OnProgress = Callable[[SweepProgress, "str | None", "dict | None", "BaseException | None"], None]


@dataclass
class SweepOutcome:
    """What a sweep did: the plan, the results ``rows`` (finished runs, in plan
    order), the table files, and per run its ``status`` (``finished`` before
    the sweep, ``trained``, ``resumed``; failed runs are in ``failed`` with
    their message)."""

    folder: Path
    runs: list[PlannedRun]
    rows: list[dict]
    columns: list[str]
    results_csv: Path
    results_json: Path
    status: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    records: dict[str, RunRecord] = field(default_factory=dict)

    def check(self) -> None:
        """A :class:`UserError` naming the first failed run, when any failed."""
        if self.failed:
            name, message = next(iter(self.failed.items()))
            raise UserError(f"{len(self.failed)} of {len(self.runs)} runs failed (run {name}: {message}); run the "
                            f"same command again to retry them")


def run_sweep(experiment: Experiment, sweep_dir: str | Path, executor: Executor | None = None,
              data_dir: str | Path | None = None, on_progress: OnProgress | None = None) -> SweepOutcome:
    """Run ``experiment`` in ``sweep_dir`` with ``executor`` (default: serial, in this process).

    Returns a :class:`SweepOutcome` even when runs failed (see ``failed``); an
    interrupt propagates after the results of the finished runs are written."""
    runs = plan_runs(experiment)
    sweep_dir = Path(sweep_dir)
    statuses = {r.name: run_status(r.folder(sweep_dir), r.config) for r in runs}
    _write_plan(sweep_dir, experiment, runs)
    outcome = SweepOutcome(sweep_dir, runs, [], result_columns([a.name for a in experiment.axes]),
                           sweep_dir / "results.csv", sweep_dir / "results.json")
    for r in runs:
        if statuses[r.name].finished:
            outcome.records[r.name] = read_run(r.folder(sweep_dir))
            outcome.status[r.name] = "finished"
    todo = [r for r in runs if r.name not in outcome.records]
    progress = SweepProgress(total=len(runs), skipped=len(runs) - len(todo))
    data_dir = None if data_dir is None else Path(data_dir).absolute()
    specs = [make_spec(r, sweep_dir.absolute(), data_dir) for r in todo]

    def on_done(spec: dict, result: dict | None, error: BaseException | None) -> None:
        name = spec["name"]
        if error is not None:
            outcome.failed[name] = " ".join(str(error).split()) or type(error).__name__
            progress.failed += 1
            log.warning("run %s failed: %s", name, outcome.failed[name],
                        exc_info=None if isinstance(error, UserError) else error)
        else:
            outcome.records[name] = RunRecord.from_dict(result["record"])
            outcome.status[name] = result["status"]
            progress.completed += 1
        if on_progress is not None:
            on_progress(progress, name, result, error)

    if on_progress is not None:
        on_progress(progress, None, None, None)
    try:
        if specs:
            (executor or SerialExecutor()).run(specs, on_done)
    finally:
        outcome.rows = [result_row(r.name, r.replicate, r.grid, outcome.records[r.name])
                        for r in runs if r.name in outcome.records]
        write_results(sweep_dir, outcome.rows, outcome.columns)
    return outcome


def _write_plan(sweep_dir: Path, experiment: Experiment, runs: list[PlannedRun]) -> None:
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create sweep folder {sweep_dir}: {exc.strerror or exc}") from None
    plan = {"experiment": experiment.name, "scale": experiment.scale, "source": experiment.source,
            "description": experiment.description, "base_seed": experiment.base_seed,
            "seed_scope": experiment.seed_scope, "replicates": experiment.replicates,
            "axes": [a.name for a in experiment.axes],
            "runs": [{"name": r.name, "replicate": r.replicate, "grid": r.grid, "seed": r.config.run.seed}
                     for r in runs]}
    atomic_write_json(sweep_dir / "sweep.json", plan)
    if experiment.text:
        atomic_write_text(sweep_dir / "experiment.toml", experiment.text)
