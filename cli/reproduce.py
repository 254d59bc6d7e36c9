"""``npdpsnn reproduce ITEM``: a table or figure of the DPSNN paper, ours beside the paper's."""

from __future__ import annotations

from pathlib import Path

import click

from npdpsnn.cli.sweep import ProgressDisplay, executor_from, executor_options
from npdpsnn.paper import ITEMS, SCALES


@click.command("reproduce")
@click.argument("item", metavar="ITEM", type=click.Choice(ITEMS))
@click.option("--scale", type=click.Choice(SCALES), default="smoke", show_default=True,
              help="tiny: seconds (a pipeline check); smoke: at most ~10 minutes on 2 cores; full: the paper's "
                   "settings (hours; a GPU or a cluster).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: reproduce/<item>-<scale>].")
@executor_options
@click.option("--quiet", is_flag=True, help="No progress output.")
def reproduce(item: str, scale: str, out: Path | None, quiet: bool, **opts) -> None:
    """Run the paper's ITEM (table1..table4, fig3..fig6) and print it as Markdown beside the paper's numbers.

    Resumable: run the same command again after an interruption.  Writes
    ITEM.md, results.csv / results.json and, for a figure, ITEM.png / ITEM.svg
    (and ITEM-epsilon.png / .svg) into the output folder."""
    from npdpsnn.paper.reproduce import reproduce as run_item

    data_dir = opts.pop("data_dir")
    with executor_from(opts) as executor:
        if not quiet:
            click.echo(f"npdpsnn reproduce {item} --scale {scale} | {executor.description}", err=True)
        result = run_item(item, scale, out, executor, data_dir, ProgressDisplay(quiet))
    click.echo(result.markdown, nl=False)
    click.echo("files: " + ", ".join(str(p) for p in result.files), err=True)
