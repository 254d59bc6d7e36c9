"""The DP-SGD training loop (DPSNN paper, section 3.3, eqs. 11-12).

Per step: draw a logical batch (Poisson by default), compute per-example
gradients clipped to ``R`` and summed (fused kernel, in physical micro-batches),
add ``N(0, sigma^2 R^2 I)`` once, divide by the expected batch size, SGD step,
and record the step in the privacy accountant.  After every epoch: test
accuracy, epsilon so far, and an atomic checkpoint plus run records.

Random streams are separate and seeded: initialisation from ``seed`` (see
:func:`npdpsnn.model.params.kaiming_uniform_init`), batch sampling from
``SeedSequence([seed, 1])``, noise from ``SeedSequence([seed, 2])`` -- or from
fresh OS entropy with ``noise_seed="os"``.  Their states are checkpointed, so a
resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from npdpsnn.data import Dataset
from npdpsnn.errors import CheckpointError, UserError
from npdpsnn.model.spec import face_net, resolve_spec
from npdpsnn.network import Network
from npdpsnn.privacy.accountants import PrivacyAccountant, calibrate_sigma
from npdpsnn.privacy.mechanism import add_noise, clip_per_layer
from npdpsnn.privacy.sampling import make_sampler
from npdpsnn.training.checkpoint import (
    CHECKPOINT_NAME, MODEL_NAME, CheckpointState, load_checkpoint, save_checkpoint, save_model,
)
from npdpsnn.training.config import TrainConfig
from npdpsnn.training.optimizer import SGD
from npdpsnn.training.records import privacy_statement, versions, write_config, write_metrics, write_summary

log = logging.getLogger(__name__)

EPSILON_KEYS = ("rdp_epsilon", "clt_epsilon", "clt_mu", "pld_epsilon")


def resolve_spec_for(cfg: TrainConfig, num_classes: int) -> str:
    if cfg.net.strip().lower() == "face":
        return face_net(num_classes)
    return resolve_spec(cfg.net, num_classes)


def steps_per_epoch(cfg: TrainConfig, n_train: int) -> int:
    return math.ceil(n_train / cfg.batch_size) if cfg.sampling == "poisson" else n_train // cfg.batch_size


def resolve_config(cfg: TrainConfig, n_train: int, num_classes: int) -> TrainConfig:
    """Fill in the spec string and, for ``target_epsilon``, the calibrated sigma."""
    if cfg.batch_size > n_train:
        raise UserError(f"--batch-size {cfg.batch_size} is larger than the training set ({n_train} examples)")
    cfg = replace(cfg, spec=resolve_spec_for(cfg, num_classes))
    if cfg.dp and cfg.target_epsilon is not None and cfg.sigma is None:
        q = cfg.batch_size / n_train
        steps = cfg.epochs * steps_per_epoch(cfg, n_train)
        method = cfg.accountant if cfg.accountant != "all" else "rdp"
        if method == "gdp":
            log.warning("calibrating sigma with the CLT (GDP) approximation, which is not an upper bound on "
                        "epsilon; use --accountant rdp or pld for a guarantee")
        sigma = calibrate_sigma(cfg.target_epsilon, q, steps, cfg.delta, accountant=method)
        log.info("calibrated sigma = %s for epsilon <= %s (%s, q=%s, %d steps)", sigma, cfg.target_epsilon, method,
                 q, steps)
        cfg = replace(cfg, sigma=float(sigma))
    return cfg


def _fingerprint(x, y, data: Dataset) -> str:
    """sha256 of the training set actually used (pixels, labels, normalisation)."""
    import hashlib
    import json

    h = hashlib.sha256()
    raw = getattr(x, "raw", None)
    h.update(np.ascontiguousarray(raw if raw is not None else np.asarray(x)).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    h.update(json.dumps({"name": data.name, "normalization": data.normalization}, sort_keys=True).encode())
    return h.hexdigest()


def _rng_from_state(state: dict) -> np.random.Generator:
    bg = np.random.PCG64()
    bg.state = state
    return np.random.Generator(bg)


def evaluate(net: Network, x: np.ndarray, y: np.ndarray, backend: str = "numba", batch_size: int = 1000) -> float:
    """Fraction of ``x`` classified as ``y``."""
    if len(x) == 0:
        return float("nan")
    return float(np.mean(net.predict(x, backend=backend, batch_size=batch_size) == y))


class Trainer:
    """One training run in ``out_dir`` (new, or resumed from its checkpoint)."""

    def __init__(self, cfg: TrainConfig, data: Dataset, out_dir: Path, backend: str = "numba",
                 resume: CheckpointState | None = None):
        self.data = data
        self.out_dir = Path(out_dir)
        self.backend = backend
        self.train_x, self.train_y = data.train_x, data.train_y
        if cfg.limit_train is not None:
            self.train_x = self.train_x.head(cfg.limit_train) if hasattr(self.train_x, "head") else \
                self.train_x[: cfg.limit_train]
            self.train_y = self.train_y[: cfg.limit_train]
        self.n_train = len(self.train_x)
        self.data_fingerprint = _fingerprint(self.train_x, self.train_y, data)
        if resume is None:
            self.cfg = resolve_config(cfg, self.n_train, data.num_classes)
        else:
            self.cfg = cfg
        c = self.cfg
        self.sample_rate = c.batch_size / self.n_train
        self.steps_per_epoch = steps_per_epoch(c, self.n_train)
        if resume is None:
            self.net = Network(c.spec, data.input_shape, c.model_config(), seed=c.seed)
            # "os": batch membership and noise are secret (fresh OS entropy); "derived":
            # reproducible from --seed, private only while the seed stays secret.
            secret = c.noise_seed == "os"
            sample_ss = np.random.SeedSequence() if secret else np.random.SeedSequence([c.seed, 1])
            noise_ss = np.random.SeedSequence() if secret else np.random.SeedSequence([c.seed, 2])
            self.sampling_rng = np.random.Generator(np.random.PCG64(sample_ss))
            self.noise_rng = np.random.Generator(np.random.PCG64(noise_ss))
            self.accountant = PrivacyAccountant(sampling=c.sampling)
            self.optimizer = SGD(self.net.num_params, c.lr, c.momentum)
            self.epoch, self.step, self.metrics = 0, 0, []
        else:
            self.net = resume.network
            if tuple(self.net.input_shape) != tuple(data.input_shape):
                raise CheckpointError(f"checkpoint expects inputs {self.net.input_shape}, dataset has {data.input_shape}")
            self.sampling_rng = _rng_from_state(resume.rng_sampling)
            self.noise_rng = _rng_from_state(resume.rng_noise)
            self.accountant = PrivacyAccountant.from_state_dict(resume.accountant)
            if resume.data_fingerprint != self.data_fingerprint:
                raise CheckpointError("cannot resume: the training data differ from the checkpoint's "
                                      "(other files, source, split or --limit-train)")
            if c.dp and self.accountant.steps != resume.step:
                raise CheckpointError(f"cannot resume: the privacy ledger records {self.accountant.steps} steps "
                                      f"but the checkpoint {resume.step}")
            self.optimizer = SGD(self.net.num_params, c.lr, c.momentum)
            self.optimizer.load_state(resume.optimizer)
            self.epoch, self.step, self.metrics = resume.epoch, resume.step, list(resume.metrics)
        self.sampler = make_sampler(c.sampling, self.n_train, c.batch_size, self.sampling_rng)
        self._device_data = None  # training images on the GPU (backend "cuda")
        self._layer_bounds = [(s.offset, s.offset + s.size) for s in self.net.slots]

    # ------------------------------------------------------------------ steps
    def _gradient_sum(self, idx: np.ndarray):
        """Clipped (or, without DP, plain) gradient sum over the logical batch ``idx``."""
        c = self.cfg
        total = np.zeros(self.net.num_params, np.float64)
        loss_sum, n_correct = 0.0, 0
        clip = c.clip if c.dp else math.inf
        for lo in range(0, len(idx), c.physical_batch):
            part = idx[lo : lo + c.physical_batch]
            x, y = self.train_x[part], self.train_y[part]
            if self.backend == "cuda" and not (c.dp and c.clipping == "per-layer"):
                s, losses, correct = self._cuda_clipped_sum(part, clip)
                total += s
            elif c.dp and c.clipping == "per-layer":
                grads, losses = self.net.per_example_grads(x, y, backend=self.backend)
                flat = np.concatenate([grads[s.name].reshape(len(part), -1) for s in self.net.slots], axis=1)
                total += clip_per_layer(flat, self._layer_bounds, c.clip)
                correct = np.argmax(self.net.forward(x, backend=self.backend), axis=1) == y
            else:
                s, _, losses, correct = self.net.clipped_grad_sum(x, y, clip, backend=self.backend)
                total += s
            loss_sum += float(losses.sum())
            n_correct += int(np.sum(correct))
        return total, loss_sum, n_correct

    def _cuda_clipped_sum(self, part: np.ndarray, clip: float):
        """The fused clipped sum on the GPU with the training images kept on the
        device: only the batch indices and the parameters are uploaded."""
        from npdpsnn.kernels import cuda
        from npdpsnn.kernels.program import from_kernel_layout, images_to_kernel_layout

        if self._device_data is None:
            self._device_data = cuda.to_device(images_to_kernel_layout(np.asarray(self.train_x)), self.train_y)
        net = self.net
        sk, _, losses, correct = cuda.clipped_sum_indexed(net.program, net.config, net.kernel_params(),
                                                          self._device_data, part, clip)
        return from_kernel_layout(sk, net.layers, net.slots), losses, correct

    def train_step(self, idx: np.ndarray) -> tuple[float, int]:
        """One DP-SGD step on the batch ``idx``; returns (loss sum, correct count)."""
        c = self.cfg
        total, loss_sum, n_correct = self._gradient_sum(idx)
        if c.dp:
            grad = add_noise(total, c.sigma, c.clip, c.batch_size, self.noise_rng)
        else:
            grad = total / max(1, len(idx))
        self.optimizer.step(self.net.theta, grad)
        if not np.all(np.isfinite(self.net.theta)):
            raise UserError(f"training diverged at step {self.step + 1} (NaN/inf weights); lower --lr")
        if c.dp:
            self.accountant.step(c.sigma, self.sample_rate)
        self.step += 1
        return loss_sum, n_correct

    # ------------------------------------------------------------------ epochs
    def epsilons(self, which: str | None = None) -> dict:
        if not self.cfg.dp or self.step == 0:
            return {k: (0.0 if self.cfg.dp else None) for k in EPSILON_KEYS}
        which = which or self.cfg.accountant
        eps = self.accountant.all_epsilons(self.cfg.delta) if which == "all" else {}
        if which != "all":
            key = {"rdp": "rdp_epsilon", "gdp": "clt_epsilon", "pld": "pld_epsilon"}[which]
            eps = {k: None for k in EPSILON_KEYS}
            eps[key] = self.accountant.epsilon(self.cfg.delta, method=which)
            if which == "gdp":
                eps["clt_mu"] = self.accountant.mu()
        return eps

    def run(self, on_step: Callable[[dict], None] | None = None,
            on_epoch: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict:
        """Train until ``cfg.epochs``.  ``should_stop()`` is polled between steps;
        when it turns true the run raises :class:`KeyboardInterrupt` there -- never
        while the checkpoint and records are being written -- leaving the last
        complete epoch's checkpoint and records consistent."""
        c = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_config(self.out_dir, c.to_dict())
        while self.epoch < c.epochs:
            t0 = time.perf_counter()
            seen = loss_sum = correct = 0
            for i, idx in enumerate(self.sampler.epoch()):
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt
                ls, nc = self.train_step(idx)
                seen += len(idx)
                loss_sum += ls
                correct += nc
                if on_step is not None:
                    el = time.perf_counter() - t0
                    on_step({"epoch": self.epoch + 1, "batch": i + 1, "batches": self.steps_per_epoch,
                             "examples_per_second": seen / el if el > 0 else 0.0,
                             "loss": loss_sum / max(seen, 1), "accountant": self.accountant, "step": self.step})
            train_seconds = time.perf_counter() - t0
            self.epoch += 1
            test_acc = evaluate(self.net, self.data.test_x, self.data.test_y, backend=self.backend)
            row = {"epoch": self.epoch, "step": self.step, "train_loss": loss_sum / max(seen, 1),
                   "train_accuracy": correct / max(seen, 1), "test_accuracy": test_acc, **self.epsilons(),
                   "seconds": time.perf_counter() - t0,
                   "examples_per_second": seen / train_seconds if train_seconds > 0 else 0.0}
            self.metrics.append(row)
            self.save()
            if on_epoch is not None:
                on_epoch(row)
        return self.summary()

    # ------------------------------------------------------------------ records
    def state(self) -> CheckpointState:
        return CheckpointState(network=self.net, train_config=self.cfg.to_dict(),
                               accountant=self.accountant.state_dict(),
                               rng_sampling=self.sampling_rng.bit_generator.state,
                               rng_noise=self.noise_rng.bit_generator.state, optimizer=self.optimizer.state(),
                               epoch=self.epoch, step=self.step, metrics=self.metrics,
                               data_fingerprint=self.data_fingerprint)

    def save(self) -> None:
        save_checkpoint(self.out_dir / CHECKPOINT_NAME, self.state())
        save_model(self.out_dir / MODEL_NAME, self.net)
        write_metrics(self.out_dir, self.metrics)
        write_summary(self.out_dir, self.summary())

    def summary(self) -> dict:
        c = self.cfg
        eps = self.epsilons("all")
        best = max(self.metrics, key=lambda r: r["test_accuracy"]) if self.metrics else None
        covered = bool(c.dp and self.sampler.covered_by_analysis)
        return {
            "dataset": c.dataset, "model": c.model, "spec": c.spec,
            "epochs_completed": self.epoch,
            "test_accuracy": self.metrics[-1]["test_accuracy"] if self.metrics else None,
            "best_test_accuracy": best["test_accuracy"] if best else None,
            "best_epoch": best["epoch"] if best else None,
            **eps,
            "dp": c.dp, "sigma": c.sigma if c.dp else None, "clip": c.clip, "sample_rate": self.sample_rate,
            "steps": self.step, "delta": c.delta, "sampling": c.sampling,
            "privacy_covered_by_analysis": covered,
            "n_train": self.n_train, "seed": c.seed, "noise_seed": c.noise_seed,
            "versions": versions(),
            "privacy_statement": privacy_statement(c.to_dict(), eps, self.step, self.sample_rate, self.n_train,
                                                   covered),
            "data_fingerprint": self.data_fingerprint,
        }


def open_resume(out_dir: Path) -> CheckpointState:
    p = Path(out_dir) / CHECKPOINT_NAME
    if not p.is_file():
        raise CheckpointError(f"cannot resume: no {CHECKPOINT_NAME} in {out_dir}")
    return load_checkpoint(p)
