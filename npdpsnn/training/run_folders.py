"""Finding, listing and comparing run folders (``npdpsnn runs``).

A run folder is any folder holding ``summary.json`` and ``config.json`` (as
:class:`~npdpsnn.training.recorder.RunRecorder` writes them).  Listing reads
only those two JSON files, never a checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import ANALYSES
from npdpsnn.training.config import TrainConfig, field_paths

_MAX_JSON_BYTES = 16 * 2**20
_MAX_DEPTH = 4


@dataclass(frozen=True)
class RunInfo:
    """One run folder: its path, configuration and summary."""

    path: Path
    config: TrainConfig
    summary: dict

    def row(self) -> dict:
        """The table row of ``npdpsnn runs``."""
        c, s = self.config, self.summary
        m = c.model
        options = f"{m.neuron} {m.surrogate} T={m.T}" if m.kind == "snn" else "tanh"
        row = {
            "run": str(self.path), "dataset": c.dataset, "model": m.kind, "spec": c.spec, "options": options,
            "sigma": c.dp.sigma if c.dp.enabled else None, "epochs": f"{s.get('epochs_completed')}/{c.optim.epochs}",
            "test_accuracy": s.get("test_accuracy"), "best_test_accuracy (epoch)":
                None if s.get("best_test_accuracy") is None else
                f"{s['best_test_accuracy']:.4f} ({s.get('best_epoch')})",
        }
        for a in ANALYSES.values():
            row[a.epsilon_column] = s.get(a.epsilon_column)
        return row


def _read_json(path: Path) -> dict:
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            raise UserError(f"{path} is larger than {_MAX_JSON_BYTES} bytes")
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return value


def read_run(folder: str | os.PathLike) -> RunInfo:
    """The run in ``folder`` (:class:`UserError` when it is not a run folder)."""
    p = Path(folder)
    if not (p / "summary.json").is_file() or not (p / "config.json").is_file():
        raise UserError(f"{p} is not a run folder (no summary.json and config.json)")
    return RunInfo(p, TrainConfig.from_dict(_read_json(p / "config.json")), _read_json(p / "summary.json"))


def find_runs(root: str | os.PathLike) -> list[RunInfo]:
    """Every readable run folder below ``root`` (up to 4 levels, not following links), sorted by path;
    unreadable ones are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= _MAX_DEPTH:
            dirnames[:] = []
        if "summary.json" in filenames and "config.json" in filenames:
            try:
                found.append(read_run(dirpath))
            except UserError:
                continue
    return sorted(found, key=lambda r: str(r.path))


def compare_runs(a: RunInfo, b: RunInfo) -> dict:
    """``{"config": {field: (a, b)}, "results": {key: (a, b)}}`` for what differs."""
    config = {p: (a.config.get(p), b.config.get(p)) for p in a.config.differences(b.config)}
    keys = ["epochs_completed", "test_accuracy", "best_test_accuracy", "best_epoch", "steps", "sample_rate",
            *[c for an in ANALYSES.values() for c in an.columns], "data_fingerprint"]
    results = {}
    for k in keys:
        va, vb = a.summary.get(k), b.summary.get(k)
        if va != vb and not (isinstance(va, float) and isinstance(vb, float) and math.isnan(va) and math.isnan(vb)):
            results[k] = (va, vb)
    return {"config": config, "results": results, "fields": field_paths()}
