"""NeuralDP training: :func:`fit_neuraldp`.

1. Resolve the network, cut it after the privatised layer ``K`` (:mod:`.features`)
   and check the lower layers' provenance (:mod:`.guard`).
2. Calibrate the noise for ``neuraldp.target_epsilon`` if asked (with private
   labels the head's DP-SGD noise first, to ``label_budget`` of the target),
   :mod:`.accounting`.
3. Compute the layer-``K`` features of the training set with the frozen
   encoder, release the DP centre and the noisy rows once (:mod:`.release`),
   standardise them (post-processing).
4. Train the head (the layers above ``K``) on the released rows with the
   ordinary trainer (:func:`npdpsnn.training.trainer.fit`): plain SGD with
   public labels, DP-SGD with private ones.
5. Check that the encoder did not change, compose the ledger, report every
   analysis and write the statement (:mod:`.statement`).

Like :func:`~npdpsnn.training.trainer.fit` it writes no file; the CLI
(``npdpsnn train-neuraldp``) keeps a run folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from npdpsnn.data import Dataset
from npdpsnn.engine import Engine
from npdpsnn.errors import UserError
from npdpsnn.kernels.protocol import Backend
from npdpsnn.network import Network
from npdpsnn.neuraldp.accounting import (
    PrivacyReport, calibrate_head_sigma, calibrate_release_sigma, head_event, neuraldp_event, neuraldp_ledger,
    privacy_report,
)
from npdpsnn.neuraldp.config import NeuralDPConfig
from npdpsnn.neuraldp.features import FeatureCache, lower_digest, split_at
from npdpsnn.neuraldp.guard import LowerLayers, check_lower_layers, check_unchanged
from npdpsnn.neuraldp.model import NeuralDPModel
from npdpsnn.neuraldp.release import noisy_mean, release_rows
from npdpsnn.neuraldp.statement import Statement, neuraldp_statement
from npdpsnn.privacy.accountants import PrivacyAccountant
from npdpsnn.privacy.events import DpEvent
from npdpsnn.training.callbacks import Callback
from npdpsnn.training.config import ConfigError
from npdpsnn.training.records import versions
from npdpsnn.training.trainer import FitResult, fit, resolve_spec_for

__all__ = ["NeuralDPResult", "fit_neuraldp"]

log = logging.getLogger(__name__)


@dataclass
class NeuralDPResult:
    """What :func:`fit_neuraldp` returns: the ``config`` with the noise filled
    in, the released ``model``, the ``ledger`` (replace-one events) and its
    ``report``, the ``statement``, the metrics rows, the ``summary`` and the
    head's :class:`~npdpsnn.training.trainer.FitResult`."""

    config: NeuralDPConfig
    model: NeuralDPModel
    ledger: PrivacyAccountant
    report: PrivacyReport
    statement: Statement
    metrics: list[dict]
    summary: dict
    head_fit: FitResult


class _LedgerColumns(Callback):
    """Puts the NeuralDP ledger's epsilons (not the head's alone) into every metrics row."""

    def __init__(self, event_of_head, delta: float):
        self.event_of_head, self.delta = event_of_head, delta

    def on_epoch_end(self, trainer, row: dict) -> None:
        row.update(privacy_report(self.event_of_head(trainer), self.delta).values)


def fit_neuraldp(config: NeuralDPConfig, data: Dataset, *, encoder: Network | None = None,
                 lower_ledger: DpEvent | None = None, backend: str | Backend = "numba",
                 callbacks: Sequence[Callback] = (), evaluate_test: bool = True, test_limit: int | None = None,
                 feature_cache: FeatureCache | None = None, engine: Engine | None = None) -> NeuralDPResult:
    """Train a NeuralDP model on ``data`` (see the module docstring).

    ``encoder``: a network with the full spec whose layers ``0..K`` are used
    (default: the initialisation of ``run.seed``); its provenance is
    ``neuraldp.lower`` (and ``lower_ledger``, the DP-SGD ledger event of its
    training, for ``"dp-sgd"``).  ``test_limit`` evaluates on the first test
    examples only.  ``callbacks`` see the head's trainer.  ``feature_cache``
    keeps the layer-``K`` features for later runs with the same encoder and data.
    """
    s, base = config.neuraldp, config.base
    t0 = time.perf_counter()
    spec = resolve_spec_for(base, data.num_classes)
    train_x, train_y = _limit(data.train_x, base.run.limit_train), _limit(data.train_y, base.run.limit_train)
    test_x, test_y = _limit(data.test_x, test_limit), _limit(data.test_y, test_limit)
    n = len(train_y)
    if lower_ledger is not None and s.lower != "dp-sgd":
        raise UserError("lower_ledger is the DP-SGD ledger of the lower layers: give it with neuraldp.lower 'dp-sgd'")
    if encoder is None:
        encoder = Network(spec, data.input_shape, base.model, seed=base.run.seed)
    elif tuple(encoder.input_shape) != tuple(data.input_shape) or encoder.config != base.model:
        raise UserError("the encoder's input shape or model options differ from the run's")
    split = split_at(encoder.layers, s.layer, s.head)
    check_lower_layers(LowerLayers(s.lower, False, s.public_source, lower_ledger), split, encoder,
                       dataset=data.name, seed=base.run.seed)
    digest = lower_digest(encoder, split)

    n_head = n - base.run.validation
    if base.optim.batch_size > n_head:
        raise ConfigError("optim.batch_size", f"{base.optim.batch_size} is larger than the head's {n_head} rows")
    head_sigma = s.head_sigma
    if s.labels == "private" and head_sigma is None:
        head_sigma = calibrate_head_sigma(s.label_budget * s.target_epsilon, s.delta, n_head,
                                          base.optim.batch_size, base.optim.epochs, s.accountant)
    planned_head = (head_event(head_sigma, n_head, base.optim.batch_size, base.optim.epochs)
                    if s.labels == "private" else None)
    center_factor = s.center_noise_factor if s.center else None
    sigma = s.sigma if s.sigma is not None else calibrate_release_sigma(
        s.target_epsilon, s.delta, s.accountant, center_noise_factor=center_factor, head=planned_head,
        lower=lower_ledger)
    log.info("NeuralDP: layer %d (%s, %d values), sigma %.4g, head sigma %s", split.index + 1, split.layer.token,
             split.feature_size, sigma, head_sigma)

    rng = np.random.Generator(np.random.PCG64(
        np.random.SeedSequence() if s.noise_seed == "os" else np.random.SeedSequence([base.run.seed, 3])))
    cache = feature_cache if feature_cache is not None else FeatureCache()
    h = cache.features(encoder, train_x, split).reshape(n, -1)
    centre = (noisy_mean(h, s.center_clip, s.center_noise_factor * sigma, rng) if s.center
              else np.zeros(split.feature_size))
    z = release_rows(h - centre, s.clip, sigma, rng, s.bound)
    del h  # only the released rows are used from here on
    std = z.std(axis=0)
    model = NeuralDPModel(encoder, split, s.clip, s.bound, centre, z.mean(axis=0), np.where(std > 0, std, 1.0),
                          head=None)  # the head is set after training
    features = Dataset(name=data.name, train_x=model.head_inputs_from_rows(z), train_y=np.asarray(train_y),
                       test_x=model.head_inputs(test_x, cache), test_y=np.asarray(test_y), num_classes=data.num_classes,
                       input_shape=split.feature_shape, normalization=data.normalization,
                       source=f"NeuralDP rows of layer {split.index + 1} ({split.layer.token}) of {data.name}")
    feature_seconds = time.perf_counter() - t0

    head_cfg = base.with_values({"net": split.head_spec, "run.limit_train": None, **(
        {"dp.enabled": True, "dp.sigma": head_sigma, "dp.clip": s.head_clip, "dp.delta": s.delta,
         "dp.sampling": "poisson", "dp.clipping": "flat", "dp.noise_seed": s.noise_seed, "dp.accountant": "rdp"}
        if s.labels == "private" else {})})

    def event_of(trainer) -> DpEvent:
        head = trainer.accountant.event if s.labels == "private" else None
        return neuraldp_event(sigma, center_noise_factor=center_factor, head=head, lower=lower_ledger)

    head_fit = fit(head_cfg, features, backend=backend, callbacks=[_LedgerColumns(event_of, s.delta), *callbacks],
                   evaluate_test=evaluate_test, engine=engine)
    check_unchanged(digest, encoder, split)
    model.head = head_fit.network

    event = event_of(head_fit.trainer)
    report = privacy_report(event, s.delta)
    resolved = config.with_values({"neuraldp.sigma": sigma, "neuraldp.target_epsilon": None,
                                   "neuraldp.head_sigma": head_sigma})
    if s.target_epsilon is not None:
        eps = report.epsilon(s.accountant)
        if eps is None or eps > s.target_epsilon * (1 + 1e-9):
            raise UserError(f"the run's epsilon {eps} exceeds the target {s.target_epsilon}: the head ran other "
                            "steps than planned")
    trainer = head_fit.trainer
    statement = neuraldp_statement(s, split, kind=base.model.kind, n_train=n, sigma=sigma, head_sigma=head_sigma,
                                   head_steps=trainer.step, head_rate=trainer.sample_rate, report=report)
    summary = _summary(resolved, data, split, spec, n, head_fit, report, statement, event,
                       {"features": feature_seconds, "total": time.perf_counter() - t0})
    return NeuralDPResult(resolved, model, neuraldp_ledger(event), report, statement, head_fit.metrics, summary,
                          head_fit)


def _limit(x, n: int | None):
    if n is None:
        return x
    return x.head(n) if hasattr(x, "head") else x[:n]


def _summary(config: NeuralDPConfig, data: Dataset, split, spec: str, n: int, head_fit: FitResult,
             report: PrivacyReport, statement: Statement, event: DpEvent, seconds: dict) -> dict:
    s, head = config.neuraldp, head_fit.summary
    return {
        "mechanism": "neuraldp", "dataset": data.name, "model": config.base.model.kind, "spec": spec,
        "privatize_layer": split.index + 1, "privatized_token": split.layer.token, "head_spec": split.head_spec,
        "feature_size": split.feature_size, "n_train": n, "labels": s.labels, "bound": s.bound, "clip": s.clip,
        "sigma": s.sigma, "center": s.center, "center_clip": s.center_clip,
        "center_sigma": s.center_noise_factor * s.sigma if s.center else None,
        "head_sigma": s.head_sigma if s.labels == "private" else None, "head_clip": s.head_clip,
        "head_steps": head_fit.trainer.step, "head_sample_rate": head_fit.trainer.sample_rate, "delta": s.delta,
        "lower": s.lower, "public_source": s.public_source,
        "test_accuracy": head["test_accuracy"], "best_test_accuracy": head["best_test_accuracy"],
        "best_epoch": head["best_epoch"], "epochs_completed": head["epochs_completed"],
        **report.values, "refused": report.refused,
        "privacy_statement": statement.text, "assumptions": statement.assumptions,
        "ledger": neuraldp_ledger(event).state_dict(), "seconds": seconds, "seed": config.base.run.seed,
        "noise_seed": s.noise_seed, "versions": versions(),
    }
