"""The run folder: ``config.json``, ``metrics.csv``, ``summary.json``.

All three are rewritten after every epoch from the state that the checkpoint
also holds (see :mod:`.recorder`: staged with the checkpoint, renamed before it).
"""

from __future__ import annotations

import csv
import io
import platform
from pathlib import Path

import numpy as np

from npdpsnn import __version__
from npdpsnn.privacy.accountants import ANALYSES
from npdpsnn.privacy.accountants.analyses import metric_columns
from npdpsnn.training.files import atomic_write_json, atomic_write_text
from npdpsnn.training.metrics import FIRING_RATE_PREFIX

#: Columns of metrics.csv; the privacy columns come from the analyses registry.
METRIC_FIELDS = ("epoch", "step", "train_loss", "train_accuracy", "test_accuracy", *metric_columns(), "seconds",
                 "examples_per_second", "fraction_clipped", "validation_accuracy", "test_accuracy_ema",
                 "validation_accuracy_ema")


METRICS_NAME, SUMMARY_NAME, CONFIG_NAME = "metrics.csv", "summary.json", "config.json"


def metric_fields(rows: list[dict]) -> tuple[str, ...]:
    """The columns of ``rows``: :data:`METRIC_FIELDS`, then the firing rates of
    the model's hidden spiking layers in layer order (``firing_rate_conv1`` ...;
    none for an ANN)."""
    extra = [k for k in (rows[0] if rows else {}) if k.startswith(FIRING_RATE_PREFIX)]
    return (*METRIC_FIELDS, *extra)


def metrics_csv(rows: list[dict]) -> str:
    """``metrics.csv``: one row per epoch, the columns of :func:`metric_fields`."""
    fields = metric_fields(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return buf.getvalue()


def write_metrics(out_dir: Path, rows: list[dict]) -> None:
    atomic_write_text(out_dir / METRICS_NAME, metrics_csv(rows))


def write_config(out_dir: Path, config: dict) -> None:
    atomic_write_json(out_dir / CONFIG_NAME, config)


def versions() -> dict:
    import numba
    import scipy

    return {"npdpsnn": __version__, "numpy": np.__version__, "numba": numba.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def privacy_statement(dp, eps: dict, steps: int, sample_rate: float, n_train: int, covered: bool) -> str:
    """One plain sentence (or two) on what the numbers mean, for the DP settings
    ``dp`` (:class:`~npdpsnn.training.config.DPConfig`) and the epsilons ``eps``."""
    if not dp.enabled:
        return "This model was trained without differential privacy: it carries no privacy guarantee."
    head = (f"Trained with DP-SGD on {n_train} examples ({dp.sampling} sampling, sample rate q = {sample_rate:.6g}, "
            f"noise multiplier sigma = {dp.sigma:.4g}, clipping norm R = {dp.clip:g}, {steps} steps)")
    bounds = [f"epsilon = {_fmt(eps.get(a.epsilon_column))} by the {a.name.upper()} accountant"
              for a in ANALYSES.values() if a.is_bound]
    bound = f"(delta = {dp.delta:g})-DP with " + " and ".join(bounds)
    estimates = "".join(
        f"; the {a.name.upper()} approximation gives "
        + ", ".join(f"{c.split('_')[-1]} = {_fmt(eps.get(c))}" for c in a.columns)
        + ", an asymptotic estimate rather than a bound"
        for a in ANALYSES.values() if not a.is_bound)
    if dp.noise_seed == "os":
        secrecy = (" Noise and batch sampling came from OS entropy; checkpoint.h5 holds their generator states and "
                   "must stay as private as the training data. Release model.h5 (weights only).")
    else:
        secrecy = (" Noise and batch sampling were derived from the run's seed (reproducible runs): any guarantee holds only "
                   "while the seed and this run's checkpoint.h5, config.json and summary.json stay secret; release "
                   "model.h5 (weights only), and train with secret randomness (dp.noise_seed 'os', e.g. --secure-noise) "
                   "for a model meant for release.")
    secrecy += (" The train_loss, train_accuracy and fraction_clipped columns are diagnostics computed on the "
                "training data without noise and are not covered.")
    if covered:
        return f"{head}: it satisfies example-level {bound}{estimates}.{secrecy}"
    return (f"{head}. Shuffled fixed-size batches are not covered by the privacy analyses, so no guarantee is "
            f"proven for this run; for reference only, Poisson sampling at the same rate would give {bound}"
            f"{estimates}.{secrecy}")


def write_summary(out_dir: Path, summary: dict) -> None:
    atomic_write_json(out_dir / SUMMARY_NAME, summary)
