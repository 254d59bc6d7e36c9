"""``npdpsnn predict MODEL IMAGES...``: classify one's own images with a released model."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("predict")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", type=int, default=3, show_default=True, help="Classes to list per image.")
@click.option("--backend", type=click.Choice(["numba", "reference", "cuda"]), default="numba", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image (JSON lines).")
def predict(model: Path, images: tuple[Path, ...], top_k: int, backend: str, as_json: bool) -> None:
    """Classify IMAGES (PNG, PGM or .npy; grey, any size at least the model's input) with MODEL (a model.h5 or
    run folder): the top classes with their probabilities."""
    import numpy as np

    from npdpsnn.errors import UserError
    from npdpsnn.predict import load_images, predict_images
    from npdpsnn.training.checkpoint import load_model_description, load_network

    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    description = load_model_description(model)
    if not description:
        raise UserError(f"{model} does not describe its input (a model.h5 written by npdpsnn train is needed)")
    net = load_network(model)
    names, pixels = load_images(images, tuple(description["input_shape"]))
    probs = predict_images(net, pixels, description["input"]["normalization"], backend=backend)
    classes = description.get("class_names") or [str(i) for i in range(net.num_classes)]
    for name, p in zip(names, probs):
        order = np.argsort(-p, kind="stable")[:top_k]
        top = [(classes[i], float(p[i])) for i in order]
        if as_json:
            click.echo(json.dumps({"image": name, "top": [{"class": c, "probability": q} for c, q in top]}))
        else:
            click.echo(f"{name}: " + ", ".join(f"{c} {q:.3f}" for c, q in top))
