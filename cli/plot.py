"""``npdpsnn plot RUN_OR_SWEEP...``: learning curves and privacy per epoch as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("plot")
@click.argument("folders", nargs=-1, required=True, metavar="RUN_OR_SWEEP...",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the figures.")
@click.option("--name", default="curves", show_default=True,
              help="File name stem: NAME.png/.svg (accuracy), NAME-epsilon.png/.svg (privacy).")
@click.option("--panel-by", default=None,
              help="Label that makes the panels (privacy, dp.sigma, dataset, a grid axis ...) [default: the first "
                   "of privacy, dp.sigma, dataset that varies]; '' for one panel.")
@click.option("--curve-by", default=None,
              help="Comma-separated labels that make the curves [default: every other label that varies; seeds "
                   "are averaged].")
@click.option("--title", default=None, help="Figure title.")
def plot(folders: tuple[Path, ...], out: Path, name: str, panel_by: str | None, curve_by: str | None,
         title: str | None) -> None:
    """Plot test accuracy and epsilon per epoch of run folders and sweep folders.

    Panels follow the paper's figures: one per noise level (no DP first), one
    curve per model / network / surrogate / neuron / T that varies."""
    from npdpsnn.errors import UserError
    from npdpsnn.plot.curves import load_plot_runs
    from npdpsnn.plot.figures import write_figures

    if not name or "/" in name:
        raise UserError(f"--name must be a plain file name stem, got {name!r}")
    curves = None if curve_by is None else [c.strip() for c in curve_by.split(",") if c.strip()]
    paths = write_figures(load_plot_runs(list(folders)), out, name, panel_by, curves, title)
    for p in paths:
        click.echo(str(p))
