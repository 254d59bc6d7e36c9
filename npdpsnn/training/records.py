"""The run folder: ``config.json``, ``metrics.csv``, ``summary.json``.

All three are rewritten atomically after every epoch from the state that the
checkpoint also holds, so they always agree with ``checkpoint.h5``.
"""

from __future__ import annotations

import csv
import io
import platform
from pathlib import Path

import numpy as np

from npdpsnn import __version__
from npdpsnn.training.files import atomic_write_json, atomic_write_text

METRIC_FIELDS = ("epoch", "step", "train_loss", "train_accuracy", "test_accuracy", "rdp_epsilon", "clt_epsilon",
                 "clt_mu", "pld_epsilon", "seconds", "examples_per_second")


def write_metrics(out_dir: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in METRIC_FIELDS})
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())


def write_config(out_dir: Path, config: dict) -> None:
    atomic_write_json(out_dir / "config.json", config)


def versions() -> dict:
    import numba
    import scipy

    return {"npdpsnn": __version__, "numpy": np.__version__, "numba": numba.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def privacy_statement(cfg: dict, eps: dict, steps: int, sample_rate: float, n_train: int,
                      covered: bool) -> str:
    """One plain sentence (or two) on what the numbers mean."""
    if not cfg["dp"]:
        return "This model was trained without differential privacy: it carries no privacy guarantee."
    head = (f"Trained with DP-SGD on {n_train} examples ({cfg['sampling']} sampling, sample rate q = {sample_rate:.6g}, "
            f"noise multiplier sigma = {cfg['sigma']:.4g}, clipping norm R = {cfg['clip']:g}, {steps} steps)")
    bound = (f"(epsilon = {_fmt(eps.get('rdp_epsilon'))}, delta = {cfg['delta']:g})-DP by the RDP accountant"
             f" and epsilon = {_fmt(eps.get('pld_epsilon'))} by the numerical PLD accountant")
    clt = (f"; the CLT (Gaussian DP) approximation gives mu = {_fmt(eps.get('clt_mu'))}, "
           f"epsilon = {_fmt(eps.get('clt_epsilon'))}, an asymptotic estimate rather than a bound")
    if cfg["noise_seed"] == "os":
        secrecy = (" Noise and batch sampling came from OS entropy; checkpoint.h5 holds their generator states and "
                   "must stay as private as the training data. Release model.h5 (weights only).")
    else:
        secrecy = (" Noise and batch sampling were derived from --seed (reproducible runs): the guarantee holds only "
                   "while the seed and this run's checkpoint.h5, config.json and summary.json stay secret; release "
                   "model.h5 (weights only), and train with --noise-seed os for a model meant for release.")
    secrecy += (" The train_loss and train_accuracy columns are computed on the training data without noise and "
                "are not covered.")
    if covered:
        return f"{head}: it satisfies example-level {bound}{clt}.{secrecy}"
    return (f"{head}. The reported {bound}{clt} are computed for Poisson sampling; shuffled fixed-size batches are "
            f"not covered by that analysis, so they are not a proven guarantee for this run.{secrecy}")


def write_summary(out_dir: Path, summary: dict) -> None:
    atomic_write_json(out_dir / "summary.json", summary)
