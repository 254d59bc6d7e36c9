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
    """Print the test accuracy of the model in RUN (a run folder or checkpoint.h5)."""
    from npdpsnn.data import load_dataset
    from npdpsnn.errors import UserError
    from npdpsnn.training.checkpoint import load_checkpoint
    from npdpsnn.training.trainer import evaluate

    state = load_checkpoint(run)
    cfg = state.train_config
    dataset = (dataset or cfg.get("dataset", "")).lower()
    if not dataset:
        raise UserError("name the DATASET: the checkpoint does not record one")
    data = load_dataset(dataset, data_dir=data_dir, seed=cfg.get("split_seed", 0))
    if tuple(data.input_shape) != tuple(state.network.input_shape):
        raise UserError(f"the model expects inputs {state.network.input_shape}, {dataset} has {data.input_shape}")
    if data.num_classes != state.network.num_classes:
        raise UserError(f"the model has {state.network.num_classes} outputs, {dataset} has {data.num_classes} classes")
    acc = evaluate(state.network, data.test_x, data.test_y, backend=backend)
    if as_json:
        click.echo(json.dumps({"dataset": dataset, "test_accuracy": acc, "n_test": len(data.test_y),
                               "epoch": state.epoch}))
    else:
        click.echo(f"{dataset}: test accuracy {acc:.4f} on {len(data.test_y)} examples (epoch {state.epoch})")
