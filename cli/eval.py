"""``npdpsnn eval RUN_OR_CHECKPOINT [DATASET]``: accuracy, loss, per-class accuracy,
confusion matrix and (for SNNs) firing rates of a saved model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from npdpsnn.data.registry import DATASETS


@click.command("eval")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("dataset", required=False, type=click.Choice(DATASETS, case_sensitive=False))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--backend", type=click.Choice(["numba", "reference", "cuda"]), default="numba", show_default=True)
@click.option("--firing-examples", type=int, default=256, show_default=True,
              help="Test images on which the SNN's firing rates are measured (0: skip).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with the confusion matrix).")
def eval_cmd(run: Path, dataset: str | None, data_dir: Path | None, backend: str, firing_examples: int,
             as_json: bool) -> None:
    """Evaluate the model in RUN (a run folder, checkpoint.h5, or a released model.h5) on the test set."""
    import logging

    import numpy as np

    from npdpsnn.data import load_dataset
    from npdpsnn.errors import UserError
    from npdpsnn.training.checkpoint import is_model_file, load_checkpoint, load_model_description, load_network
    from npdpsnn.training.metrics import confusion_matrix, firing_rates, per_class_accuracy
    from npdpsnn.training.trainer import evaluate_model

    if run.is_file() and is_model_file(run):  # a released model: it says which dataset it was trained on
        description = load_model_description(run)
        net, epoch = load_network(run), description.get("epoch")
        cfg = {"dataset": description.get("dataset", "")}
    else:
        state = load_checkpoint(run, with_optimizer=False)
        net, cfg, epoch = state.network, state.train_config, state.epoch
    recorded = str(cfg.get("dataset", "") or "").lower()
    dataset = (dataset or recorded).lower()
    if not dataset:
        raise UserError(f"name the DATASET: {run} does not record one")
    if recorded and dataset != recorded:
        logging.getLogger("npdpsnn.eval").warning("%s was trained on %s, not %s", run, recorded, dataset)
    data = load_dataset(dataset, data_dir=data_dir, seed=cfg.get("run", {}).get("split_seed", 0))
    if tuple(data.input_shape) != tuple(net.input_shape):
        raise UserError(f"the model expects inputs {net.input_shape}, {dataset} has {data.input_shape}")
    if data.num_classes != net.num_classes:
        raise UserError(f"the model has {net.num_classes} outputs, {dataset} has {data.num_classes} classes")
    ev = evaluate_model(net, data.test_x, data.test_y, backend=backend)
    conf = confusion_matrix(data.test_y, np.argmax(ev.logits, axis=1), data.num_classes)
    per_class = per_class_accuracy(conf)
    rates = firing_rates(net, data.test_x[: max(0, firing_examples)]) if firing_examples > 0 else {}
    if as_json:
        click.echo(json.dumps({"dataset": dataset, "test_accuracy": ev.accuracy, "test_loss": float(ev.losses.mean()),
                               "n_test": len(data.test_y), "epoch": epoch,
                               "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
                               "confusion_matrix": conf.tolist(), "firing_rates": rates,
                               "firing_examples": min(firing_examples, len(data.test_y)) if rates else 0}))
        return
    at = "" if epoch is None else f" (epoch {epoch})"
    click.echo(f"{dataset}: test accuracy {ev.accuracy:.4f}, loss {ev.losses.mean():.4f} on {len(data.test_y)} "
               f"examples{at}")
    click.echo("per-class accuracy: " + "  ".join(f"{i}:{a:.3f}" for i, a in enumerate(per_class)))
    if rates:
        click.echo(f"firing rates (spikes per neuron per step, {min(firing_examples, len(data.test_y))} images): "
                   + "  ".join(f"{k} {v:.3f}" for k, v in rates.items()))
