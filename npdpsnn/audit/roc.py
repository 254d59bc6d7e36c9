r"""ROC curve, AUC, balanced accuracy and TPR at a fixed FPR of an attack's scores.

Convention: a higher score means "member"; the attack with threshold ``t``
predicts member iff ``score >= t``.  The ROC has one vertex per distinct score
(from the highest down) plus (0, 0); tied scores move together, so a tie between
a member and a non-member is a diagonal segment and the AUC counts it as half:

.. math::

    \mathrm{AUC} = \Pr[s_{in} > s_{out}] + \tfrac12 \Pr[s_{in} = s_{out}]

(Mann-Whitney; computed exactly from integer counts by the trapezoid rule).

* Balanced accuracy: :math:`\max_t (\mathrm{TPR}_t + 1 - \mathrm{FPR}_t)/2` over the vertices.
* TPR at FPR ``f``: the largest TPR of a vertex with FPR <= ``f`` -- a real
  threshold that meets the FPR budget on these data, with no interpolation or
  randomisation between thresholds (so it can be 0 when fewer than ``1/f``
  non-members were scored: only the FPR = 0 vertices then qualify).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from npdpsnn.audit._checks import bool_array, float_array, same_shape
from npdpsnn.errors import UserError

__all__ = ["AttackMetrics", "RocCurve", "attack_metrics", "roc_auc", "roc_curve"]

DEFAULT_FPRS = (1e-3, 1e-2)


@dataclass(frozen=True)
class RocCurve:
    """ROC vertices from the strictest threshold down: ``fpr``, ``tpr`` start at 0 and end
    at 1; ``thresholds[j]`` is the ``t`` of "score >= t" (``+inf`` for the first)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class AttackMetrics:
    """Summary of a membership attack's scores (see the module docstring for each figure)."""

    auc: float
    balanced_accuracy: float
    tpr_at_fpr: dict[float, float]
    n_members: int
    n_nonmembers: int


def roc_curve(scores, is_member) -> RocCurve:
    """ROC of "member iff score >= t" at every distinct score (ties exact)."""
    s, lab = _check(scores, is_member)
    tp, fp = _roc_counts(s, lab)
    thresholds = np.concatenate(([np.inf], np.unique(s)[::-1]))
    return RocCurve(fpr=fp / fp[-1], tpr=tp / tp[-1], thresholds=thresholds)


def roc_auc(scores, is_member) -> float:
    """Area under the ROC: P[member score > non-member score] + P[tie] / 2."""
    s, lab = _check(scores, is_member)
    return _auc(*_roc_counts(s, lab))


def attack_metrics(scores, is_member, fprs: Sequence[float] = DEFAULT_FPRS) -> AttackMetrics:
    """AUC, balanced accuracy and TPR at each FPR in ``fprs`` (default 1e-3 and 1e-2)."""
    s, lab = _check(scores, is_member)
    targets = [float(f) for f in fprs]
    if any(not (0.0 <= f <= 1.0) for f in targets):
        raise UserError(f"fprs must be in [0, 1], got {list(fprs)}")
    tp, fp = _roc_counts(s, lab)
    tpr, fpr = tp / tp[-1], fp / fp[-1]
    at = {f: float(tpr[fpr <= f].max()) for f in targets}
    bal = float(np.max((tpr + 1.0 - fpr) / 2.0))
    return AttackMetrics(auc=_auc(tp, fp), balanced_accuracy=bal, tpr_at_fpr=at,
                         n_members=int(tp[-1]), n_nonmembers=int(fp[-1]))


# --------------------------------------------------------------------------


def _check(scores, is_member) -> tuple[np.ndarray, np.ndarray]:
    s = float_array(scores, "scores", ndim=1, allow_inf=True)
    lab = bool_array(is_member, "is_member", ndim=1)
    same_shape(s, lab, "scores", "is_member")
    if lab.all() or not lab.any():
        raise UserError("need both members and non-members to score an attack")
    return s, lab


def _roc_counts(s: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (true, false) positives at each distinct score from the highest
    down, with (0, 0) first; int64."""
    order = np.argsort(-s, kind="stable")
    s_sorted, lab_sorted = s[order], lab[order]
    tp = np.cumsum(lab_sorted, dtype=np.int64)
    fp = np.cumsum(~lab_sorted, dtype=np.int64)
    last_of_group = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    zero = np.zeros(1, np.int64)
    return np.concatenate((zero, tp[last_of_group])), np.concatenate((zero, fp[last_of_group]))


def _auc(tp: np.ndarray, fp: np.ndarray) -> float:
    twice_area = int(np.sum(np.diff(fp) * (tp[1:] + tp[:-1])))
    return twice_area / (2.0 * int(tp[-1]) * int(fp[-1]))
