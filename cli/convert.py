"""``npdpsnn convert ANN_RUN``: PrivateSNN's data-free conversion of a ReLU ANN to an
SNN (class impressions -> threshold balancing [-> fine-tuning on them]), written
as an SNN run folder (``model.h5``, ``conversion.json``, ``impressions.npz``)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("convert")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="SNN run folder.")
@click.option("-T", "T", type=int, default=100, show_default=True, help="Time steps of the SNN.")
@click.option("--per-class", type=int, default=50, show_default=True, help="Class impressions per class.")
@click.option("--iterations", type=int, default=200, show_default=True, help="Adam steps of the impressions.")
@click.option("--lr", type=float, default=0.05, show_default=True, help="Adam step size of the impressions.")
@click.option("--percentile", type=float, default=99.9, show_default=True,
              help="Percentile of the pre-activations that sets each threshold (100: maximum).")
@click.option("--encoding", type=click.Choice(["direct", "poisson"]), default="direct", show_default=True)
@click.option("--finetune-epochs", type=int, default=0, show_default=True,
              help="Epochs of surrogate-gradient fine-tuning on the impressions (0: none).")
@click.option("--finetune-T", "finetune_T", type=int, default=25, show_default=True)
@click.option("--finetune-lr", type=float, default=0.005, show_default=True)
@click.option("--finetune-sigma", type=float, default=None,
              help="Fine-tune under DP-SGD with this noise multiplier (default: no DP).  The guarantee "
                   "covers the impressions, not the ANN's training data.")
@click.option("--finetune-clip", type=float, default=1.5, show_default=True,
              help="Clipping norm R of DP fine-tuning.")
@click.option("--evaluate", type=int, default=0, show_default=True,
              help="Also report accuracy on this many real test images (0: none; data-free).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
def convert(run: Path, out: Path, T: int, per_class: int, iterations: int, lr: float, percentile: float,
            encoding: str, finetune_epochs: int, finetune_T: int, finetune_lr: float,
            finetune_sigma: float | None, finetune_clip: float, evaluate: int,
            data_dir: Path | None, seed: int) -> None:
    """Convert the ReLU ANN in RUN (run folder or model.h5) without touching training data."""
    import numpy as np

    from npdpsnn.conversion.balance import convert as convert_ann, with_T
    from npdpsnn.conversion.finetune import finetune, teacher_labels
    from npdpsnn.conversion.impressions import class_impressions, pixel_box
    from npdpsnn.conversion.optimize import InputSearch
    from npdpsnn.data import load_dataset
    from npdpsnn.errors import UserError
    from npdpsnn.training.callbacks import Callback
    from npdpsnn.training.checkpoint import load_checkpoint, load_network, save_model

    if finetune_sigma is not None and finetune_epochs <= 0:
        raise UserError("--finetune-sigma needs --finetune-epochs > 0")

    class _Privacy(Callback):  # finetune returns the network; its run's guarantee is read here
        privacy: dict | None = None

        def on_fit_end(self, trainer) -> None:
            self.privacy = trainer.privacy()

    tuning = _Privacy()

    try:
        dataset = str(load_checkpoint(run, with_optimizer=False).train_config.get("dataset", ""))
    except Exception:  # a released model.h5
        from npdpsnn.training.checkpoint import load_model_description

        dataset = str(load_model_description(run).get("dataset", ""))
    if not dataset:
        raise UserError(f"{run} does not record its dataset")
    ann = load_network(run)
    data = load_dataset(dataset, data_dir=data_dir)  # only its normalisation (and test set with --evaluate)
    box = pixel_box(data.normalization)
    imp = class_impressions(ann, per_class, box, InputSearch(iterations=iterations, lr=lr), seed=seed)
    conv = convert_ann(ann, imp.x, T=T, percentile=percentile, encoding=encoding, encoding_seed=seed)
    snn = conv.snn
    if finetune_epochs > 0:
        snn = with_T(finetune(with_T(snn, finetune_T), data, imp.x, teacher_labels(ann, imp.x), finetune_epochs, finetune_lr, 25,
                              sigma=finetune_sigma, clip=finetune_clip, seed=seed, callbacks=[tuning]), T)
    record = {"dataset": dataset, "ann_run": str(run), "T": T, "percentile": percentile, "encoding": encoding,
              "impressions": len(imp.y), "iterations": iterations, "lambdas": conv.lambdas,
              "thresholds": list(conv.thresholds), "finetune_epochs": finetune_epochs, "seed": seed}
    if finetune_sigma is not None and tuning.privacy is not None:
        record["finetune_dp"] = dict(tuning.privacy)
        record["finetune_dp"]["protects"] = ("the class impressions the SNN is fine-tuned on; the ANN's training "
                                             "data has the privacy of the ANN run, none here")
    if evaluate > 0:
        x, y = np.asarray(data.test_x[:evaluate]), data.test_y[:evaluate]
        record["ann_test_accuracy"] = float(np.mean(ann.predict(x, "reference", 250) == y))
        record["snn_test_accuracy"] = float(np.mean(snn.predict(x, "reference", 250) == y))
        record["n_test"] = len(y)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.h5", snn)
    np.savez(out / "impressions.npz", x=imp.x, q=imp.q, y=imp.y)
    (out / "conversion.json").write_text(json.dumps(record, indent=1) + "\n")
    click.echo(json.dumps(record))
