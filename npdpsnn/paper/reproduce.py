"""Reproduce a table or figure of the DPSNN paper: run its shipped experiment, render the result.

:func:`reproduce` loads ``npdpsnn/paper/experiments/<item>.toml`` at a scale
(``tiny``: seconds, a pipeline check; ``smoke``: minutes on two cores;
``full``: the paper's settings), runs it as a sweep (resumable: run it again
after an interruption), and writes into the output folder ``<item>.md`` --
our numbers beside the paper's -- and, for a figure, ``<item>.png/.svg``
(test accuracy per epoch in the paper's panel layout) and
``<item>-epsilon.png/.svg``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from npdpsnn.errors import UserError
from npdpsnn.paper import ITEMS, SCALES
from npdpsnn.paper.numbers import FIGURES, TABLES
from npdpsnn.sweep.executors import Executor
from npdpsnn.sweep.experiment import load_experiment
from npdpsnn.sweep.sweep import OnProgress, SweepOutcome, run_sweep
from npdpsnn.training.files import atomic_write_text

__all__ = ["ITEMS", "SCALES", "Reproduction", "reproduce"]


@dataclass
class Reproduction:
    """The Markdown and the files written for one item."""

    item: str
    folder: Path
    markdown: str
    outcome: SweepOutcome
    files: list[Path] = field(default_factory=list)


def reproduce(item: str, scale: str = "smoke", out_dir: str | Path | None = None, executor: Executor | None = None,
              data_dir: str | Path | None = None, on_progress: OnProgress | None = None) -> Reproduction:
    """Run the shipped experiment ``item`` at ``scale`` in ``out_dir`` (default
    ``reproduce/<item>-<scale>``) and render it (see the module docstring)."""
    if item not in ITEMS:
        raise UserError(f"unknown item {item!r}; choose one of {', '.join(ITEMS)}")
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    experiment = load_experiment(item, scale)
    folder = Path(out_dir) if out_dir is not None else Path("reproduce") / experiment.label
    outcome = run_sweep(experiment, folder, executor, data_dir, on_progress)
    outcome.check()
    from npdpsnn.paper.render import render_figure, render_table

    files: list[Path] = []
    if item in TABLES:
        markdown = render_table(TABLES[item], outcome.rows, experiment)
    else:
        from npdpsnn.plot.curves import load_plot_runs
        from npdpsnn.plot.figures import write_figures

        runs = load_plot_runs([folder])
        title = f"{FIGURES[item].split(':', 1)[0]} (ours, scale {scale})"
        files = write_figures(runs, folder, item, title=title)
        markdown = render_figure(item, experiment, outcome.rows, runs, files)
    md_path = folder / f"{item}.md"
    atomic_write_text(md_path, markdown)
    return Reproduction(item, folder, markdown, outcome, [md_path, *files])
