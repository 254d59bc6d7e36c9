"""Markdown tables of training runs for the accuracy experiments (issue 15).

    python -m npdpsnn.paper.accuracy_report FOLDER [FOLDER ...] [--curve 1,2,3]

Each FOLDER is a run folder (``config.json``, ``metrics.csv``, ``summary.json``) or a
folder of run folders.  Runs whose configurations differ only in ``run.seed`` form one
row: the last epoch's test accuracy (and that of the EMA weights) as the mean and the range over
the seeds; the other cells of such a row are its first seed's, and the header says so.  The
columns name the settings that differ between the rows (read from ``config.json``, so
the table cannot disagree with the runs), the privacy spent (RDP epsilon), the
validation accuracy at the epochs of ``--curve`` (selection is made on it, never on the
test set), the last epoch's test accuracy, the EMA weights' test accuracy when the run
kept them, the fraction of clipped examples at the first and the last epoch, and the
best epoch's test accuracy as a labelled extra.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from npdpsnn.errors import UserError
from npdpsnn.training.config import TrainConfig

__all__ = ["RunRecord", "find_runs", "load_run", "markdown_table"]

_IGNORED = ("run.seed", "run.threads", "run.device", "run.physical_batch", "dp.accountant")


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its folder, flat configuration and per-epoch metrics rows."""

    path: Path
    config: dict[str, object]
    metrics: list[dict[str, str]]
    summary: dict[str, object]


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load_run(folder: Path) -> RunRecord:
    """Read one run folder; its configuration is read through :class:`TrainConfig`, so a
    record written before a field existed shows that field's default."""
    raw = json.loads((folder / "config.json").read_text())
    try:
        config = _flatten(TrainConfig.from_dict(raw).to_dict())
    except UserError:  # not a configuration this version can read: shown as recorded
        config = _flatten(raw)
    with open(folder / "metrics.csv", newline="") as f:
        metrics = list(csv.DictReader(f))
    summary = json.loads((folder / "summary.json").read_text())
    return RunRecord(folder, config, metrics, summary)


def find_runs(folders: list[Path]) -> list[RunRecord]:
    """The finished runs in ``folders`` (a run folder or a folder of run folders), sorted by
    path; runs still in progress (fewer metrics rows than epochs) are left out."""
    found: list[Path] = []
    for f in folders:
        if (f / "summary.json").is_file():
            found.append(f)
        else:
            found.extend(p.parent for p in sorted(f.glob("*/summary.json")))
    runs = [load_run(p) for p in sorted(set(found))]
    return [r for r in runs if len(r.metrics) >= int(r.config.get("optim.epochs", 0))]


def _num(row: dict[str, str], key: str) -> float:
    v = row.get(key, "")
    return float(v) if v not in ("", None) else math.nan


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.2f}"


def _value(v: object) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _group_key(run: RunRecord) -> tuple:
    return tuple(sorted((k, json.dumps(v)) for k, v in run.config.items() if k != "run.seed"))


def _groups(runs: list[RunRecord]) -> dict[tuple, list[RunRecord]]:
    groups: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        groups.setdefault(_group_key(r), []).append(r)
    return groups


def _over_seeds(values: list[float]) -> str:
    """One run's value, or the mean and the range over the seeds."""
    if any(math.isnan(v) for v in values):
        return "-"
    mean = sum(values) / len(values)
    return _pct(mean) if len(values) == 1 else f"{_pct(mean)} ({_pct(min(values))}–{_pct(max(values))})"


def markdown_table(runs: list[RunRecord], curve: list[int]) -> str:
    """The table described in the module docstring."""
    if not runs:
        return "(no finished runs)"
    keys = sorted({k for r in runs for k in r.config})
    varying = [k for k in keys if k not in _IGNORED and len({json.dumps(r.config.get(k)) for r in runs}) > 1]
    groups = _groups(runs)
    head = (["run"] + varying + ["seeds", "σ", "ε (RDP)"] + [f"val. ep {e}" for e in curve]
            + ["test, last epoch", "EMA test", "clipped first → last", "best epoch (extra)"])
    if any(len(m) > 1 for m in groups.values()):  # which cells are one seed's
        head[-(4 + len(curve)):-4] = [f"{h} (1st seed)" for h in head[-(4 + len(curve)):-4]]
        head[-2:] = [f"{h} (1st seed)" for h in head[-2:]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for members in groups.values():
        first = members[0]
        test = _over_seeds([_num(r.metrics[-1], "test_accuracy") for r in members])
        ema = _over_seeds([_num(r.metrics[-1], "test_accuracy_ema") for r in members])
        rows = first.metrics
        val = [_pct(_num(rows[e - 1], "validation_accuracy")) if e <= len(rows) else "-" for e in curve]
        clipped = f"{_num(rows[0], 'fraction_clipped'):.2f} → {_num(rows[-1], 'fraction_clipped'):.2f}" \
            if rows[0].get("fraction_clipped") else "-"
        best = max(rows, key=lambda r: _num(r, "test_accuracy"))
        eps = first.summary.get("rdp_epsilon")
        cells = ([first.path.name] + [_value(first.config.get(k)) for k in varying]
                 + [str(len(members)), f"{first.summary.get('sigma') or 0:.4g}",
                    "-" if eps is None else f"{float(eps):.2f}"]
                 + val + [test, ema, clipped,
                          f"{_pct(_num(best, 'test_accuracy'))} (ep {best['epoch']})"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--curve", default="1,2,3", help="epochs whose validation accuracy is shown")
    a = p.parse_args(argv)
    curve = [int(e) for e in a.curve.split(",") if e]
    print(markdown_table(find_runs(a.folders), curve))


if __name__ == "__main__":
    main()
