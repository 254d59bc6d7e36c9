"""``npdpsnn leakage MODEL DATASET --judge JUDGE``: class leakage of a model's weights
(inverted class representatives scored by an independent classifier and by SSIM
to the real class means), written to ``leakage.json`` beside the model."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("leakage")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("dataset")
@click.option("--judge", type=click.Path(path_type=Path), required=True,
              help="An independently trained classifier (run folder or model.h5).")
@click.option("--per-class", type=int, default=2, show_default=True)
@click.option("--iterations", type=int, default=150, show_default=True)
@click.option("--mode", type=click.Choice(["as-ann", "surrogate"]), default="as-ann", show_default=True,
              help="Invert the weights read as a ReLU ANN, or the SNN through its surrogate gradients.")
@click.option("-T", "T", type=int, default=25, show_default=True, help="Time steps for --mode surrogate.")
@click.option("--means-from", type=int, default=20000, show_default=True,
              help="Real training images that form the class means.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
def leakage(model: Path, dataset: str, judge: Path, per_class: int, iterations: int, mode: str, T: int,
            means_from: int, data_dir: Path | None, seed: int) -> None:
    """Score the class leakage of MODEL."""
    from npdpsnn.conversion.balance import as_ann, with_T
    from npdpsnn.conversion.impressions import pixel_box
    from npdpsnn.conversion.leakage import class_means, invert_classes, score_images
    from npdpsnn.conversion.optimize import InputSearch
    from npdpsnn.data import load_dataset
    from npdpsnn.training.checkpoint import load_network

    net = load_network(model)
    judge_net = load_network(judge)
    data = load_dataset(dataset, data_dir=data_dir)
    if net.config.kind == "snn":
        net = as_ann(net) if mode == "as-ann" else with_T(net, T)
    x, y = invert_classes(net, per_class, pixel_box(data.normalization), InputSearch(iterations=iterations),
                          seed=seed)
    means = class_means(data.train_x[:means_from], data.train_y[:means_from], data.num_classes)
    scores = score_images(x, y, judge_net, means, data.normalization).to_dict() | {"mode": mode, "model": str(model)}
    folder = model if model.is_dir() else model.parent
    (folder / "leakage.json").write_text(json.dumps(scores, indent=1) + "\n")
    click.echo(json.dumps(scores))
