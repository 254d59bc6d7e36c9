"""Library-level tests of the training loop: ``fit()``, callbacks, resume rules.

A small synthetic dataset is made in the test; nothing is written to disk
unless a test asks for the run recorder.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from npdpsnn.data import Dataset
from npdpsnn.errors import CheckpointError
from npdpsnn.model.config import ModelConfig
from npdpsnn.network import Network
from npdpsnn.privacy.accountants import PrivacyAccountant
from npdpsnn.privacy.mechanism import clip_flat
from npdpsnn.training.callbacks import Callback
from npdpsnn.training.checkpoint import load_checkpoint
from npdpsnn.training.config import ConfigError, DPConfig, OptimConfig, RunConfig, TrainConfig
from npdpsnn.training.recorder import RunRecorder
from npdpsnn.training.resume import resume_config
from npdpsnn.training.trainer import Trainer, evaluate_model, fit

SPEC = "2C3S1-P2S2-8-3"


def _data(n=64, n_test=20, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + n_test, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=n + n_test).astype(np.int64)
    return Dataset(name="synthetic", train_x=x[:n], train_y=y[:n], test_x=x[n:], test_y=y[n:], num_classes=3,
                   input_shape=(1, 8, 8), normalization={"mean": 0.0, "std": 1.0}, source="test")


def _config(**kw) -> TrainConfig:
    values = {"net": SPEC, "dp.sigma": 0.8, "dp.clip": 1.0, "optim.batch_size": 16, "optim.lr": 0.1,
              "optim.epochs": 2, "run.physical_batch": 32, "model.T": 3}
    values.update(kw)
    return TrainConfig.from_values("synthetic", values)


def test_one_step_is_clip_noise_sgd_by_hand():
    data = _data()
    cfg = _config()
    trainer = Trainer(cfg, data)
    theta0 = trainer.net.theta.copy()
    # the same generators, replayed by hand
    sample_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, 1])))
    noise_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, 2])))
    idx = np.flatnonzero(sample_rng.random(64) < 16 / 64)
    ref = Network(trainer.config.spec, (1, 8, 8), cfg.model, seed=0)
    assert np.array_equal(ref.theta, theta0)
    grads, _ = ref.per_example_grads(data.train_x[idx], data.train_y[idx], backend="reference")
    flat = np.concatenate([grads[s.name].reshape(len(idx), -1) for s in ref.slots], axis=1)
    total, _ = clip_flat(flat, 1.0)
    noisy = (total + noise_rng.normal(0.0, 0.8 * 1.0, size=total.shape)) / 16
    expected = (theta0.astype(np.float64) - 0.1 * noisy).astype(np.float32)

    trainer.train_step(next(iter(trainer.scheme.epoch())))
    assert trainer.step == 1
    np.testing.assert_allclose(trainer.net.theta, expected, rtol=0, atol=2e-6)
    assert trainer.accountant == _ledger(0.8, 16 / 64, 1)


def _ledger(sigma, q, n):
    acc = PrivacyAccountant()
    acc.step(sigma, q, n)
    return acc


class _Stop(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def should_stop(self, trainer):
        return trainer.step >= self.at_step


@pytest.mark.parametrize("extra", [{"optim.momentum": 0.9}, {"dp.clipping": "per-layer"}])
def test_resume_is_bit_exact(tmp_path, extra):
    data = _data()
    cfg = _config(**extra, **{"optim.epochs": 3})
    full = fit(cfg, data)
    run = tmp_path / "run"
    # an epoch has 4 steps: stop in the middle of epoch 2, so the checkpoint is at epoch 1
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data, callbacks=[RunRecorder(run), _Stop(6)])
    state = load_checkpoint(run)
    assert state.epoch == 1 and state.step == 4
    saved = TrainConfig.from_dict(state.train_config)
    resumed = fit(resume_config(saved, {}), data, resume=state, callbacks=[RunRecorder(run)])
    assert np.array_equal(resumed.network.theta, full.network.theta)
    assert resumed.metrics[-1]["rdp_epsilon"] == full.metrics[-1]["rdp_epsilon"]
    keep = ("train_loss", "train_accuracy", "test_accuracy", "rdp_epsilon", "pld_epsilon", "step")
    assert [{k: r[k] for k in keep} for r in resumed.metrics] == [{k: r[k] for k in keep} for r in full.metrics]


def test_fit_writes_nothing_and_can_skip_evaluation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = fit(_config(**{"optim.epochs": 1}), _data(), evaluate_test=False)
    assert list(tmp_path.iterdir()) == []
    assert result.metrics[0]["test_accuracy"] is None and result.metrics[0]["rdp_epsilon"] > 0
    ev = evaluate_model(result.network, _data().test_x, _data().test_y, backend="reference")
    assert ev.logits.shape == (20, 3) and ev.losses.shape == (20,)
    p = np.exp(ev.logits - ev.logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(ev.losses, -np.log(p[np.arange(20), _data().test_y]), rtol=1e-12)
    assert ev.accuracy == np.mean(ev.logits.argmax(1) == _data().test_y)


def test_config_errors_name_fields():
    with pytest.raises(ConfigError, match=r"^dp\.sigma ") as e:
        DPConfig(enabled=True)
    assert e.value.field == "dp.sigma"
    with pytest.raises(ConfigError, match=r"^optim\.lr "):
        OptimConfig(lr=-1.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"^optim\.init_gain "):
            OptimConfig(init_gain=bad)
    with pytest.raises(ConfigError, match=r"^run\.device "):
        RunConfig(device="tpu")
    with pytest.raises(ConfigError, match=r"^dp\.delta .*pld"):
        DPConfig(sigma=1.0, accountant="pld", delta=1e-10)
    with pytest.raises(ConfigError, match="unknown keys"):
        TrainConfig.from_dict({"dataset": "mnist", "dp": {"sigma": 1.0}, "lr": 0.1})
    cfg = _config()
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.differences(cfg.with_values({"model.T": 4, "dp.sigma": 2.0})) == ["dp.sigma", "model.T"]


def test_init_gain_sets_the_trainers_initial_weights():
    data = _data()
    plain, scaled = Trainer(_config(), data), Trainer(_config(**{"optim.init_gain": 0.5}), data)
    np.testing.assert_array_equal(scaled.net.theta, 0.5 * plain.net.theta)
    assert scaled.config.to_dict()["optim"]["init_gain"] == 0.5


def test_resume_rules_live_in_the_library():
    cfg = _config()
    assert resume_config(cfg, {"optim.epochs": 9, "run.threads": 2}).optim.epochs == 9
    assert resume_config(cfg, {"dp.sigma": 0.8}) == cfg  # restating a saved value is fine
    with pytest.raises(ConfigError, match=r"^dp\.sigma = 2\.0 conflicts"):
        resume_config(cfg, {"dp.sigma": 2.0})
    calibrated = _config(**{"dp.sigma": None, "dp.target_epsilon": 3.0}).with_values({"dp.sigma": 1.3})
    with pytest.raises(ConfigError, match="calibrated"):
        resume_config(calibrated, {"optim.epochs": 5})


def _tamper(state, **changes):
    """A checkpoint state whose ledger or progress was edited."""
    import copy

    s = copy.copy(state)
    for k, v in changes.items():
        setattr(s, k, v)
    return s


def test_resume_refuses_a_lowered_ledger(tmp_path):
    data = _data()
    cfg = _config(**{"optim.epochs": 1})
    run = tmp_path / "r"
    fit(cfg, data, callbacks=[RunRecorder(run)])
    state = load_checkpoint(run)
    more = cfg.with_values({"optim.epochs": 2})
    fit(more, data, resume=state)  # the honest checkpoint resumes

    q = 16 / 64
    bad_ledgers = {
        "larger sigma": _ledger(1000.0, q, 4).state_dict(),
        "smaller rate": _ledger(0.8, 1e-9, 4).state_dict(),
        "fewer steps": _ledger(0.8, q, 3).state_dict(),
        "empty": PrivacyAccountant().state_dict(),
    }
    shuffled = PrivacyAccountant(sampling="shuffle")
    shuffled.step(0.8, q, 4)
    bad_ledgers["other sampling"] = shuffled.state_dict()
    for name, ledger in bad_ledgers.items():
        with pytest.raises(CheckpointError, match="ledger"):
            fit(more, data, resume=_tamper(state, accountant=ledger))
    with pytest.raises(CheckpointError, match="step"):  # step edited to match a shorter ledger
        fit(more, data, resume=_tamper(state, accountant=_ledger(0.8, q, 3).state_dict(), step=3))
    with pytest.raises(CheckpointError):  # empty ledger, step 0, but one epoch done
        fit(more, data, resume=_tamper(state, accountant=PrivacyAccountant().state_dict(), step=0))
    no_dp = more.with_values({"dp.enabled": False})
    with pytest.raises(CheckpointError, match="ledger"):  # the config's DP flag edited
        fit(no_dp, data, resume=state)


def test_no_dp_ledger_records_non_private_steps():
    result = fit(_config(**{"dp.enabled": False, "dp.sigma": None, "optim.epochs": 1}), _data())
    assert result.trainer.accountant.epsilon(1e-5) == math.inf
    assert result.metrics[0]["rdp_epsilon"] is None and result.summary["dp"] is False


def test_model_config_is_nested_not_repeated():
    cfg = _config()
    assert isinstance(cfg.model, ModelConfig) and cfg.model.T == 3
    assert "T" not in cfg.to_dict() and cfg.to_dict()["model"]["T"] == 3


def test_output_size_is_checked_against_the_classes():
    with pytest.raises(ConfigError, match="4 outputs.*3 classes"):
        Trainer(_config(net="2C3S1-P2S2-8-4"), _data())


def test_tiny_sigma_gives_infinite_epsilon_without_warnings():
    import warnings

    from npdpsnn.privacy.accountants import ANALYSES

    acc = _ledger(1e-160, 0.25, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = acc.all_epsilons(1e-5)
    assert all(v == math.inf for v in out.values())
    assert all(a.epsilon(acc.event, 1e-5) == math.inf for a in ANALYSES.values())


def test_dirac_canaries_go_through_the_real_noise():
    from npdpsnn.privacy.canaries import DiracCanaries, draw_inclusion

    inc = draw_inclusion(400, np.random.default_rng(5))
    can = DiracCanaries(inc)
    cfg = _config(**{"dp.sigma": 1.0, "optim.epochs": 3})
    result = fit(cfg, _data(), canaries=can, evaluate_test=False)
    n_rec = 64 + int(inc.sum())
    q = 16 / n_rec
    assert result.trainer.accountant == _ledger(1.0, q, result.trainer.step)
    released = np.array(can._released)  # (steps, m): (C 1{sampled} + N(0, sigma^2 R^2)) / B
    assert released.shape == (result.trainer.step, 400)
    out = released[:, ~inc].ravel()
    assert abs(out.std() / (1.0 * 1.0 / 16) - 1) < 0.05  # noise std sigma R / B
    assert abs(out.mean()) < 4 * (1 / 16) / np.sqrt(out.size)
    extra = released[:, inc].mean() - out.mean()  # included canaries: + C q / B per step on average
    se = (1 / 16) * np.sqrt(1 / released[:, inc].size + 1 / out.size)  # noise std sigma R / B per value
    assert abs(extra - q / 16) < 4 * se and extra > 3 * se
    assert np.mean(can.scores()[inc]) > np.mean(can.scores()[~inc])


def test_validation_split_ema_schedule_and_fraction_clipped(tmp_path):
    from npdpsnn.training.checkpoint import load_network

    cfg = _config(**{"run.validation": 16, "optim.ema": 0.9, "optim.lr_schedule": "cosine", "optim.epochs": 2})
    run = tmp_path / "v"
    result = fit(cfg, _data(), callbacks=[RunRecorder(run)])
    tr = result.trainer
    assert tr.n_train == 48 and len(tr.val_y) == 16
    row = result.metrics[-1]
    for k in ("validation_accuracy", "test_accuracy_ema", "validation_accuracy_ema", "fraction_clipped"):
        assert row[k] is not None and 0.0 <= row[k] <= 1.0, k
    assert tr.optimizer.lr == pytest.approx(cfg.optim.learning_rate(tr.step - 1, 2 * tr.steps_per_epoch))
    assert cfg.optim.learning_rate(0, 10) == 0.1 and cfg.optim.learning_rate(10, 10) == 0.0
    best = result.summary["best_validation_epoch"]
    assert best in (1, 2) and (run / "model_best.h5").is_file()
    if best == 2:
        assert np.array_equal(load_network(run / "model_best.h5").theta, tr.net.theta)
    ema = load_network(run / "model_ema.h5")
    assert np.array_equal(ema.theta, tr.optimizer.ema.astype(np.float32))
    assert not np.array_equal(ema.theta, tr.net.theta)
    # the EMA and the held-out split survive a resume bit for bit
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, _data(), callbacks=[RunRecorder(tmp_path / "w"), _Stop(tr.steps_per_epoch + 1)])
    state = load_checkpoint(tmp_path / "w")
    resumed = fit(cfg, _data(), resume=state)
    assert np.array_equal(resumed.trainer.optimizer.ema, tr.optimizer.ema)
    assert np.array_equal(resumed.network.theta, tr.net.theta)
    with pytest.raises(ConfigError, match="schedule"):
        resume_config(cfg, {"optim.epochs": 3})


def test_fraction_clipped_counts_examples_above_r():
    small = fit(_config(**{"dp.clip": 1e-6, "optim.epochs": 1}), _data(), evaluate_test=False)
    assert small.metrics[0]["fraction_clipped"] == 1.0
    big = fit(_config(**{"dp.clip": 1e6, "optim.epochs": 1}), _data(), evaluate_test=False)
    assert big.metrics[0]["fraction_clipped"] == 0.0


@pytest.mark.parametrize("noise", ["philox", "secure"])
def test_noise_generators_train_and_resume(tmp_path, noise):
    extra = {"dp.noise": noise, "optim.epochs": 2}
    if noise == "secure":
        extra["dp.noise_seed"] = "os"
    cfg = _config(**extra)
    full = fit(cfg, _data())
    assert full.trainer.noise.kind == noise
    run = tmp_path / noise
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, _data(), callbacks=[RunRecorder(run), _Stop(5)])
    resumed = fit(cfg, _data(), resume=load_checkpoint(run))
    if noise == "philox":  # counter-based and seeded: the resumed run is the same run
        assert np.array_equal(resumed.network.theta, full.network.theta)
    else:  # fresh OS entropy on every draw, by design
        assert resumed.trainer.step == full.trainer.step
    with pytest.raises(ConfigError, match="noise_seed os"):
        _config(**{"dp.noise": "secure"})


def test_default_noise_is_numpys_generator_bit_for_bit():
    from npdpsnn.privacy.noise import HostNoise

    t = Trainer(_config(), _data())
    ref = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, 2])))
    assert isinstance(t.noise, HostNoise)
    assert np.array_equal(t.noise.normal(1.5, 100), ref.normal(0.0, 1.5, size=100))


@pytest.mark.parametrize("clipping,k", [("flat", 3), ("normalize", 1), ("per-layer", 2), ("normalize", 2)])
def test_one_example_moves_the_sum_by_at_most_r(clipping, k):
    """Sensitivity with augmentation multiplicity and each clipping kind: removing
    one example (here a wildly scaled one) changes the privatised sum by <= R."""
    data = _data()
    data.train_x[5] *= 1e3
    t = Trainer(_config(**{"dp.clipping": clipping, "dp.augment_mult": k, "dp.clip": 0.7}), data)
    idx = np.arange(16)
    with_it, _, _ = t._gradient_sum(idx)
    without, _, _ = t._gradient_sum(np.delete(idx, 5))
    assert 0 < np.linalg.norm(with_it - without) <= 0.7


def test_augmentation_is_resumable_and_changes_training(tmp_path):
    cfg = _config(**{"dp.augment_mult": 2, "optim.epochs": 2})
    full = fit(cfg, _data())
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, _data(), callbacks=[RunRecorder(tmp_path / "a"), _Stop(5)])
    resumed = fit(cfg, _data(), resume=load_checkpoint(tmp_path / "a"))
    assert np.array_equal(resumed.network.theta, full.network.theta)
    plain = fit(_config(**{"optim.epochs": 2}), _data())
    assert not np.array_equal(plain.network.theta, full.network.theta)


def test_shifts_are_deterministic_and_bounded():
    from npdpsnn.training.augment import shift_image, shifts

    a = shifts(0, 7, np.array([3, 9]), 4)
    assert np.array_equal(a, shifts(0, 7, np.array([3, 9]), 4)) and np.abs(a).max() <= 2
    assert np.array_equal(a[1], shifts(0, 7, np.array([9]), 4)[0])  # independent of the micro-batch
    assert (a[:, 0] == 0).all()
    img = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    assert shift_image(img, 1, 0)[0, 1:].tolist() == img[0, :3].tolist() and (shift_image(img, 1, 0)[0, 0] == 0).all()
