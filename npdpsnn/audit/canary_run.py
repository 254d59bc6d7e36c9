"""One-run canary audits of a training configuration (Steinke, Nasr & Jagielski 2023).

Two kinds of canaries, each included in the training set with probability 1/2:

* ``dirac`` (white box): gradient canaries ``C e_k`` on audit-only coordinates
  (:mod:`npdpsnn.privacy.canaries`); they go through the real clip -> noise ->
  scale pipeline and are scored from the released noisy coordinates summed over
  steps.  This audits the *mechanism* (sampling, clipping, noise, scaling) and
  needs no trust in the model.
* ``input`` (black box): real images with a wrong label drawn at random (from
  training images the run does not use, else from the test set), added as
  training records; scored by minus the trained model's loss on them.

The guesses are the top-``k`` scores over the Bonferroni grid of
:func:`~npdpsnn.audit.canary_audit.audit_canaries_best_k`; the result carries
the one-run bound, its f-DP refinement (valid for mechanisms with a Gaussian
trade-off curve, like DP-SGD) and the accountants' epsilon of the same run.  A
lower bound above the accounted epsilon means the implementation does not do
what the accountant assumes -- a bug, never a number to report.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import numpy as np

from npdpsnn.audit.canary_audit import CanaryAudit, audit_canaries_best_k
from npdpsnn.data import Dataset
from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import ANALYSES
from npdpsnn.privacy.canaries import DiracCanaries, draw_inclusion
from npdpsnn.training.config import TrainConfig
from npdpsnn.training.trainer import evaluate_model, fit

log = logging.getLogger(__name__)

CANARY_KINDS: tuple[str, ...] = ("dirac", "input")


@dataclass(frozen=True)
class CanaryAuditResult:
    """Lower bounds of one audited run beside its accounted epsilons."""

    kind: str
    m: int
    n_included: int
    delta: float
    alpha: float
    one_run: CanaryAudit
    fdp: CanaryAudit
    accounted: dict
    sigma: float
    sample_rate: float
    steps: int

    @property
    def exceeds_accounted(self) -> bool:
        """True when a lower bound exceeds the smallest accounted upper bound (a bug)."""
        bounds = [self.accounted[a.epsilon_column] for a in ANALYSES.values()
                  if a.is_bound and self.accounted.get(a.epsilon_column) is not None]
        return bool(bounds) and max(self.one_run.epsilon, self.fdp.epsilon) > min(bounds)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exceeds_accounted"] = self.exceeds_accounted
        return d


def canary_audit(config: TrainConfig, data: Dataset, m: int = 1000, kind: str = "dirac", seed: int = 0,
                 alpha: float = 0.05, backend: str = "numba") -> CanaryAuditResult:
    """Train once with ``m`` canaries of ``kind`` and return the one-run lower bounds."""
    if kind not in CANARY_KINDS:
        raise UserError(f"unknown canary kind {kind!r}; choose {' or '.join(CANARY_KINDS)}")
    if not config.dp.enabled:
        raise UserError("a canary audit needs a DP training configuration")
    if m < 2:
        raise UserError(f"an audit needs at least 2 canaries, got {m}")
    included = draw_inclusion(m, np.random.default_rng(np.random.SeedSequence([seed, 0xCA])))
    if kind == "dirac":
        canaries = DiracCanaries(included)
        result = fit(config, data, backend=backend, canaries=canaries, evaluate_test=False)
        scores = canaries.scores()
    else:
        audited, cx, cy = _with_input_canaries(config, data, included, seed)
        result = fit(replace(config, run=replace(config.run, limit_train=None)), audited, backend=backend,
                     evaluate_test=False)
        scores = -evaluate_model(result.network, cx, cy, backend=backend).losses
    trainer = result.trainer
    delta = config.dp.delta
    accounted = trainer.accountant.all_epsilons(delta)
    one = audit_canaries_best_k(scores, included, alpha=alpha, delta=delta, method="one-run")
    fdp = audit_canaries_best_k(scores, included, alpha=alpha, delta=delta, method="fdp")
    out = CanaryAuditResult(kind, m, int(included.sum()), delta, alpha, one, fdp, accounted, config.dp.sigma,
                            trainer.sample_rate, trainer.step)
    if out.exceeds_accounted:
        log.error("the audit's lower bound (%.3g one-run, %.3g f-DP) exceeds the accounted epsilon %s: the "
                  "implementation does not match its analysis", one.epsilon, fdp.epsilon, accounted)
    return out


def _with_input_canaries(config: TrainConfig, data: Dataset, included: np.ndarray, seed: int):
    """``(dataset with the included canaries appended, canary images, canary labels)``."""
    raw = getattr(data.train_x, "raw", None)
    if raw is None:
        raise UserError("input canaries need a dataset with uint8 storage (load_dataset)")
    n_used = config.run.limit_train or len(raw)
    m = included.size
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCB]))
    if len(raw) - n_used >= m:  # training images the run never uses
        pool_raw, pool_y = raw[n_used:], data.train_y[n_used:]
    elif len(data.test_x.raw) >= m:
        pool_raw, pool_y = data.test_x.raw, data.test_y
    else:
        raise UserError(f"not enough unused images for {m} input canaries")
    pick = rng.choice(len(pool_raw), size=m, replace=False)
    images = pool_raw[pick]
    labels = (pool_y[pick] + rng.integers(1, data.num_classes, size=m)) % data.num_classes  # always wrong
    norm = data.normalization
    cls = type(data.train_x)
    train_raw = np.concatenate([raw[:n_used], images[included]])
    train_y = np.concatenate([data.train_y[:n_used], labels[included]])
    audited = replace(data, train_x=cls(train_raw, norm), train_y=train_y)
    return audited, cls(images, norm), labels
