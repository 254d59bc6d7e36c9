"""Regression test of PrivateSNN fine-tuning: surrogate-gradient BPTT on a converted
SNN must not destroy it.  Balanced thresholds far from 1 made the gradient through
reset by subtraction explode (factor ``1 - theta g'`` per step) and the SNN fell to
chance after one epoch (MNIST: 98 % -> 19 %); fine-tuning now runs in the unit-threshold
form of the same network."""

from __future__ import annotations

import numpy as np
import pytest

from npdpsnn.conversion.balance import convert, thresholds_of, with_T
from npdpsnn.conversion.finetune import finetune, teacher_labels
from npdpsnn.data.dataset import Dataset
from npdpsnn.training import TrainConfig, fit


def _bars(n: int, seed: int):
    """Three classes of 1x8x8 images: a bright row band, a bright column band, or a
    bright diagonal, plus noise; pixels up to 4 so the first threshold is well above 1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.uniform(0, 1.0, (n, 1, 8, 8))
    for i, k in enumerate(y):
        if k == 0:
            x[i, 0, 2:5, :] += 3.0
        elif k == 1:
            x[i, 0, :, 2:5] += 3.0
        else:
            x[i, 0][np.eye(8, dtype=bool) | np.eye(8, k=1, dtype=bool)] += 3.0
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def converted():
    x, y = _bars(150, 0)
    tx, ty = _bars(60, 1)
    data = Dataset("mnist", x, y, tx, ty, 3, (1, 8, 8), {"mean": 0.0, "std": 1.0}, "synthetic bars")
    cfg = TrainConfig.from_values("mnist", {
        "net": "4C3S1-A2S2-8-3", "model.kind": "ann", "model.activation": "relu", "model.bias": False,
        "dp.enabled": False, "dp.sampling": "shuffle", "optim.batch_size": 25, "optim.lr": 0.05,
        "optim.momentum": 0.9, "optim.epochs": 3, "run.seed": 0, "run.physical_batch": 25})
    ann = fit(cfg, data, backend="reference", evaluate_test=False).network
    conv = convert(ann, x, T=10, percentile=99.9)
    return ann, conv, data, x


def test_one_finetuning_epoch_keeps_a_converted_snn(converted):
    ann, conv, data, x = converted
    assert thresholds_of(conv.snn)[0] > 3  # the regime where the reset path exploded
    labels = teacher_labels(ann, x)
    snn = with_T(conv.snn, 10)
    before = float(np.mean(snn.predict(x, "reference") == labels))
    assert before > 0.9
    tuned = finetune(snn, data, x, labels, epochs=1, lr=0.005, batch_size=25, seed=0)
    assert thresholds_of(tuned) == pytest.approx(thresholds_of(snn))  # written back in the original form
    assert np.all(np.isfinite(tuned.theta)) and not np.array_equal(tuned.theta, snn.theta)
    after = float(np.mean(tuned.predict(x, "reference") == labels))
    assert after >= before - 0.03, (before, after)


def test_teacher_labels_are_the_teachers_predictions(converted):
    ann, _, _, x = converted
    np.testing.assert_array_equal(teacher_labels(ann, x[:20]), ann.predict(x[:20], "reference"))
