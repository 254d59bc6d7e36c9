"""The DPSNN paper's privacy claims, measured (issue 11, item 4).

Wang et al. 2022 argue that spiking networks protect privacy better -- SNN over
ANN, a less precise surrogate, IF over LIF neurons, a longer time window -- but
measure only accuracy.  Here every variant is trained with the *same* DP-SGD
setting (sigma, q, steps; hence the same accounted epsilon) and attacked:

* ``loss_auc`` -- the loss-threshold membership attack (training vs test examples);
* ``input_eps_lb`` -- the one-run epsilon lower bound from mislabelled input
  canaries (black box: it sees the model, so it can differ between variants);
* ``inversion_psnr`` / ``inversion_ssim`` -- gradient inversion of test examples
  from one example's raw gradient and from its DP-SGD contribution (clipped plus
  noise at the run's sigma), at the trained weights.

White-box Dirac canaries audit the mechanism, which is the same for every
variant at equal (sigma, q, steps); their bound is reported once.  Lower attack
figures mean better privacy.  A difference counts as a finding only when it
exceeds twice its standard error (AUC: Hanley & McNeil 1982).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from npdpsnn.audit.canary_run import canary_audit
from npdpsnn.audit.gradient_inversion import inversion_attack
from npdpsnn.audit.membership import loss_audit
from npdpsnn.data import Dataset
from npdpsnn.errors import UserError
from npdpsnn.training.config import TrainConfig
from npdpsnn.training.trainer import fit

log = logging.getLogger(__name__)

#: The four claims: which variants each compares (the first is the paper's "more private" one).
CLAIMS: dict[str, tuple[str, ...]] = {
    "SNN vs ANN": ("snn", "ann"),
    "surrogate (less precise = more private)": ("gate", "normal", "darctanh"),
    "IF vs LIF": ("if", "lif"),
    "time window (longer = more private)": ("T15", "T10", "T5"),
}

#: Each variant as changes to the base configuration (SNN, IF, gate, T = 5).
VARIANTS: dict[str, dict] = {
    "snn": {}, "ann": {"model.kind": "ann"},
    "gate": {}, "darctanh": {"model.surrogate": "darctanh"}, "normal": {"model.surrogate": "normal"},
    "if": {}, "lif": {"model.neuron": "lif"},
    "T5": {}, "T10": {"model.T": 10}, "T15": {"model.T": 15},
}


@dataclass(frozen=True)
class Scale:
    """How much to train and attack: examples, epochs, input canaries, inverted examples, iterations."""

    limit_train: int
    epochs: int
    canaries: int
    inversions: int
    iterations: int


SCALES: dict[str, Scale] = {
    "tiny": Scale(300, 1, 32, 1, 10),
    "small": Scale(4000, 4, 256, 2, 150),
    "full": Scale(60000, 60, 1000, 8, 300),
}


def _auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    return math.sqrt(max(auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc), 0.0)
                     / (n_pos * n_neg))


def measure_variant(config: TrainConfig, data: Dataset, scale: Scale, seed: int = 0,
                    backend: str = "numba") -> dict:
    """Train one variant and attack it; a JSON-ready dict of the figures."""
    t0 = time.perf_counter()
    result = fit(config, data, backend=backend)
    mia = loss_audit(result.network, data, config, result.trainer.accountant, n=min(2000, scale.limit_train),
                     seed=seed, backend=backend)
    canary = canary_audit(config, data, m=scale.canaries, kind="input", seed=seed, backend=backend)
    raw = data.test_x.raw[: scale.inversions].astype(np.float64) / 255.0
    inv = {"raw": [], "noisy": []}
    for i in range(scale.inversions):
        for r in inversion_attack(result.network, raw[i], int(data.test_y[i]), data.normalization,
                                  clip=config.dp.clip, sigmas=(config.dp.sigma,), variants=("raw", "noisy"),
                                  seed=seed + i, backend=backend, iterations=scale.iterations, restarts=1):
            inv[r.variant].append((r.psnr, r.ssim))
    row = {
        "test_accuracy": result.metrics[-1]["test_accuracy"],
        "epsilon": {k: v for k, v in result.metrics[-1].items() if k.endswith("epsilon") or k == "clt_mu"},
        "loss_auc": mia.loss.auc, "loss_auc_se": _auc_se(mia.loss.auc, mia.n_members, mia.n_nonmembers),
        "loss_tpr_at_fpr": {str(k): v for k, v in mia.loss.tpr_at_fpr.items()},
        "auc_ceiling_certified": mia.ceilings.auc_certified, "auc_ceiling_clt": mia.ceilings.auc_clt,
        "input_eps_lb": canary.one_run.epsilon, "input_eps_lb_fdp": canary.fdp.epsilon,
        "seconds": time.perf_counter() - t0,
    }
    for variant, vals in inv.items():
        psnrs = [p for p, _ in vals]
        row[f"inversion_psnr_{variant}"] = float(np.mean(psnrs)) if vals else None
        row[f"inversion_psnr_{variant}_se"] = float(np.std(psnrs, ddof=1) / np.sqrt(len(psnrs))) \
            if len(psnrs) > 1 else None
        ssims = [s for _, s in vals if s is not None]
        row[f"inversion_ssim_{variant}"] = float(np.mean(ssims)) if ssims else None
    return row


def claims_study(data: Dataset, scale: str = "small", sigma: float = 1.0, seed: int = 0,
                 backend: str = "numba", base: dict | None = None) -> dict:
    """Measure every variant of :data:`VARIANTS` (identical configurations once)
    and summarise each claim of :data:`CLAIMS`."""
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose {', '.join(SCALES)}")
    sc = SCALES[scale]
    values = {"net": "net2", "dp.sigma": sigma, "optim.epochs": sc.epochs, "optim.batch_size": 250,
              "dp.clip": 1.5, "run.limit_train": min(sc.limit_train, len(data.train_y)), "run.seed": seed,
              **(base or {})}
    base_cfg = TrainConfig.from_values(data.name, values)
    rows: dict[str, dict] = {}
    by_config: dict[str, dict] = {}
    for name, changes in VARIANTS.items():
        cfg = base_cfg.with_values(changes)
        key = repr(cfg)
        if key not in by_config:
            log.info("claims: training and attacking %s", name)
            by_config[key] = measure_variant(cfg, data, sc, seed=seed, backend=backend)
        rows[name] = by_config[key]
    white = canary_audit(base_cfg, data, m=sc.canaries * 4, kind="dirac", seed=seed, backend=backend)
    return {"scale": scale, "scale_settings": sc.__dict__, "base": base_cfg.to_dict(), "variants": rows,
            "white_box": white.to_dict(), "claims": {c: _verdict(c, names, rows) for c, names in CLAIMS.items()}}


def _verdict(claim: str, names: tuple[str, ...], rows: dict) -> dict:
    """Per metric: the variant with the lowest attack figure, and the verdict:
    ``held`` (the claimed variant lowest by more than the margin against every
    other), ``contradicted`` (another variant lower by more than the margin),
    or ``within noise``; the margin is two standard errors (zero for the canary
    lower bounds; a metric without an error estimate -- one inverted example --
    is inconclusive unless all values are equal)."""
    out = {}
    for metric in ("loss_auc", "input_eps_lb", "inversion_psnr_raw", "inversion_psnr_noisy"):
        vals = {n: rows[n][metric] for n in names if rows[n].get(metric) is not None}
        if len(vals) < 2:
            continue
        claimed, others = names[0], [n for n in names[1:] if n in vals]
        lowest = min(vals, key=vals.get)
        errors = [rows[n].get(f"{metric}_se") for n in vals]
        if metric == "input_eps_lb":  # a lower bound: only a difference of bounds is a finding
            margin = 0.0
        elif None in errors:
            margin = None
        else:
            margin = 2 * max(errors)
        if len(set(vals.values())) == 1:
            verdict = "no difference"
        elif margin is None:
            verdict = "inconclusive (no error estimate)"
        elif all(vals[claimed] < vals[o] - margin for o in others):
            verdict = "held"
        elif any(vals[o] < vals[claimed] - margin for o in others):
            verdict = "contradicted"
        else:
            verdict = "within noise"
        out[metric] = {"values": vals, "lowest": lowest, "margin": margin, "verdict": verdict}
    return out


def claims_markdown(report: dict) -> str:
    """The report as Markdown: one table of the variants, one line per claim and metric."""
    rows = report["variants"]
    cols = ["test_accuracy", "loss_auc", "input_eps_lb", "inversion_psnr_raw", "inversion_ssim_raw",
            "inversion_psnr_noisy"]
    lines = ["| variant | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join("-" if r.get(c) is None else f"{r[c]:.3f}" for c in cols) + " |")
    wb = report["white_box"]
    lines += ["", f"White-box Dirac canaries (the mechanism, the same for every variant): one-run epsilon lower "
                  f"bound {wb['one_run']['epsilon']:.3f}, f-DP {wb['fdp']['epsilon']:.3f}, accounted "
                  f"{ {k: round(v, 3) for k, v in wb['accounted'].items() if v is not None} }.", ""]
    for claim, metrics in report["claims"].items():
        for metric, v in metrics.items():
            lines.append(f"* {claim}, {metric}: {v['verdict']} (lowest: {v['lowest']}; "
                         + ", ".join(f"{k} {x:.3f}" for k, x in v["values"].items()) + ")")
    return "\n".join(lines) + "\n"
