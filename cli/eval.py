"""``npdpsnn eval RUN_OR_CHECKPOINT [DATASET]``: test accuracy of a saved model."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("eval")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("dataset", required=False, type=click.Choice(["mnist", "fashion-mnist", "yaleb"],
                                                              case_sensitive=False))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--backend", type=click.Choice(["numba", "reference", "cuda"]), default="numba", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_cmd(run: Path, dataset: str | None, data_dir: Path | None, backend: str, as_json: bool) -> None:
    """Print the test accuracy of the model in RUN (a run folder, checkpoint.h5, or a released model.h5)."""
    from npdpsnn.data import load_dataset
    from npdpsnn.errors import UserError
    from npdpsnn.training.checkpoint import is_model_file, load_checkpoint, load_network

    from npdpsnn.training.trainer import evaluate

    if run.is_file() and is_model_file(run):  # a released weights-only model
        net, cfg, epoch = load_network(run), {}, None
    else:
        state = load_checkpoint(run)
        net, cfg, epoch = state.network, state.train_config, state.epoch
    dataset = (dataset or cfg.get("dataset", "")).lower()
    if not dataset:
        raise UserError(f"name the DATASET: {run} does not record one")
    data = load_dataset(dataset, data_dir=data_dir, seed=cfg.get("run", {}).get("split_seed", 0))
    if tuple(data.input_shape) != tuple(net.input_shape):
        raise UserError(f"the model expects inputs {net.input_shape}, {dataset} has {data.input_shape}")
    if data.num_classes != net.num_classes:
        raise UserError(f"the model has {net.num_classes} outputs, {dataset} has {data.num_classes} classes")
    acc = evaluate(net, data.test_x, data.test_y, backend=backend)
    if as_json:
        click.echo(json.dumps({"dataset": dataset, "test_accuracy": acc, "n_test": len(data.test_y), "epoch": epoch}))
    else:
        at = "" if epoch is None else f" (epoch {epoch})"
        click.echo(f"{dataset}: test accuracy {acc:.4f} on {len(data.test_y)} examples{at}")
