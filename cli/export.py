"""``npdpsnn export MODEL --npz OUT``: the weights as a plain NumPy archive."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--npz", "npz", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the weights and a JSON description here (.npz, no pickle).")
def export(model: Path, npz: Path) -> None:
    """Export MODEL (model.h5, a checkpoint or a run folder) to a .npz archive."""
    from npdpsnn.training.checkpoint import load_network
    from npdpsnn.training.export import export_npz

    export_npz(load_network(model), npz)
    click.echo(f"wrote {npz}")
