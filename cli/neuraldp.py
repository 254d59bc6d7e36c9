"""``npdpsnn train-neuraldp DATASET --privatize-layer K --labels public|private``: NeuralDP training.

The mechanism and its guarantee are in :mod:`npdpsnn.neuraldp`.  The command
writes a run folder: ``config.json``, ``metrics.csv``, ``summary.json`` (with
the privacy statement, every assumption and the ledger), and the released
model (``encoder.h5``, ``head.h5``, ``neuraldp.json``).

For ``npdpsnn train ... --mechanism neuraldp``: :func:`run_neuraldp` takes the
same dotted configuration values as :meth:`NeuralDPConfig.from_values`
(``model.kind``, ``optim.lr``, ..., ``neuraldp.layer``, ``neuraldp.clip``, ...),
so ``train`` can map its own flags through its ``FIELD_OF_OPTION`` and pass
the NeuralDP options (:data:`NEURALDP_OPTIONS` lists them) as ``neuraldp.*``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from npdpsnn.data.registry import DATASETS
from npdpsnn.errors import UserError
from npdpsnn.model.surrogates import SURROGATES
from npdpsnn.cli.fields import FIELD_OF_OPTION
from npdpsnn.training.callbacks import Callback

#: Option name -> NeuralDP configuration field (``neuraldp.*``) or training field.
NEURALDP_OPTIONS: dict[str, str] = {
    "layer": "neuraldp.layer", "labels": "neuraldp.labels", "act_clip": "neuraldp.clip", "bound": "neuraldp.bound",
    "sigma": "neuraldp.sigma", "target_epsilon": "neuraldp.target_epsilon", "delta": "neuraldp.delta",
    "accountant": "neuraldp.accountant", "center_clip": "neuraldp.center_clip",
    "center_noise_factor": "neuraldp.center_noise_factor", "head": "neuraldp.head",
    "head_sigma": "neuraldp.head_sigma", "head_clip": "neuraldp.head_clip", "label_budget": "neuraldp.label_budget",
    "lower": "neuraldp.lower", "public_source": "neuraldp.public_source", "noise_seed": "neuraldp.noise_seed",
}
#: The training options that apply to NeuralDP (their fields come from ``train``'s one map).
_TRAIN_FIELDS: dict[str, str] = {k: FIELD_OF_OPTION[k] for k in (
    "model", "net", "neuron", "surrogate", "T", "threshold", "leak", "batch_size", "lr", "momentum", "epochs",
    "lr_schedule", "seed", "limit_train", "validation")}


class _EpochLines(Callback):
    def on_epoch_end(self, trainer, row: dict) -> None:
        def f(v):
            return "-" if v is None else f"{v:.4g}"

        click.echo(f"epoch {row['epoch']:3d}  head train_loss {row['train_loss']:.4f}  test_acc "
                   f"{f(row['test_accuracy'])}  eps_rdp {f(row['rdp_epsilon'])}  eps_pld {f(row['pld_epsilon'])}  "
                   f"eps_clt {f(row['clt_epsilon'])}  {row['seconds']:.1f}s")


def run_neuraldp(dataset: str, values: dict[str, Any], *, out: Path | None = None, data_dir: Path | None = None,
                 encoder: Path | None = None, quiet: bool = False) -> dict:
    """Train NeuralDP from dotted ``values``, write the run folder ``out`` and return the summary."""
    from npdpsnn.data import load_dataset
    from npdpsnn.neuraldp.config import NeuralDPConfig
    from npdpsnn.neuraldp.fit import fit_neuraldp
    from npdpsnn.training.files import atomic_write_json
    from npdpsnn.training.records import write_metrics, write_summary

    cfg = NeuralDPConfig.from_values(dataset, {k: v for k, v in values.items() if v is not None})
    net, lower_ledger = _encoder(encoder, cfg.neuraldp.lower)
    if out is None:
        out = Path("runs") / f"neuraldp-{dataset}-{cfg.base.model.kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (Path(out) / "summary.json").exists():
        raise UserError(f"{out} already holds a run; choose another --out")
    data = load_dataset(dataset, data_dir=data_dir, seed=cfg.base.run.split_seed)
    if not quiet:
        s = cfg.neuraldp
        click.echo(f"npdpsnn: NeuralDP on {dataset} ({cfg.base.model.kind}), layer {s.layer} privatised, C = "
                   f"{s.clip:g}, labels {s.labels}, lower layers {s.lower} | run folder {out}")
    result = fit_neuraldp(cfg, data, encoder=net, lower_ledger=lower_ledger, callbacks=[] if quiet else [_EpochLines()])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", result.config.to_dict())
    write_metrics(out, result.metrics)
    result.model.save(out)
    write_summary(out, result.summary)
    if not quiet:
        click.echo(f"test accuracy {result.summary['test_accuracy']:.4f}")
        click.echo(result.statement.text)
        click.echo(f"records: {out}/summary.json, metrics.csv; model: encoder.h5, head.h5, neuraldp.json")
    return result.summary


def _encoder(path: Path | None, lower: str):
    """``(network or None, DP-SGD ledger event or None)`` from ``--encoder``: a weights-only
    ``model.h5`` (public or initialisation), or a DP-SGD run folder / checkpoint (its ledger)."""
    from npdpsnn.privacy.accountants import PrivacyAccountant
    from npdpsnn.training.checkpoint import is_model_file, load_checkpoint, load_network

    if path is None:
        if lower != "init":
            raise UserError(f"--lower {lower} needs --encoder (the network whose lower layers are used)")
        return None, None
    if lower == "dp-sgd":
        state = load_checkpoint(path, with_optimizer=False)
        return state.network, PrivacyAccountant.from_state_dict(state.accountant).event
    if path.is_file() and is_model_file(path):
        return load_network(path), None
    raise UserError(f"--encoder {path}: give a weights-only model.h5 (or, with --lower dp-sgd, a DP-SGD run folder)")


@click.command("train-neuraldp")
@click.argument("dataset", type=click.Choice(DATASETS, case_sensitive=False))
@click.option("--privatize-layer", "layer", required=True,
              help="Layer K whose per-example output is privatised: its position in the spec from 1 (net2: 4 = "
                   "second pooling, 5 = the 32-unit layer) or a weight layer's name (conv2, fc1).")
@click.option("--labels", type=click.Choice(["private", "public"]), default="private", show_default=True,
              help="private: the head is trained with DP-SGD; public: labels are declared public (not protected).")
@click.option("--act-clip", type=float, required=True, help="Row bound C: per-example L2 norm of layer K's output.")
@click.option("--bound", type=click.Choice(["clip", "normalize"]), default="clip", show_default=True)
@click.option("--sigma", type=float, default=None, help="Row noise multiplier (noise std / C).")
@click.option("--target-epsilon", type=float, default=None, help="Calibrate the noise to this epsilon instead.")
@click.option("--delta", type=float, default=1e-5, show_default=True)
@click.option("--accountant", type=click.Choice(["rdp", "pld"]), default="rdp", show_default=True,
              help="The bound used for calibration (pld only with --labels public).")
@click.option("--center-clip", type=float, default=None, help="Bound of the rows summed for the DP centre.")
@click.option("--no-center", is_flag=True, help="Do not centre the rows (no centre release).")
@click.option("--center-noise-factor", type=float, default=8.0, show_default=True,
              help="The centre's noise multiplier in units of --sigma.")
@click.option("--head", default=None, help="Spec of the layers trained on the released rows [default: the "
                                          "network's layers above K].")
@click.option("--head-sigma", type=float, default=None, help="Noise multiplier of the head's DP-SGD (private labels).")
@click.option("--head-clip", type=float, default=1.0, show_default=True, help="Clipping norm of the head's DP-SGD.")
@click.option("--label-budget", type=float, default=0.5, show_default=True,
              help="Share of --target-epsilon the head's DP-SGD is calibrated to (private labels).")
@click.option("--lower", type=click.Choice(["init", "public", "dp-sgd"]), default="init", show_default=True,
              help="Where layers 0..K come from: the seed's initialisation, public data (--encoder, "
                   "--public-source) or DP-SGD on this data (--encoder RUN: its ledger is composed in).")
@click.option("--encoder", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--public-source", default=None, help="The public data set the encoder was trained on.")
@click.option("--model", type=click.Choice(["snn", "ann"]), default="snn", show_default=True)
@click.option("--net", default="net2", show_default=True)
@click.option("--neuron", type=click.Choice(["if", "lif"]), default="if", show_default=True)
@click.option("--surrogate", type=click.Choice(list(SURROGATES)), default="gate", show_default=True)
@click.option("-T", "--time-window", "T", type=int, default=5, show_default=True)
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option("--leak", type=float, default=0.2, show_default=True)
@click.option("--batch-size", type=int, default=250, show_default=True)
@click.option("--lr", type=float, default=0.5, show_default=True)
@click.option("--momentum", type=float, default=0.0, show_default=True)
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="cosine", show_default=True)
@click.option("--validation", type=int, default=0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--noise-seed", type=click.Choice(["derived", "os"]), default="derived", show_default=True)
@click.option("--limit-train", type=int, default=None, help="Use only the first N training examples.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--quiet", is_flag=True)
def train_neuraldp(dataset: str, no_center: bool, encoder: Path | None, data_dir: Path | None, out: Path | None,
                   quiet: bool, **opts) -> None:
    """Train on DATASET with NeuralDP: layer K's per-example output bounded and noised once, the layers
    above trained on it; prints the guarantee with every assumption."""
    layer = opts["layer"]
    opts["layer"] = int(layer) if str(layer).strip().isdigit() else layer
    values = {field: opts[name] for name, field in {**NEURALDP_OPTIONS, **_TRAIN_FIELDS}.items()}
    values["neuraldp.center"] = not no_center
    try:
        run_neuraldp(dataset.lower(), values, out=out, data_dir=data_dir, encoder=encoder, quiet=quiet)
    except UserError as exc:  # the library names configuration fields; say which option sets each
        raise UserError(_with_flags(str(exc))) from None


def _with_flags(message: str) -> str:
    """``message`` with configuration field names replaced by this command's options."""
    flags = {p.name: p.opts[0] for p in train_neuraldp.params}
    fields = {field: flags[name] for name, field in {**NEURALDP_OPTIONS, **_TRAIN_FIELDS}.items() if name in flags}
    fields["neuraldp.center"] = "--no-center"
    for field_name, flag in sorted(fields.items(), key=lambda kv: -len(kv[0])):
        message = message.replace(field_name, flag)
    return message
