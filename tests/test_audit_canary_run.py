"""The one-run canary audit of a real training run: honest mechanisms stay below
the accountant, a weakened one is caught, a near-non-private one hits the ceiling."""

from __future__ import annotations

import numpy as np
import pytest

import npdpsnn.training.trainer as trainer_module
from npdpsnn.audit.canary_audit import default_k_grid
from npdpsnn.audit.canary_run import canary_audit
from npdpsnn.audit.one_run import one_run_epsilon
from npdpsnn.data import Dataset
from npdpsnn.training.config import TrainConfig


def _data(n=64, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 20, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=n + 20).astype(np.int64)
    return Dataset(name="synthetic", train_x=x[:n], train_y=y[:n], test_x=x[n:], test_y=y[n:], num_classes=3,
                   input_shape=(1, 8, 8), normalization={"mean": 0.0, "std": 1.0}, source="test")


def _config(sigma: float) -> TrainConfig:
    # q = 141 / (64 + ~500 included canaries) ~ 0.25, 125 steps
    return TrainConfig.from_values("synthetic", {"net": "2C3S1-P2S2-8-3", "dp.sigma": sigma, "dp.clip": 1.0,
                                                 "optim.batch_size": 141, "optim.lr": 0.1, "optim.epochs": 25,
                                                 "run.physical_batch": 200, "model.T": 2})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_honest_mechanism_stays_below_the_accountant(seed):
    r = canary_audit(_config(6.0), _data(), m=1000, seed=seed)
    assert r.accounted["pld_epsilon"] < 2.0 and 100 <= r.steps <= 125
    assert not r.exceeds_accounted
    assert 0.0 <= r.one_run.epsilon <= r.accounted["pld_epsilon"]
    assert 0.0 <= r.fdp.epsilon <= r.accounted["pld_epsilon"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noise_scaled_down_tenfold_is_caught(monkeypatch, seed):
    real = trainer_module.add_noise
    monkeypatch.setattr(trainer_module, "add_noise",  # test-only bug: a tenth of the noise
                        lambda total, sigma, clip, b, rng: real(total, sigma / 10, clip, b, rng))
    r = canary_audit(_config(6.0), _data(), m=1000, seed=seed)
    assert r.exceeds_accounted
    assert r.one_run.epsilon > 1.5 * r.accounted["pld_epsilon"]


def test_near_non_private_run_reaches_the_bounds_ceiling():
    r = canary_audit(_config(0.05), _data(), m=1000, seed=4)
    grid = default_k_grid(1000)  # perfect guesses are possible only up to the number of included canaries
    ceiling = max(one_run_epsilon(1000, k, k, alpha=0.05 / len(grid), delta=r.delta) for k in grid
                  if k <= r.n_included)
    assert r.one_run.epsilon > 0.9 * ceiling
    assert r.one_run.epsilon < r.accounted["rdp_epsilon"]


def test_input_canaries_on_mnist(shared_data_dir):
    from npdpsnn.data import load_dataset

    data = load_dataset("mnist")
    cfg = TrainConfig.from_values("mnist", {"net": "4C5S2-P2S2-16-10", "model.T": 2, "dp.sigma": 1.0,
                                            "optim.batch_size": 100, "optim.epochs": 1, "run.limit_train": 400})
    r = canary_audit(cfg, data, m=64, kind="input", seed=0)
    assert r.kind == "input" and r.m == 64 and 0 < r.n_included < 64
    assert r.sample_rate == pytest.approx(100 / (400 + r.n_included))
    assert not r.exceeds_accounted
