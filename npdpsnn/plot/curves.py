"""Which runs go into which panel and curve: the layout of a figure, without drawing it.

A plotted run carries ``labels``: for a run of a sweep, its grid values (axis
-> value, ``replicate``); for a lone run folder, the fields that describe it
(dataset, net, model kind / neuron / surrogate / T, ``dp.sigma`` -- None
without DP -- and its seed as ``replicate``).  :func:`layout` puts one panel
per value of ``panel_by`` (default: the first of :data:`PANEL_KEYS` that
varies; no-DP first, then increasing sigma, as in the paper's figures) and one
curve per combination of the other varying labels (``curve_by``); runs that
differ only in ``replicate`` are averaged (mean, with their min and max).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import ANALYSES
from npdpsnn.sweep.results import RunRecord, read_run

__all__ = ["Curve", "Panel", "PlotRun", "accuracy_layout", "epsilon_layout", "layout", "load_plot_runs",
           "value_label"]

#: Labels that make panels, in order of preference.
PANEL_KEYS: tuple[str, ...] = ("privacy", "dp.sigma", "dataset")

_LONE_RUN_FIELDS = ("dataset", "net", "model.kind", "model.neuron", "model.surrogate", "model.T")
_SIGMA_LABEL = re.compile(r"^sigma[-_ ]?([0-9.]+)$")


@dataclass(frozen=True)
class PlotRun:
    """One run to plot: ``labels`` (see the module docstring) and its ``record``."""

    name: str
    labels: dict[str, Any]
    record: RunRecord


@dataclass(frozen=True)
class Curve:
    """One line: ``label``, epochs, and the mean / min / max over its ``n`` runs."""

    label: str
    epochs: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: int


@dataclass(frozen=True)
class Panel:
    title: str
    curves: list[Curve]


def load_plot_runs(paths: list[str | Path]) -> list[PlotRun]:
    """Runs from run folders and sweep folders (a sweep contributes its finished runs, in plan order)."""
    if not paths:
        raise UserError("give at least one run or sweep folder")
    runs: list[PlotRun] = []
    for path in map(Path, paths):
        if (path / "sweep.json").is_file():
            runs.extend(_sweep_runs(path))
        elif (path / "summary.json").is_file():
            record = read_run(path)
            cfg = record.train_config
            labels = {f: cfg.get(f) for f in _LONE_RUN_FIELDS}
            labels["dp.sigma"] = cfg.dp.sigma if cfg.dp.enabled else None
            labels["replicate"] = cfg.run.seed
            runs.append(PlotRun(str(path), labels, record))
        else:
            raise UserError(f"{path} is neither a run folder (summary.json) nor a sweep folder (sweep.json)")
    if not runs:
        raise UserError("no finished run to plot in " + ", ".join(map(str, paths)))
    return runs


def layout(runs: list[PlotRun], metric: str, panel_by: str | None = None, curve_by: list[str] | None = None,
           scale: float = 1.0) -> list[Panel]:
    """Panels of curves of the per-epoch ``metric`` (times ``scale``), see the module docstring
    (``panel_by=""``: a single panel)."""
    varying = _varying(runs)
    if panel_by is None:
        panel_by = next((k for k in PANEL_KEYS if k in varying), None)
    elif panel_by == "":  # one panel
        panel_by = None
    elif panel_by not in _keys(runs):
        raise UserError(f"cannot panel by {panel_by!r}; the runs have: {', '.join(_keys(runs))}")
    if curve_by is None:
        curve_by = [k for k in varying if k not in (panel_by, "replicate")]
    for key in curve_by:
        if key not in _keys(runs):
            raise UserError(f"cannot draw curves by {key!r}; the runs have: {', '.join(_keys(runs))}")
    panel_values = _ordered([r.labels.get(panel_by) for r in runs], panel_by) if panel_by else [None]
    panels = []
    for i, pv in enumerate(panel_values):
        members = [r for r in runs if panel_by is None or r.labels.get(panel_by) == pv]
        groups: dict[tuple, list[PlotRun]] = {}
        for r in members:
            groups.setdefault(tuple(r.labels.get(k) for k in curve_by), []).append(r)
        curves = [c for key, rs in groups.items()
                  if (c := _curve(_curve_label(curve_by, key), rs, metric, scale)) is not None]
        title = value_label(panel_by, pv) if panel_by else ""
        if len(panel_values) > 1:
            title = f"({chr(ord('A') + i)}) {title}"
        panels.append(Panel(title, curves))
    return panels


def accuracy_layout(runs: list[PlotRun], panel_by: str | None = None,
                    curve_by: list[str] | None = None) -> list[Panel]:
    """Test accuracy (percent) per epoch."""
    return layout(runs, "test_accuracy", panel_by, curve_by, scale=100.0)


def epsilon_layout(runs: list[PlotRun]) -> list[Panel]:
    """One panel per privacy analysis (MA-, CLT-, PLD-epsilon per epoch), one curve
    per noise level and sampling rate (runs without DP are left out)."""
    private = [r for r in runs if r.record.summary.get("dp")]
    rates = {r.record.summary.get("sample_rate") for r in private}
    keyed = []
    for r in private:
        labels = {"dp.sigma": r.record.summary.get("sigma"), "replicate": r.name}
        if len(rates) > 1:
            labels["q"] = round(r.record.summary.get("sample_rate"), 6)
        keyed.append(PlotRun(r.name, labels, r.record))
    curve_by = ["dp.sigma", "q"] if len(rates) > 1 else ["dp.sigma"]
    return [Panel(f"ε, {a.label}", layout(keyed, a.epsilon_column, "", curve_by)[0].curves if keyed else [])
            for a in ANALYSES.values()]


def value_label(key: str | None, value: Any) -> str:
    """How a label value reads in a legend or title (``SNN``, ``Net1``, ``σ = 1.0``, ``T = 5``, ``no DP``)."""
    if key in ("dp.sigma", "privacy"):
        if value is None or value in ("nodp", "no-dp", "none"):
            return "no DP"
        m = _SIGMA_LABEL.match(str(value))
        if key == "dp.sigma" or m:
            return f"σ = {m.group(1) if m else value}"
        return str(value)
    if key == "model.kind" or key == "model.neuron":
        return str(value).upper()
    if key in ("net", "network") and re.fullmatch(r"net\d", str(value)):
        return "Net" + str(value)[3:]
    if key == "model.T":
        return f"T = {value}"
    if key in ("model.surrogate", "dataset", None):
        return str(value)
    return f"{key.rsplit('.', 1)[-1]} = {value}"


# ------------------------------------------------------------------ helpers
def _sweep_runs(folder: Path) -> list[PlotRun]:
    try:
        plan = json.loads((folder / "sweep.json").read_text())
        entries = [(e["name"], {**e["grid"], "replicate": e["replicate"]}) for e in plan["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read {folder / 'sweep.json'}: {exc}") from None
    return [PlotRun(name, labels, read_run(folder / "runs" / name)) for name, labels in entries
            if (folder / "runs" / name / "summary.json").is_file()]


def _keys(runs: list[PlotRun]) -> list[str]:
    keys: list[str] = []
    for r in runs:
        keys.extend(k for k in r.labels if k not in keys)
    return keys


def _varying(runs: list[PlotRun]) -> list[str]:
    return [k for k in _keys(runs) if len({json.dumps(r.labels.get(k)) for r in runs}) > 1]


def _ordered(values: list, key: str) -> list:
    """Distinct values in first-seen order; privacy levels as no DP, then increasing sigma."""
    distinct = list(dict.fromkeys(values))
    if key in ("privacy", "dp.sigma"):
        return sorted(distinct, key=lambda v: _privacy_rank(key, v))
    return distinct


def _privacy_rank(key: str, value: Any) -> tuple[int, float]:
    if value_label(key, value) == "no DP":
        return (0, 0.0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value))
    m = _SIGMA_LABEL.match(str(value))
    return (1, float(m.group(1))) if m else (2, 0.0)


def _curve_label(keys: list[str], values: tuple) -> str:
    parts = [value_label(k, v) for k, v in zip(keys, values)]
    return ("-" if all(" " not in p for p in parts) else ", ").join(parts) or "run"


def _curve(label: str, runs: list[PlotRun], metric: str, scale: float) -> Curve | None:
    series = []
    for r in runs:
        points = {m["epoch"]: m.get(metric) for m in r.record.metrics}
        series.append({e: v * scale for e, v in points.items() if isinstance(v, (int, float)) and math.isfinite(v)})
    epochs = sorted(set.intersection(*(set(s) for s in series))) if series else []
    if not epochs:
        return None
    cols = [[s[e] for s in series] for e in epochs]
    return Curve(label, epochs, [sum(c) / len(c) for c in cols], [min(c) for c in cols], [max(c) for c in cols],
                 len(runs))
