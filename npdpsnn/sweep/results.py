"""Run folders as records, and the tidy results table of a sweep.

:func:`read_run` reads what :class:`~npdpsnn.training.recorder.RunRecorder`
wrote (``config.json``, ``metrics.csv``, ``summary.json``).  :func:`result_row`
turns one run into one row of the results table: its grid values, the
configuration fields that describe it, the last-epoch test accuracy
(``final_test_accuracy``), the best epoch's (``best_test_accuracy`` at
``best_epoch``), every privacy column of the analyses registry at the last
epoch and, prefixed ``best_epoch_``, at the best epoch, and the training
``seconds`` (the sum of the epochs' wall-clock times, the only column that
differs between two identical runs: :data:`WALL_CLOCK_COLUMNS`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants.analyses import metric_columns
from npdpsnn.training.config import TrainConfig
from npdpsnn.training.files import atomic_write_json, atomic_write_text

__all__ = ["DESCRIBING_FIELDS", "RunRecord", "WALL_CLOCK_COLUMNS", "read_run", "result_columns", "result_row",
           "write_results"]

#: Configuration fields every results row carries (besides the grid's own axes).
DESCRIBING_FIELDS: tuple[str, ...] = (
    "dataset", "net", "spec", "model.kind", "model.neuron", "model.surrogate", "model.T", "dp.enabled", "dp.sigma",
    "dp.target_epsilon", "optim.batch_size", "optim.epochs", "run.limit_train", "run.seed",
)

#: Columns that measure time: they differ between two runs with identical results.
WALL_CLOCK_COLUMNS: tuple[str, ...] = ("seconds", "examples_per_second")

_INT_METRICS = ("epoch", "step")


@dataclass(frozen=True)
class RunRecord:
    """What a run folder holds: ``config`` (the resolved configuration),
    ``metrics`` (one dict per epoch) and ``summary``."""

    folder: Path
    config: dict
    metrics: list[dict]
    summary: dict

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    def to_dict(self) -> dict:
        return {"folder": str(self.folder), "config": self.config, "metrics": self.metrics, "summary": self.summary}

    @classmethod
    def from_dict(cls, d: dict) -> "RunRecord":
        return cls(Path(d["folder"]), d["config"], d["metrics"], d["summary"])


def read_run(folder: str | Path) -> RunRecord:
    """The records of the run folder ``folder`` (a :class:`UserError` when it holds none)."""
    from npdpsnn.training.run_folders import read_run as read_run_info

    info = read_run_info(folder)
    path = Path(folder) / "metrics.csv"
    try:
        metrics = _parse_metrics(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    return RunRecord(Path(folder), info.config.to_dict(), metrics, info.summary)


def result_columns(axis_names: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Columns of the results table for a grid with ``axis_names``."""
    privacy = list(metric_columns())
    axes = [a for a in axis_names if a not in DESCRIBING_FIELDS]
    return ["run", "replicate", *axes, *DESCRIBING_FIELDS, "n_train", "sample_rate", "steps", "epochs_completed",
            "final_test_accuracy", "best_test_accuracy", "best_epoch", *privacy,
            *(f"best_epoch_{c}" for c in privacy), "seconds"]


def result_row(name: str, replicate: int, grid: dict[str, Any], record: RunRecord) -> dict[str, Any]:
    """The results-table row of one finished run."""
    config = record.train_config
    metrics, summary = record.metrics, record.summary
    best = next((m for m in metrics if m["epoch"] == summary.get("best_epoch")), None)
    row: dict[str, Any] = {"run": name, "replicate": replicate, **grid}
    row.update({f: config.get(f) for f in DESCRIBING_FIELDS})
    row.update({
        "n_train": summary.get("n_train"), "sample_rate": summary.get("sample_rate"), "steps": summary.get("steps"),
        "epochs_completed": summary.get("epochs_completed"),
        "final_test_accuracy": summary.get("test_accuracy"), "best_test_accuracy": summary.get("best_test_accuracy"),
        "best_epoch": summary.get("best_epoch"),
    })
    last = metrics[-1] if metrics else {}
    for c in metric_columns():
        row[c] = last.get(c)
        row[f"best_epoch_{c}"] = best.get(c) if best else None
    row["seconds"] = sum(m.get("seconds") or 0.0 for m in metrics)
    return row


def write_results(sweep_dir: str | Path, rows: list[dict], columns: list[str]) -> tuple[Path, Path]:
    """``results.csv`` and ``results.json`` (a list of rows) in ``sweep_dir``, written atomically."""
    sweep_dir = Path(sweep_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    csv_path, json_path = sweep_dir / "results.csv", sweep_dir / "results.json"
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_json(json_path, [{c: row.get(c) for c in columns} for row in rows])
    return csv_path, json_path


# ------------------------------------------------------------------ helpers
def _parse_metrics(text: str) -> list[dict]:
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        rows.append({k: _metric_value(k, v) for k, v in raw.items()})
    return rows


def _metric_value(key: str, text: str | None) -> Any:
    if text is None or text == "":
        return None
    return int(text) if key in _INT_METRICS else float(text)


def _csv_value(value: Any) -> Any:
    return "" if value is None else value
