r"""Membership-inference attacks: the loss threshold and LiRA.

Loss-threshold attack (Yeom et al. 2018): score = -loss, so examples the model
fits well are called members; its figures come from :func:`.roc.attack_metrics`.

LiRA, the likelihood-ratio attack of N. Carlini, S. Chien, M. Nasr, S. Song,
A. Terzis, F. Tramèr, "Membership Inference Attacks From First Principles",
IEEE S&P 2022 (arXiv:2112.03199); the reference code is tensorflow/privacy
``research/mi_lira_2021``.

* Statistic: the logit-scaled confidence in the true label, in float64,

  .. math::

      \phi = \log p_y - \log \sum_{y' \ne y} p_{y'} = z_y - \log \sum_{y' \ne y} e^{z_{y'}}

  (the softmax normaliser cancels), with the log-sum-exp taken after
  subtracting the largest of the other logits.
* Shadow models: ``n_models`` models trained on random halves; ``in_mask[s, j]``
  says whether example ``j`` was in shadow ``s``'s training set.  Per example the
  IN and OUT statistics are summarised by their median (as the reference code)
  and a spread: per example (``fixed_variance=False``, needs >= 2 IN and 2 OUT
  shadows) or one global value per side (``fixed_variance=True``, the paper's
  choice for few shadows), the pooled within-example standard deviation
  :math:`\sqrt{\sum_j \sum_s (\phi_{sj} - \bar\phi_j)^2 / \sum_j (n_j - 1)}`.
* Online score: the Gaussian log-likelihood ratio
  :math:`\log N(\phi; \mu_{in}, \sigma_{in}^2) - \log N(\phi; \mu_{out}, \sigma_{out}^2)`.
* Offline score (OUT shadows only, one-sided): :math:`\log \Phi((\phi - \mu_{out}) / \sigma_{out})`,
  the log-probability that an OUT model would have scored the example lower.

Higher scores mean "member".  An example with no IN (online) or no OUT shadow
gets a NaN score; :func:`lira_attack` leaves such examples out, with a warning.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special

from npdpsnn.audit._checks import bool_array, check_int, float_array
from npdpsnn.audit.roc import DEFAULT_FPRS, AttackMetrics, attack_metrics
from npdpsnn.errors import UserError

__all__ = ["LiraResult", "LiraShadowStats", "lira_attack", "lira_scores", "lira_statistic", "loss_attack",
           "shadow_stats"]

log = logging.getLogger(__name__)

# Floor on a standard deviation: identical shadow statistics must not divide by 0.
_MIN_STD = 1e-12
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


@dataclass(frozen=True)
class LiraShadowStats:
    """Per-example centre (median) and spread of the IN and OUT shadow statistics
    ``(n_examples,)``; NaN where an example has too few shadows on that side."""

    mean_in: np.ndarray
    std_in: np.ndarray
    mean_out: np.ndarray
    std_out: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray


@dataclass(frozen=True)
class LiraResult:
    """LiRA scores of the target model's examples (NaN where unscorable) and the
    attack figures on the scored ones."""

    scores: np.ndarray
    metrics: AttackMetrics
    online: bool
    fixed_variance: bool
    n_shadows: int
    n_unscored: int


def loss_attack(losses, is_member, fprs=DEFAULT_FPRS) -> AttackMetrics:
    """The loss-threshold attack: score = -loss; AUC, balanced accuracy, TPR at ``fprs``."""
    loss = float_array(losses, "losses", ndim=1)
    return attack_metrics(-loss, is_member, fprs)


def lira_statistic(logits, labels) -> np.ndarray:
    r""":math:`\phi = z_y - \log\sum_{y' \ne y} e^{z_{y'}}` in float64 for logits ``(..., n_examples, classes)``
    and labels ``(n_examples,)``; returns ``(..., n_examples)``."""
    z = float_array(logits, "logits")
    if z.ndim < 2:
        raise UserError(f"logits must have shape (..., n_examples, classes), got {z.shape}")
    n, c = z.shape[-2:]
    if c < 2:
        raise UserError("logits need at least 2 classes")
    y = _labels(labels, n, c)
    return _phi(z, y)


def shadow_stats(shadow_phi, in_mask, fixed_variance: bool = True) -> LiraShadowStats:
    """Centres and spreads of the IN/OUT shadow statistics ``(n_models, n_examples)``."""
    phi = float_array(shadow_phi, "shadow_phi", ndim=2)
    mask = bool_array(in_mask, "in_mask", ndim=2)
    if phi.shape != mask.shape:
        raise UserError(f"shadow_phi has shape {phi.shape} but in_mask has shape {mask.shape}")
    return _shadow_stats(phi, mask, bool(fixed_variance))


def lira_scores(target_phi, shadow: LiraShadowStats, online: bool = True) -> np.ndarray:
    """LiRA scores of the target model's statistics ``(n_examples,)`` against shadow
    statistics (online: likelihood ratio; offline: one-sided OUT test)."""
    phi = float_array(target_phi, "target_phi", ndim=1)
    if phi.shape != shadow.mean_out.shape:
        raise UserError(f"target_phi has {phi.size} examples, the shadow statistics {shadow.mean_out.size}")
    return _online(phi, shadow) if online else _offline(phi, shadow)


def lira_attack(logits, labels, in_mask, target: int = 0, *, online: bool = True, fixed_variance: bool = True,
                fprs=DEFAULT_FPRS) -> LiraResult:
    """LiRA against model ``target`` of ``logits`` ``(n_models, n_examples, classes)``, the
    other models serving as shadows; ``in_mask`` ``(n_models, n_examples)`` says who
    trained on what (its row ``target`` is the ground truth to score against)."""
    z = float_array(logits, "logits", ndim=3)
    mask = bool_array(in_mask, "in_mask", ndim=2)
    if mask.shape != z.shape[:2]:
        raise UserError(f"in_mask has shape {mask.shape}, expected (n_models, n_examples) = {z.shape[:2]}")
    n_models, n, c = z.shape
    if n_models < 2:
        raise UserError("LiRA needs the target model and at least one shadow model")
    if c < 2:
        raise UserError("logits need at least 2 classes")
    t = check_int(target, "target")
    if t >= n_models:
        raise UserError(f"target must be < {n_models} (the number of models), got {t}")
    phi = _phi(z, _labels(labels, n, c))
    others = np.arange(n_models) != t
    stats_ = _shadow_stats(phi[others], mask[others], bool(fixed_variance))
    scores = _online(phi[t], stats_) if online else _offline(phi[t], stats_)
    ok = ~np.isnan(scores)
    n_bad = int((~ok).sum())
    if n_bad:
        log.warning("LiRA: %d of %d examples lack %s shadow models and are left out", n_bad, n,
                    "IN or OUT" if online else "OUT")
    metrics = attack_metrics(scores[ok], mask[t][ok], fprs)
    return LiraResult(scores=scores, metrics=metrics, online=bool(online), fixed_variance=bool(fixed_variance),
                      n_shadows=n_models - 1, n_unscored=n_bad)


# --------------------------------------------------------------------------


def _labels(labels, n: int, c: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"labels must be {n} integers, got shape {y.shape} and dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= c):
        raise UserError(f"labels must be in [0, {c}), got values from {y.min()} to {y.max()}")
    return y.astype(np.int64)


def _phi(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    idx = np.broadcast_to(y[:, None], z.shape[:-1] + (1,))
    z_true = np.take_along_axis(z, idx, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, idx, -np.inf, axis=-1)
    top = others.max(axis=-1, keepdims=True)
    lse = top[..., 0] + np.log(np.sum(np.exp(others - top), axis=-1))
    return z_true - lse


def _shadow_stats(phi: np.ndarray, mask: np.ndarray, fixed: bool) -> LiraShadowStats:
    centre_in, spread_in, n_in = _side(phi, mask, fixed)
    centre_out, spread_out, n_out = _side(phi, ~mask, fixed)
    return LiraShadowStats(centre_in, spread_in, centre_out, spread_out, n_in, n_out)


def _side(phi: np.ndarray, sel: np.ndarray, fixed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, standard deviation and count of ``phi`` where ``sel``, per column."""
    vals = np.where(sel, phi, np.nan)
    count = sel.sum(axis=0)
    with warnings.catch_warnings():  # all-NaN columns: NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(vals, axis=0)
        mean = np.nanmean(vals, axis=0)
        sq = np.nansum((vals - mean) ** 2, axis=0)
    if fixed:
        dof = int(np.sum(np.maximum(count - 1, 0)))
        if dof == 0:
            raise UserError("a fixed variance needs some example with at least 2 shadow models on each side")
        spread = np.full(phi.shape[1], np.sqrt(np.sum(sq[count > 1]) / dof))
        spread[count == 0] = np.nan
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.where(count > 1, np.sqrt(sq / np.maximum(count - 1, 1)), np.nan)
    return centre, np.maximum(spread, _MIN_STD), count


def _online(phi: np.ndarray, s: LiraShadowStats) -> np.ndarray:
    return _log_normal_pdf(phi, s.mean_in, s.std_in) - _log_normal_pdf(phi, s.mean_out, s.std_out)


def _offline(phi: np.ndarray, s: LiraShadowStats) -> np.ndarray:
    return special.log_ndtr((phi - s.mean_out) / s.std_out)


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - _LOG_SQRT_2PI

