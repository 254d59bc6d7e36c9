"""The guarantee of a NeuralDP run, in words: every assumption it rests on, named.

:func:`neuraldp_statement` returns a :class:`Statement`: ``assumptions`` maps
each assumption (the keys of :data:`ASSUMPTIONS`) to a sentence for this run,
and :attr:`Statement.text` is the whole paragraph the CLI prints and
``summary.json`` keeps.  The argument behind it is in
:mod:`npdpsnn.neuraldp.accounting`.
"""

from __future__ import annotations

from dataclasses import dataclass

from npdpsnn.neuraldp.accounting import PrivacyReport
from npdpsnn.neuraldp.config import NeuralDPSettings
from npdpsnn.neuraldp.features import LayerSplit
from npdpsnn.privacy.accountants import ANALYSES

__all__ = ["ASSUMPTIONS", "Statement", "neuraldp_statement"]

#: Every assumption a NeuralDP statement names, in order.
ASSUMPTIONS: tuple[str, ...] = ("adjacency", "protected", "sensitivity", "noise", "centre", "lower_layers",
                                "labels", "composition", "release", "randomness", "not_covered")


@dataclass(frozen=True)
class Statement:
    """``epsilons`` per bounding analysis (None: refused), ``assumptions`` by name, and the ``text``."""

    epsilons: dict[str, float | None]
    assumptions: dict[str, str]
    text: str


def neuraldp_statement(settings: NeuralDPSettings, split: LayerSplit, *, kind: str, n_train: int, sigma: float,
                       head_sigma: float | None, head_steps: int, head_rate: float, report: PrivacyReport,
                       public_source: str | None = None) -> Statement:
    """The statement of a finished (or planned) run (see the module docstring)."""
    s = settings
    layer = split.layer
    what = "spike counts over the time window" if kind == "snn" else "activations"
    a: dict[str, str] = {}
    a["adjacency"] = (f"replace-one: neighbouring training sets have the same public size N = {n_train} and "
                      "differ in one example; releasing per-example rows has no add/remove guarantee.")
    a["protected"] = ("each training example's image and label." if s.labels == "private" else
                      "each training example's image only; its label is declared public and is not protected.")
    a["sensitivity"] = (f"the {what} of layer {split.index + 1} ({layer.token!r}, {split.feature_size} values) "
                        f"are {'clipped' if s.bound == 'clip' else 'normalised'} to L2 norm C = {s.clip:g} per "
                        f"example, so replacing one example moves one row by at most 2C = {2 * s.clip:g}.")
    a["noise"] = (f"one Gaussian release N(0, sigma^2 C^2) per row with sigma = {sigma:.4g} (noise multiplier "
                  f"sigma/2 = {sigma / 2:.4g} for sensitivity 2C), drawn once; every epoch reads the same rows "
                  "(post-processing), and no subsampling amplification is claimed.")
    a["centre"] = (f"the rows are centred on a DP mean: the sum of rows clipped to {s.center_clip:g} plus "
                   f"N(0, ({s.center_noise_factor:g} sigma)^2 {s.center_clip:g}^2), divided by the public N "
                   "(one more Gaussian release, sensitivity 2 x its clip)." if s.center else
                   "the rows are not centred.")
    lower = {"init": "the data-independent initialisation of the run's seed (checked)",
             "public": f"trained on public data ({public_source or s.public_source})",
             "dp-sgd": "trained with DP-SGD on the private data; that ledger is composed in, as a replacement = "
                       "removal + addition (group of two)"}[s.lower]
    a["lower_layers"] = (f"layers {', '.join(split.lower_weight_names)} (at and below the privatised layer) are "
                         f"{lower}, and frozen during the run (checked before and after); a trainable layer there "
                         "without DP is refused.")
    if s.labels == "private":
        a["labels"] = (f"the head ({split.head_spec}) uses the private labels only through DP-SGD: Poisson rate "
                       f"q = {head_rate:.4g}, clipping R = {s.head_clip:g}, noise multiplier "
                       f"{head_sigma:.4g}, {head_steps} steps, accounted for replace-one neighbours as a removal "
                       "plus an addition (group privacy for two).")
    else:
        a["labels"] = (f"the labels are public, so training the head ({split.head_spec}) on the released rows and "
                       "labels is post-processing and costs no privacy.")
    bounds = [f"{n.upper()} {_fmt(v)}" for n, v in report_epsilons(report).items()]
    refused = "; ".join(f"{n.upper()} refuses: {why}" for n, why in report.refused.items())
    a["composition"] = ("all releases (and DP-SGD steps) are events of one replace-one ledger, composed "
                        f"adaptively; (delta = {s.delta:g})-DP with epsilon {', '.join(bounds)}"
                        + (f" ({refused})" if refused else "") + ".")
    a["release"] = ("the released model is the frozen encoder, the centre, the bound C, the input standardisation "
                    "and the head, all functions of the releases and public data; test-time features are "
                    "computed without noise (test data are not protected).")
    a["randomness"] = ("noise from OS entropy: the run's generator states must stay secret." if s.noise_seed == "os"
                       else "noise derived from the run's seed: the guarantee holds only while the seed stays "
                            "secret; use noise_seed 'os' for a model meant for release.")
    a["not_covered"] = ("the train_loss / train_accuracy columns (computed without noise), any choice of C, K or "
                        "other hyperparameters made on the private data, and floating-point attacks on the "
                        "Gaussian sampler.")
    text = "NeuralDP guarantee. " + " ".join(f"{k.replace('_', ' ').capitalize()}: {v}" for k, v in a.items())
    return Statement(report_epsilons(report), a, text)


def report_epsilons(report: PrivacyReport) -> dict[str, float | None]:
    """The epsilon of every bounding analysis (None where it refused)."""
    return {a.name: report.values.get(a.epsilon_column) for a in ANALYSES.values() if a.is_bound}


def _fmt(v: float | None) -> str:
    return "refused" if v is None else f"{v:.4g}"
