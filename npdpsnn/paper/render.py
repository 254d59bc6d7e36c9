"""Markdown of a reproduced table or figure: our numbers beside the paper's.

Our accuracy and privacy come from the sweep's results rows (the privacy
computed by our accountants for our runs' sampling rate and steps); the
paper's from :mod:`npdpsnn.paper.numbers`.  Tables 1 and 2 give our accuracy
at the last epoch (the best epoch's in parentheses) and the privacy spent by
all epochs; Tables 3 and 4, like the paper, the best epoch's accuracy and the
privacy spent up to that epoch.  Several replicates are averaged (± their
standard deviation).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from npdpsnn.paper.numbers import DELTA, FIGURES, PaperTable
from npdpsnn.plot.curves import PlotRun, accuracy_layout
from npdpsnn.sweep.experiment import Experiment

__all__ = ["render_figure", "render_table"]

_PRIVACY = (("rdp_epsilon", "ma_epsilon", "MA-ε"), ("clt_epsilon", "clt_epsilon", "CLT-ε"),
            ("clt_mu", "clt_mu", "CLT-μ"))
_VARIED_HEADER = {"dp.sigma": "σ", "model.T": "T"}


def render_table(table: PaperTable, rows: list[dict], experiment: Experiment) -> str:
    """The Markdown of ``table`` reproduced by ``rows`` (the sweep's results rows)."""
    kinds = list(table.rows[0].accuracy)
    best = table.accuracy_is_best
    prefix = "best_epoch_" if best else ""
    settings = _settings_in_order(table, rows)
    head = [_VARIED_HEADER.get(table.varied, table.varied)]
    for k in kinds:
        head += [f"{k.upper()} acc. % ours", f"{k.upper()} acc. % paper"]
    for _, _, label in _PRIVACY:
        head += [f"{label} ours", f"{label} paper"]
    head.append("PLD-ε ours")
    lines = [_title(table.title, experiment), "", *_setting_notes(table, rows, experiment), "",
             "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for s in settings:
        ours = [r for r in rows if r.get(table.varied) == s]
        paper = table.row(s)
        cells = [str(s)]
        for k in kinds:
            mine = [r for r in ours if r.get("model.kind") == k]
            cells.append(_accuracy(mine, best))
            cells.append(_fmt(paper.accuracy.get(k) if paper else None))
        privacy_rows = [r for r in ours if r.get("model.kind") == kinds[0]] or ours
        for col, attr, _ in _PRIVACY:
            cells.append(_mean_cell([r.get(prefix + col) for r in privacy_rows]))
            cells.append(_fmt(getattr(paper, attr) if paper else None))
        cells.append(_mean_cell([r.get(prefix + "pld_epsilon") for r in privacy_rows]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_figure(item: str, experiment: Experiment, rows: list[dict], runs: list[PlotRun],
                  files: list[Path]) -> str:
    """The Markdown of a reproduced figure: the images and, per panel and curve,
    the last and best test accuracy (the paper prints curves only)."""
    lines = [_title(FIGURES[item].split(":", 1)[0], experiment), "", FIGURES[item], "",
             f"Ours: {_runs_note(experiment, rows)}", ""]
    lines += [f"![{p.stem}]({p.name})" for p in files if p.suffix == ".png"]
    lines += ["", "| panel | curve | test acc. % last epoch | best % (epoch) |", "|:---|:---|---:|---:|"]
    for panel in accuracy_layout(runs):
        for curve in panel.curves:
            i = max(range(len(curve.mean)), key=curve.mean.__getitem__)
            lines.append(f"| {panel.title or '-'} | {curve.label} | {curve.mean[-1]:.2f} | "
                         f"{curve.mean[i]:.2f} ({curve.epochs[i]}) |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ helpers
def _title(name: str, experiment: Experiment) -> str:
    scale = experiment.scale or "full"
    return f"### {name}: reproduced (`npdpsnn reproduce {experiment.name} --scale {scale}`)"


def _setting_notes(table: PaperTable, rows: list[dict], experiment: Experiment) -> list[str]:
    steps = table.epochs * -(-table.n_train // table.batch_size)
    when = "at the epoch of best test accuracy" if table.accuracy_is_best else "after the last epoch"
    notes = [f"Ours: {_runs_note(experiment, rows)}",
             f"Paper: {table.epochs} epochs, N = {table.n_train}, batch {table.batch_size} "
             f"(q = {table.batch_size / table.n_train:.4g}, {steps} steps).",
             f"Accuracy: {'best epoch' if table.accuracy_is_best else 'last epoch (best epoch in parentheses)'}. "
             f"Privacy {when}, at δ = {DELTA:g}, computed by our accountants for our runs (MA-ε: RDP; CLT-ε, "
             "CLT-μ: Gaussian-DP central limit, an approximation; PLD-ε: numerical upper bound, not in the paper)."]
    if (experiment.scale or "full") != "full":
        notes.append(f"Scale `{experiment.scale}` trains far less than the paper (fewer examples and epochs): it "
                     "checks the pipeline; only `--scale full` is comparable to the paper's numbers.")
    return [n + "  " for n in notes[:-1]] + notes[-1:]


def _runs_note(experiment: Experiment, rows: list[dict]) -> str:
    if not rows:
        return "no finished run."
    r = rows[0]
    seeds = f", mean of {experiment.replicates} seeds" if experiment.replicates > 1 else ""
    return (f"{len(rows)} runs, {r['n_train']} training examples, batch {r['optim.batch_size']} "
            f"(q = {r['sample_rate']:.4g}), {r['epochs_completed']} epochs ({r['steps']} steps){seeds}.")


def _settings_in_order(table: PaperTable, rows: list[dict]) -> list:
    ours = [r.get(table.varied) for r in rows if r.get(table.varied) is not None]
    paper = [r.setting for r in table.rows]
    return paper + [s for s in dict.fromkeys(ours) if s not in paper]


def _accuracy(rows: list[dict], best: bool) -> str:
    if not rows:
        return "—"
    if best:
        return _mean_cell([r["best_test_accuracy"] for r in rows], 100.0)
    last = _mean_cell([r["final_test_accuracy"] for r in rows], 100.0)
    return f"{last} ({_mean_cell([r['best_test_accuracy'] for r in rows], 100.0)})"


def _mean_cell(values: list, scale: float = 1.0) -> str:
    nums = [float(v) * scale for v in values if isinstance(v, (int, float)) or _is_inf(v)]
    if not nums:
        return "—"
    mean = statistics.fmean(nums)
    if len(nums) > 1 and all(math.isfinite(x) for x in nums):
        return f"{mean:.2f} ± {statistics.stdev(nums):.2f}"
    return _fmt(mean)


def _is_inf(v) -> bool:
    return v in ("inf", "Infinity")


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return "∞" if math.isinf(v) else f"{v:.2f}"
