"""One-run audit of a NeuralDP run with input canaries (Steinke, Nasr & Jagielski 2023).

``m`` canary *slots* are added to ``n`` training examples.  Canary ``i`` is a
real image (from the training split beyond the ``n`` used, so it is in no
other slot) with a wrong label :math:`\\ell_i`.  A fair coin :math:`S_i` decides
what the slot holds:

* :math:`S_i = +1`: the canary image with label :math:`\\ell_i` ("included");
* :math:`S_i = -1`: a blank image (all pixels 0) with the *same* label.

The data set always has ``n + m`` examples and the two contents of a slot
differ in one image only, so flipping one coin gives replace-one neighbours --
the adjacency of the NeuralDP guarantee, with either labels mode (the label is
the same in both worlds).  The one-run theorem needs exactly this: the
mechanism is (epsilon, delta)-DP with respect to changing one :math:`S_i`.
After training, each canary is scored by minus the loss of the released model
on (canary image, :math:`\\ell_i`), noise-free; the auditor guesses "included"
for the highest scores, and :func:`npdpsnn.audit.audit_canaries_best_k` turns
the guesses into an epsilon lower bound (a union bound over its fixed grid of
``k``).  A sound mechanism and accounting never give a bound above the
accounted epsilon (beyond the audit's 5 % error probability).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from npdpsnn.audit import CanaryAudit, audit_canaries_best_k
from npdpsnn.data import Dataset, normalize
from npdpsnn.errors import UserError
from npdpsnn.neuraldp.config import NeuralDPConfig
from npdpsnn.neuraldp.features import FeatureCache
from npdpsnn.neuraldp.fit import NeuralDPResult, fit_neuraldp

__all__ = ["CanaryRun", "InputCanaries", "audit_neuraldp", "input_canaries"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputCanaries:
    """``images`` ``(m, C, H, W)`` float32 with wrong ``labels``, the coins
    ``included``, and ``data``: the training set with the ``m`` slots appended."""

    images: np.ndarray
    labels: np.ndarray
    included: np.ndarray
    data: Dataset


@dataclass(frozen=True)
class CanaryRun:
    """The audited run, its canaries, their scores and the audit."""

    result: NeuralDPResult
    canaries: InputCanaries
    scores: np.ndarray
    audit: CanaryAudit


def input_canaries(data: Dataset, n_train: int, m: int, seed: int) -> InputCanaries:
    """``n_train`` training examples plus ``m`` canary slots (module docstring);
    coins and wrong labels drawn from ``seed``."""
    if n_train < 1 or m < 1 or n_train + m > len(data.train_y):
        raise UserError(f"need 1 <= n_train, 1 <= m and n_train + m <= {len(data.train_y)}, got {n_train}, {m}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA]))
    images = np.asarray(data.train_x[n_train : n_train + m], np.float32)
    true = np.asarray(data.train_y[n_train : n_train + m])
    labels = (true + rng.integers(1, data.num_classes, size=m)) % data.num_classes
    included = rng.random(m) < 0.5
    blank = normalize(np.zeros((1, *data.input_shape), np.uint8), data.normalization)
    slots = np.where(included[:, None, None, None], images, blank)
    train_x = np.concatenate([np.asarray(data.train_x[:n_train], np.float32), slots])
    train_y = np.concatenate([np.asarray(data.train_y[:n_train]), labels])
    return InputCanaries(images, labels, included, replace(data, train_x=train_x, train_y=train_y))


def audit_neuraldp(config: NeuralDPConfig, data: Dataset, *, n_train: int, m: int, seed: int = 0,
                   alpha: float = 0.05, test_limit: int | None = 2000,
                   feature_cache: FeatureCache | None = None) -> CanaryRun:
    """Train NeuralDP (``config``; its ``run.limit_train`` is replaced) on
    ``n_train`` examples plus ``m`` canary slots and audit it."""
    canaries = input_canaries(data, n_train, m, seed)
    cfg = config.with_values({"run.limit_train": None})
    result = fit_neuraldp(cfg, canaries.data, test_limit=test_limit, feature_cache=feature_cache)
    losses = result.model.evaluate(canaries.images, canaries.labels).losses
    scores = -losses
    audit = audit_canaries_best_k(scores, canaries.included, alpha=alpha, delta=config.neuraldp.delta)
    log.info("canary audit: eps_lb %.4g (accounted rdp %.4g), %d of %d guesses right", audit.epsilon,
             result.report.epsilon("rdp"), audit.n_correct, audit.n_guesses)
    return CanaryRun(result, canaries, scores, audit)
