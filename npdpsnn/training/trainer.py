"""The DP-SGD training loop (DPSNN paper, section 3.3, eqs. 11-12): :func:`fit`.

Per step: draw a logical batch from the sampling scheme (Poisson by default),
compute per-example gradients clipped to ``R`` and summed (fused kernel, in
physical micro-batches), add ``N(0, sigma^2 R^2 I)`` once, divide by the
expected batch size, SGD step, and record the step's privacy event in the
ledger.  After every epoch: evaluation (optional) and the epsilon of every
analysis; callbacks (:mod:`.callbacks`) do the rest -- the run folder is the
:class:`~npdpsnn.training.recorder.RunRecorder` callback, so :func:`fit` itself
writes no file.

Random streams are separate and seeded: initialisation from ``run.seed`` (see
:func:`npdpsnn.model.params.kaiming_uniform_init`), batch sampling from
``SeedSequence([seed, 1])``, noise from ``SeedSequence([seed, 2])`` -- or from
fresh OS entropy with ``dp.noise_seed="os"``.  Their states are part of the
checkpoint, so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from npdpsnn.data import Dataset
from npdpsnn.data.subsets import take
from npdpsnn.engine import Engine
from npdpsnn.errors import CheckpointError, UserError
from npdpsnn.kernels.backend import get_backend
from npdpsnn.kernels.protocol import Backend
from npdpsnn.model.loss import cross_entropy_rows
from npdpsnn.model.spec import face_net, resolve_spec
from npdpsnn.network import Network
from npdpsnn.privacy.accountants import ANALYSES, PrivacyAccountant, calibrate_noise, get_analysis
from npdpsnn.privacy.accountants.analyses import delta_caveat, metric_columns
from npdpsnn.privacy.events import NonPrivateEvent, poisson_equivalent
from npdpsnn.privacy.canaries import DiracCanaries
from npdpsnn.privacy.mechanism import add_noise, privatize_rows
from npdpsnn.training.augment import multiply as augment_copies
from npdpsnn.privacy.noise import make_noise_source, noise_from_state
from npdpsnn.privacy.sampling import make_sampler
from npdpsnn.training.callbacks import Callback
from npdpsnn.training.checkpoint import CHECKPOINT_NAME, CheckpointState, load_checkpoint
from npdpsnn.training.config import ConfigError, TrainConfig
from npdpsnn.training.metrics import FIRING_EXAMPLES, FIRING_RATE_PREFIX, firing_rates, spiking_layers
from npdpsnn.training.optimizer import SGD
from npdpsnn.training.records import privacy_statement, versions
from npdpsnn.training.resume import check_resume

log = logging.getLogger(__name__)


def resolve_spec_for(config: TrainConfig, num_classes: int) -> str:
    if config.net.strip().lower() == "face":
        return face_net(num_classes)
    return resolve_spec(config.net, num_classes)


def resolve_config(config: TrainConfig, n_train: int, num_classes: int) -> TrainConfig:
    """Fill in the spec string and, for ``dp.target_epsilon``, the calibrated sigma."""
    if config.optim.batch_size > n_train:
        raise ConfigError("optim.batch_size", f"{config.optim.batch_size} is larger than the training set "
                                              f"({n_train} examples)")
    config = replace(config, spec=resolve_spec_for(config, num_classes))
    dp = config.dp
    if dp.enabled and dp.target_epsilon is not None and dp.sigma is None:
        scheme = make_sampler(dp.sampling, n_train, config.optim.batch_size)
        analysis = get_analysis(dp.calibration_analysis)
        if not analysis.is_bound:
            log.warning("calibrating sigma with the %s, which is not an upper bound on epsilon; use an "
                        "accountant that is (%s) for a guarantee", analysis.label,
                        ", ".join(a.name for a in ANALYSES.values() if a.is_bound))
        # shuffled batches are calibrated as Poisson sampling at the same rate (and reported as not covered)
        sigma = calibrate_noise(dp.target_epsilon,
                                lambda s: poisson_equivalent(scheme.training_event(s, config.optim.epochs)),
                                dp.delta, analysis.name)
        log.info("calibrated sigma = %s for epsilon <= %s (%s, q=%s, %d steps)", sigma, dp.target_epsilon,
                 analysis.name, scheme.sample_rate, config.optim.epochs * scheme.steps_per_epoch)
        config = config.with_values({"dp.sigma": float(sigma)})
    return config


def data_fingerprint(x, y, data: Dataset) -> str:
    """sha256 of the training set actually used (pixels, labels, normalisation)."""
    h = hashlib.sha256()
    raw = getattr(x, "raw", None)
    h.update(np.ascontiguousarray(raw if raw is not None else np.asarray(x)).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    h.update(json.dumps({"name": data.name, "normalization": data.normalization}, sort_keys=True).encode())
    return h.hexdigest()


def _hold_out(x, y, n_val: int, seed: int):
    """``(train_x, train_y, val_x, val_y)``: ``n_val`` examples drawn with ``seed`` held out
    (both parts keep the original order)."""
    if not 0 < n_val < len(y):
        raise ConfigError("run.validation", f"must be between 1 and {len(y) - 1} examples, got {n_val}")
    perm = np.random.default_rng(np.random.SeedSequence([seed, 7])).permutation(len(y))
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return take(x, train), y[train], take(x, val), y[val]


def _rng_from_state(state: dict) -> np.random.Generator:
    bg = np.random.PCG64()
    bg.state = state
    return np.random.Generator(bg)


@dataclass(frozen=True)
class Evaluation:
    """``accuracy`` (fraction correct), per-example ``losses`` (cross-entropy,
    float64) and ``logits`` ``(N, classes)``."""

    accuracy: float
    losses: np.ndarray
    logits: np.ndarray


def evaluate_model(net: Network, x, y, backend: str | Backend = "numba", batch_size: int = 1000) -> Evaluation:
    """Logits, per-example losses and accuracy of ``net`` on ``(x, y)``
    (``x`` may be a dataset's :class:`~npdpsnn.data.normalization.NormalizedImages`)."""
    y = np.asarray(y, dtype=np.int64)
    parts = [net.forward(x[i : i + batch_size], backend) for i in range(0, len(y), batch_size)]
    logits = np.concatenate(parts) if parts else np.zeros((0, net.num_classes))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y)) if len(y) else float("nan")
    return Evaluation(accuracy, cross_entropy_rows(logits, y), logits)


def evaluate(net: Network, x, y, backend: str | Backend = "numba", batch_size: int = 1000) -> float:
    """Fraction of ``x`` classified as ``y``."""
    if len(x) == 0:
        return float("nan")
    return float(np.mean(net.predict(x, backend=backend, batch_size=batch_size) == y))


class Trainer:
    """The state of one training run (new, or resumed from ``resume``) and its step."""

    def __init__(self, config: TrainConfig, data: Dataset, backend: str | Backend = "numba",
                 resume: CheckpointState | None = None, evaluate_test: bool = True,
                 canaries: DiracCanaries | None = None, engine: Engine | None = None):
        if canaries is not None and (resume is not None or not config.dp.enabled):
            raise UserError("gradient canaries audit a new DP training run (not a resumed or non-private one)")
        self.canaries = canaries
        self.data = data
        self.backend = get_backend(backend, engine)
        self.evaluate_test = evaluate_test
        self.train_x, self.train_y = data.train_x, data.train_y
        limit = config.run.limit_train
        if limit is not None:
            self.train_x = self.train_x.head(limit) if hasattr(self.train_x, "head") else self.train_x[:limit]
            self.train_y = self.train_y[:limit]
        self.val_x = self.val_y = None
        if config.run.validation:
            self.train_x, self.train_y, self.val_x, self.val_y = _hold_out(
                self.train_x, self.train_y, config.run.validation, config.run.split_seed)
        self.n_train = len(self.train_x)
        self.data_fingerprint = data_fingerprint(self.train_x, self.train_y, data)
        n_records = self.n_train + (canaries.n_included if canaries is not None else 0)  # canaries are records
        self.config = resolve_config(config, n_records, data.num_classes) if resume is None else config
        c = self.config
        self.scheme = make_sampler(c.dp.sampling, n_records, c.optim.batch_size)
        caveat = delta_caveat(c.dp.delta, self.n_train) if c.dp.enabled else None
        if caveat:
            log.warning(caveat)
        if resume is None:
            self.net = Network(c.spec, data.input_shape, c.model, seed=c.run.seed, init_gain=c.optim.init_gain)
            # "os": batch membership and noise are secret (fresh OS entropy); "derived":
            # reproducible from the seed, private only while the seed stays secret.
            secret = c.dp.noise_seed == "os"
            sample_ss = np.random.SeedSequence() if secret else np.random.SeedSequence([c.run.seed, 1])
            noise_ss = np.random.SeedSequence() if secret else np.random.SeedSequence([c.run.seed, 2])
            self.sampling_rng = np.random.Generator(np.random.PCG64(sample_ss))
            self.noise = make_noise_source(c.dp.noise, noise_ss)
            self.accountant = PrivacyAccountant(sampling=c.dp.sampling)
            self.optimizer = SGD(self.net.num_params, c.optim.lr, c.optim.momentum, c.optim.ema, self.net.theta)
            self.epoch, self.step, self.metrics = 0, 0, []
        else:
            self.net = resume.network
            if tuple(self.net.input_shape) != tuple(data.input_shape):
                raise CheckpointError(f"checkpoint expects inputs {self.net.input_shape}, dataset has {data.input_shape}")
            if resume.data_fingerprint != self.data_fingerprint:
                raise CheckpointError("cannot resume: the training data differ from the checkpoint's "
                                      "(other files, source, split or run.limit_train)")
            try:
                self.sampling_rng = _rng_from_state(resume.rng_sampling)
                self.noise = noise_from_state(resume.rng_noise)
                if self.noise.kind != c.dp.noise:
                    raise CheckpointError(f"cannot resume: the checkpoint's noise generator is {self.noise.kind}, "
                                          f"its configuration says {c.dp.noise}")
                self.accountant = PrivacyAccountant.from_state_dict(resume.accountant)
                self.optimizer = SGD(self.net.num_params, c.optim.lr, c.optim.momentum, c.optim.ema)
                self.optimizer.load_state(resume.optimizer)
            except (TypeError, ValueError, KeyError) as exc:
                raise CheckpointError(f"cannot resume: corrupt training state in the checkpoint ({exc})") from None
            self.epoch, self.step, self.metrics = resume.epoch, resume.step, list(resume.metrics)
            check_resume(c, self.scheme, self.accountant, self.epoch, self.step, self.metrics)
        if self.net.num_classes != data.num_classes:
            raise ConfigError("net", f"{c.spec!r} has {self.net.num_classes} outputs, but {data.name} has "
                                     f"{data.num_classes} classes")
        self.scheme.rng = self.sampling_rng
        self._bound = None  # the training data bound to the backend (on the GPU for "cuda")
        self._clipped = 0  # examples whose gradient norm exceeded R, this epoch
        self._eps_cache: dict = {}  # {(step, analyses): epsilons}
        self._layer_bounds = [(s.offset, s.offset + s.size) for s in self.net.slots]

    @property
    def sample_rate(self) -> float:
        return self.scheme.sample_rate

    @property
    def steps_per_epoch(self) -> int:
        return self.scheme.steps_per_epoch

    # ------------------------------------------------------------------ steps
    def _gradient_sum(self, idx: np.ndarray):
        """Clipped (or, without DP, plain) gradient sum over the logical batch ``idx``."""
        c = self.config
        total = np.zeros(self.net.num_params, np.float64)
        loss_sum, n_correct, n_clipped = 0.0, 0, 0
        k = c.dp.augment_mult
        clip = c.dp.clip if c.dp.enabled else math.inf
        unfused = (c.dp.enabled and c.dp.clipping != "flat") or k > 1
        for lo in range(0, len(idx), max(1, c.run.physical_batch // k)):
            part = idx[lo : lo + max(1, c.run.physical_batch // k)]
            part = part[part < self.n_train]  # records beyond the data are canaries (see train_step)
            if unfused:  # per-example gradients, averaged over the K copies, then bounded
                x, y = self.train_x[part], self.train_y[part]
                xs = augment_copies(x, c.run.seed, self.step, part, k) if k > 1 else x
                flat, losses = self.backend.per_example_grads(self.net, xs, np.repeat(y, k))
                flat = np.asarray(flat, np.float64).reshape(len(part), k, -1).mean(axis=1)
                losses = losses.reshape(len(part), k).mean(axis=1)
                total += (privatize_rows(flat, c.dp.clipping, clip, self._layer_bounds) if c.dp.enabled
                          else flat.sum(axis=0))
                norms = np.sqrt(np.einsum("ij,ij->i", flat, flat))
                correct = np.argmax(self.backend.forward(self.net, x), axis=1) == y
            else:
                s, norms, losses, correct = self.backend.clipped_sum_indexed(self.net, self._bound_data(), part, clip)
                total += s
            loss_sum += float(losses.sum())
            n_correct += int(np.sum(correct))
            n_clipped += int(np.count_nonzero(~(np.asarray(norms) <= c.dp.clip)))
        self._clipped += n_clipped
        return total, loss_sum, n_correct

    def _bound_data(self):
        """The training set bound to the backend (uploaded once on the GPU)."""
        if self._bound is None:
            self._bound = self.backend.bind(self.train_x, self.train_y)
        return self._bound

    def warm_up(self) -> None:
        """Run one example through the training and evaluation paths (compiling
        or loading the kernels) without changing any state or randomness."""
        clipped = self._clipped
        self._gradient_sum(np.zeros(1, np.int64))
        self._clipped = clipped
        self.net.forward(self.train_x[:1], self.backend)

    def train_step(self, idx: np.ndarray) -> tuple[float, int]:
        """One DP-SGD step on the batch ``idx``; returns (loss sum, correct count)."""
        c = self.config
        self.optimizer.lr = c.optim.learning_rate(self.step, c.optim.epochs * self.steps_per_epoch)
        total, loss_sum, n_correct = self._gradient_sum(idx)
        if self.canaries is not None:  # audit coordinates go through the same noise and scaling
            audit = self.canaries.gradient_sum(idx[idx >= self.n_train] - self.n_train, c.dp.clip)
            released = add_noise(np.concatenate([total, audit]), c.dp.sigma, c.dp.clip, c.optim.batch_size,
                                 self.noise)
            grad = released[: total.size]
            self.canaries.record(released[total.size :])
        elif c.dp.enabled:
            grad = add_noise(total, c.dp.sigma, c.dp.clip, c.optim.batch_size, self.noise)
        else:
            grad = total / max(1, len(idx))
        self.optimizer.step(self.net.theta, grad)
        if not np.all(np.isfinite(self.net.theta)):
            noise = ""
            if c.dp.enabled:  # the update's noise per coordinate: lr * sigma * R / B
                std = c.optim.lr * c.dp.sigma * c.dp.clip / c.optim.batch_size
                noise = f" or the noise (optim.lr x dp.sigma x dp.clip / optim.batch_size = {std:.3g} per coordinate)"
            raise UserError(f"training diverged at step {self.step + 1} (NaN/inf weights): lower optim.lr{noise}")
        self.accountant.record(self.scheme.step_event(c.dp.sigma) if c.dp.enabled else NonPrivateEvent())
        self.step += 1
        return loss_sum, n_correct

    def train_epoch(self, callbacks: Sequence[Callback] = ()) -> dict:
        """One epoch of steps, then evaluation; returns its metrics row (also appended to ``metrics``)."""
        t0 = time.perf_counter()
        seen = loss_sum = correct = 0
        self._clipped = 0
        for i, idx in enumerate(self.scheme.epoch()):
            if any(cb.should_stop(self) for cb in callbacks):
                raise KeyboardInterrupt
            ls, nc = self.train_step(idx)
            seen += int(np.count_nonzero(idx < self.n_train))
            loss_sum += ls
            correct += nc
            if callbacks:
                el = time.perf_counter() - t0
                info = {"epoch": self.epoch + 1, "batch": i + 1, "batches": self.steps_per_epoch,
                        "examples_per_second": seen / el if el > 0 else 0.0, "loss": loss_sum / max(seen, 1),
                        "accountant": self.accountant, "step": self.step}
                for cb in callbacks:
                    cb.on_step(self, info)
        train_seconds = time.perf_counter() - t0
        self.epoch += 1
        row = {"epoch": self.epoch, "step": self.step, "train_loss": loss_sum / max(seen, 1),
               "train_accuracy": correct / max(seen, 1), **self._accuracies(), **self.epsilons(),
               "fraction_clipped": self._clipped / max(seen, 1) if self.config.dp.enabled else None,
               **self._firing_rates()}
        row["seconds"] = time.perf_counter() - t0
        row["examples_per_second"] = seen / train_seconds if train_seconds > 0 else 0.0
        self.metrics.append(row)
        return row

    def fit(self, callbacks: Sequence[Callback] = ()) -> "FitResult":
        """Train until ``config.optim.epochs`` with ``callbacks`` (see :func:`fit`)."""
        for cb in callbacks:
            cb.on_fit_start(self)
        while self.epoch < self.config.optim.epochs:
            row = self.train_epoch(callbacks)
            for cb in callbacks:
                cb.on_epoch_end(self, row)
        for cb in callbacks:
            cb.on_fit_end(self)
        return FitResult(self, self.metrics, self.summary())

    def privacy(self, summary: dict | None = None) -> dict:
        """What the run's guarantee says: sigma, clipping norm, sampling rate, steps,
        delta, the statement and every accountant's epsilon (from ``summary``, default
        :meth:`summary`)."""
        s = summary if summary is not None else self.summary()
        return {k: s[k] for k in ("dp", "sigma", "clip", "sample_rate", "steps", "delta", "sampling",
                                  "privacy_covered_by_analysis", "privacy_statement", "n_train", *metric_columns())}

    def model_description(self, weights: str = "last") -> dict:
        """What a release ``model.h5`` says about itself: dataset, class names,
        input shape and normalisation, the model, the privacy statement and its
        numbers, which weights (``last``, ``ema`` or ``best_validation``)."""
        from npdpsnn import __version__
        from npdpsnn.data.registry import DATASETS, class_names

        s = self.summary()
        names = class_names(self.data.name) if self.data.name in DATASETS else \
            tuple(str(i) for i in range(self.data.num_classes))
        return {
            "dataset": self.data.name, "class_names": list(names), "input_shape": list(self.data.input_shape),
            "input": {"pixels": "grey levels in [0, 255], divided by 255, then (x - mean) / std",
                      "normalization": dict(self.data.normalization)},
            "model": {"spec": self.net.spec, **self.net.config.to_dict()},
            "weights": weights, "epoch": self.epoch,
            "privacy": self.privacy(s),
            "accountants": {a.name: {"label": a.label, "is_bound": a.is_bound, "columns": list(a.columns)}
                            for a in ANALYSES.values()},
            "test_accuracy": s["test_accuracy"], "npdpsnn_version": __version__,
        }

    def is_best_on_validation(self) -> bool:
        """True when the last epoch has the highest validation accuracy so far (first on ties)."""
        acc = [r["validation_accuracy"] for r in self.metrics if r.get("validation_accuracy") is not None]
        return bool(acc) and len(acc) == len(self.metrics) and acc[-1] > max(acc[:-1], default=-1.0)

    def ema_network(self) -> Network | None:
        """The network with the averaged weights (``optim.ema``), or None."""
        if self.optimizer.ema is None:
            return None
        net = Network(self.net.spec, self.net.input_shape, self.net.config)
        net.theta[:] = self.optimizer.ema.astype(np.float32)
        return net

    def _firing_rates(self) -> dict:
        """``firing_rate_<layer>`` of each hidden spiking layer on the first
        :data:`FIRING_EXAMPLES` test images (test data: a statistic of the
        training data would not be covered by the guarantee); ``{}`` for an ANN
        or without test evaluation."""
        if not self.evaluate_test or not spiking_layers(self.net):
            return {}
        rates = firing_rates(self.net, self.data.test_x[:FIRING_EXAMPLES])
        return {FIRING_RATE_PREFIX + name: rate for name, rate in rates.items()}

    def _accuracies(self) -> dict:
        """Test (and validation) accuracy of the weights and of their average."""
        out = dict.fromkeys(("test_accuracy", "validation_accuracy", "test_accuracy_ema", "validation_accuracy_ema"))
        for suffix, net in (("", self.net), ("_ema", self.ema_network())):
            if net is None:
                continue
            if self.evaluate_test:
                out["test_accuracy" + suffix] = evaluate(net, self.data.test_x, self.data.test_y, self.backend)
            if self.val_x is not None:
                out["validation_accuracy" + suffix] = evaluate(net, self.val_x, self.val_y, self.backend)
        return out

    # ------------------------------------------------------------------ privacy
    def epsilons(self, which: str | None = None) -> dict:
        """The metric columns of the analyses ``which`` (default: the configured
        one, or "all"); None for the others and without DP."""
        columns = metric_columns()
        dp = self.config.dp
        if not dp.enabled:
            return dict.fromkeys(columns)
        which = which or dp.accountant
        if self.step == 0:
            return dict.fromkeys(columns, 0.0)
        key = (self.step, which)  # the ledger changes only with a step: the metrics row, the summary
        if key not in self._eps_cache:  # and the model descriptions of an epoch share one computation
            if which == "all":
                self._eps_cache = {key: self.accountant.all_epsilons(dp.delta)}
            else:
                analysis = get_analysis(which)
                self._eps_cache = {key: {**dict.fromkeys(columns),
                                         **analysis.values(self.accountant.analysed_event(), dp.delta)}}
        return dict(self._eps_cache[key])

    # ------------------------------------------------------------------ records
    def state(self) -> CheckpointState:
        return CheckpointState(network=self.net, train_config=self.config.to_dict(),
                               accountant=self.accountant.state_dict(),
                               rng_sampling=self.sampling_rng.bit_generator.state,
                               rng_noise=self.noise.state_dict(), optimizer=self.optimizer.state(),
                               epoch=self.epoch, step=self.step, metrics=self.metrics,
                               data_fingerprint=self.data_fingerprint)

    def summary(self) -> dict:
        c = self.config
        eps = self.epsilons("all")
        rated = [r for r in self.metrics if r["test_accuracy"] is not None]
        best = max(rated, key=lambda r: r["test_accuracy"]) if rated else None
        covered = bool(c.dp.enabled and self.scheme.covered_by_analysis)
        return {
            "dataset": c.dataset, "model": c.model.kind, "spec": c.spec, "preset": c.preset,
            "epochs_completed": self.epoch,
            "test_accuracy": self.metrics[-1]["test_accuracy"] if self.metrics else None,
            "test_accuracy_ema": self.metrics[-1]["test_accuracy_ema"] if self.metrics else None,
            "validation_accuracy": self.metrics[-1]["validation_accuracy"] if self.metrics else None,
            "best_validation_epoch": _best_validation_epoch(self.metrics),
            "best_test_accuracy": best["test_accuracy"] if best else None,
            "best_epoch": best["epoch"] if best else None,
            **eps,
            "dp": c.dp.enabled, "sigma": c.dp.sigma if c.dp.enabled else None, "clip": c.dp.clip, "sample_rate": self.sample_rate,
            "steps": self.step, "delta": c.dp.delta, "sampling": c.dp.sampling,
            "privacy_covered_by_analysis": covered,
            "n_train": self.n_train, "seed": c.run.seed, "noise_seed": c.dp.noise_seed,
            "versions": versions(),
            "privacy_statement": privacy_statement(c.dp, eps, self.step, self.sample_rate, self.n_train, covered),
            "data_fingerprint": self.data_fingerprint,
        }


def _best_validation_epoch(metrics: list[dict]) -> int | None:
    rated = [r for r in metrics if r.get("validation_accuracy") is not None]
    return max(rated, key=lambda r: r["validation_accuracy"])["epoch"] if rated else None


@dataclass
class FitResult:
    """What :func:`fit` returns: the trainer (network, optimiser, ledger, RNG
    states), the metrics rows and the summary."""

    trainer: Trainer
    metrics: list[dict]
    summary: dict

    @property
    def network(self) -> Network:
        return self.trainer.net


def fit(config: TrainConfig, data: Dataset, *, backend: str | Backend = "numba", callbacks: Sequence[Callback] = (),
        resume: CheckpointState | None = None, evaluate_test: bool = True,
        canaries: DiracCanaries | None = None, engine: Engine | None = None) -> FitResult:
    """Train until ``config.optim.epochs`` (from scratch, or from ``resume``).

    Writes no file; pass :class:`~npdpsnn.training.recorder.RunRecorder` to
    keep a run folder.  A callback's ``should_stop`` ends the run at a step
    boundary with :class:`KeyboardInterrupt` (the last complete epoch's state
    stays consistent).  ``evaluate_test=False`` skips the per-epoch test
    evaluation (``test_accuracy`` is then None).  ``canaries`` adds white-box
    gradient canaries for a privacy audit (:mod:`npdpsnn.privacy.canaries`).
    ``backend`` is a name (``numba``, ``cuda``, ``reference``) or a backend
    object; ``engine`` (default: the process-wide one) owns its threads and
    device memory."""
    return Trainer(config, data, backend=backend, resume=resume, evaluate_test=evaluate_test,
                   canaries=canaries, engine=engine).fit(callbacks)


def open_resume(out_dir: Path) -> CheckpointState:
    p = Path(out_dir) / CHECKPOINT_NAME
    if not p.is_file():
        raise CheckpointError(f"cannot resume: no {CHECKPOINT_NAME} in {out_dir}")
    return load_checkpoint(p)
