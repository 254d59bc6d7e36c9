"""PrivateSNN conversion pieces: threshold balancing (the converted SNN tends to its
ANN as T grows), Dirichlet soft labels, the leakage scorer and the energy count
on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from npdpsnn.conversion.balance import (as_ann, convert, layer_scales, rescale_thresholds, unit_thresholds,
                                        with_T)
from npdpsnn.conversion.energy import ann_macs, energy
from npdpsnn.conversion.impressions import class_similarity, dirichlet_soft_labels, pixel_box
from npdpsnn.conversion.leakage import class_means, invert_classes, score_images
from npdpsnn.conversion.optimize import InputSearch, optimize_inputs
from npdpsnn.errors import UserError
from npdpsnn.network import Network


def _tiny_ann():
    """x (2 pixels) -> 2 relu units -> 2 logits, no bias: hand-checkable."""
    ann = Network.from_spec("2-2", (1, 1, 2), kind="ann", activation="relu", bias=False)
    ann.params["fc1.weight"][:] = [[1.0, 0.5], [0.25, 1.0]]
    ann.params["fc2.weight"][:] = [[1.0, -1.0], [-0.5, 2.0]]
    return ann


def test_balancing_on_a_hand_checked_case():
    ann = _tiny_ann()
    x = np.array([[[[0.8, 0.4]]], [[[0.2, 0.6]]]], np.float32)
    # pre-activations: [1.0, 0.6] and [0.5, 0.65] -> lambda_1 = max = 1.0
    assert layer_scales(ann, x, percentile=100) == [pytest.approx(1.0)]
    conv = convert(ann, x, T=1000, percentile=100)
    assert conv.thresholds == (pytest.approx(1.0),)
    assert conv.snn.config.reset == "subtract" and conv.snn.config.neuron == "if"
    # IF with subtraction: rate = I / theta up to 1/T; logits = W2 * rates * lambda
    ann_logits = ann.forward(x, "reference")
    np.testing.assert_allclose(ann_logits, [[0.4, 0.7], [-0.15, 1.05]], atol=1e-6)
    np.testing.assert_allclose(conv.snn.forward(x, "reference"), ann_logits, atol=3 * 2.0 / 1000)


def test_converted_network_tends_to_its_ann_with_T():
    ann = Network.from_spec("3C3S1-A2S2-6-4", (1, 6, 6), kind="ann", activation="relu", bias=True, seed=2)
    ann.params["conv1.bias"][:] = 0.05
    x = np.random.default_rng(0).uniform(0, 1, (6, 1, 6, 6)).astype(np.float32)
    conv = convert(ann, x, T=50, percentile=100)
    ref = ann.forward(x, "reference")
    errs = [np.abs(with_T(conv.snn, T).forward(x, "reference") - ref).max() for T in (25, 200, 1000)]
    assert errs[2] < errs[0] and errs[2] < 0.02 * np.abs(ref).max()
    # read back as an ANN (rates relu(I) / theta), the converted weights are the ANN itself:
    # the logits keep the ANN's scale (not lambda_H times it)
    back = as_ann(conv.snn)
    assert back.config.kind == "ann" and back.config.thresholds is None
    np.testing.assert_allclose(back.forward(x, "reference"), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert abs(np.log(conv.lambdas[-1])) > 0.5  # ignoring the thresholds would have rescaled the logits


def test_unit_thresholds_keep_the_spikes():
    ann = Network.from_spec("3C3S1-A2S2-6-4", (1, 6, 6), kind="ann", activation="relu", bias=True, seed=3)
    x = np.random.default_rng(1).uniform(0, 4, (8, 1, 6, 6)).astype(np.float32)
    snn = convert(ann, x, T=30, percentile=100).snn
    unit = unit_thresholds(snn)
    assert unit.config.thresholds == (1.0, 1.0)
    np.testing.assert_allclose(unit.forward(x, "reference"), snn.forward(x, "reference"), atol=1e-4)
    back = rescale_thresholds(unit, snn.config.thresholds)
    np.testing.assert_allclose(back.theta, snn.theta, rtol=1e-6, atol=1e-7)
    with pytest.raises(UserError):
        rescale_thresholds(snn, (1.0,))


def test_inversion_of_converted_weights_as_ann_is_the_anns():
    """Class inversion from the converted weights read as an ANN is the same
    optimisation as from the ANN (the fair measurement of class leakage)."""
    ann = Network.from_spec("3C3S1-A2S2-6-4", (1, 6, 6), kind="ann", activation="relu", bias=False, seed=4)
    x = np.random.default_rng(2).uniform(0, 3, (10, 1, 6, 6)).astype(np.float32)
    conv = convert(ann, x, T=20, percentile=100)
    search = InputSearch(iterations=20, lr=0.05, tau=1.0)
    xa, ya = invert_classes(ann, 1, (0.0, 3.0), search, seed=0)
    xc, yc = invert_classes(as_ann(conv.snn), 1, (0.0, 3.0), search, seed=0)
    assert np.array_equal(ya, yc)
    np.testing.assert_allclose(xc, xa, atol=1e-3)


def test_conversion_refuses_what_it_cannot_convert():
    x = np.zeros((2, 1, 6, 6), np.float32)
    with pytest.raises(UserError, match="ReLU"):
        convert(Network.from_spec("3C3S1-A2S2-4", (1, 6, 6), kind="ann"), x, T=10)
    with pytest.raises(UserError, match="average pooling"):
        convert(Network.from_spec("3C3S1-P2S2-4", (1, 6, 6), kind="ann", activation="relu"), x, T=10)
    with pytest.raises(UserError, match="never activates"):
        convert(Network.from_spec("3C3S1-A2S2-4", (1, 6, 6), kind="ann", activation="relu", bias=False), x, T=10)


def test_class_similarity_and_dirichlet_soft_labels():
    w = np.eye(3, 5) * 2.0
    w[2, 0] = 2.0  # class 2 shares a direction with class 0
    s = class_similarity(w, floor=0.01)
    np.testing.assert_allclose(np.diag(s), 1.01)
    assert s[1, 0] == pytest.approx(0.01) and s[2, 0] == pytest.approx(1 / np.sqrt(2) / (1) * 1 + 0.01)
    rng = np.random.default_rng(0)
    y = np.repeat([0, 2], 4000)
    q = dirichlet_soft_labels(s, y, (1.0, 0.1), rng)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    # E[Dir(beta * s_k)] = s_k / sum(s_k), whatever beta
    for k in (0, 2):
        np.testing.assert_allclose(q[y == k].mean(axis=0), s[k] / s[k].sum(), atol=0.02)
    # beta = 0.1 (every second impression of a class) gives sparser labels than beta = 1
    qk = q[y == 0]
    assert qk[1::2].max(axis=1).mean() > qk[0::2].max(axis=1).mean()
    with pytest.raises(UserError):
        class_similarity(np.zeros((3, 4)))


def test_leakage_scorer_known_answers():
    rng = np.random.default_rng(1)
    norm = {"mean": 0.5, "std": 0.25}
    x = rng.uniform(-2, 2, (30, 1, 16, 16))
    y = np.arange(30) % 3
    means = class_means(x, y, 3)
    judge = Network.from_spec("3", (1, 16, 16), kind="ann")
    judge.theta[:] = 0.0  # uniform softmax: confidence 1/3, argmax class 0
    s = score_images(means, np.arange(3), judge, means, norm)
    assert s.judge_confidence == pytest.approx(1 / 3) and s.judge_accuracy == pytest.approx(1 / 3)
    assert s.ssim_to_class_mean == pytest.approx(1.0) and 0 < s.ssim_margin < 1
    # a judge whose weights are the class means recognises them
    judge.params["fc1.weight"][:] = 50 * means.reshape(3, -1)
    assert score_images(means, np.arange(3), judge, means, norm).judge_accuracy == 1.0


def test_input_search_reaches_its_targets():
    net = Network.from_spec("3", (1, 2, 2), kind="ann", seed=0)
    t = np.array([[0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    x = optimize_inputs(net, t, (-50.0, 50.0), InputSearch(iterations=300, lr=0.5, tau=1.0), np.random.default_rng(0))
    p = np.exp(net.forward(x, "reference"))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, t, atol=0.05)
    assert pixel_box({"mean": 0.5, "std": 0.5}) == (-1.0, 1.0)


def test_energy_counts_on_a_known_case():
    net = Network.from_spec("16C7S1-A2S2-32C4S1-A2S2-32-10", (1, 28, 28), kind="ann")
    assert ann_macs(net) == [16 * 22 * 22 * 49, 32 * 8 * 8 * 16 * 16, 32 * 512, 10 * 32]
    snn = Network.from_spec("2-2", (1, 1, 2), T=4, bias=False, reset="subtract", thresholds=(1.0,))
    snn.params["fc1.weight"][:] = [[1.0, 0.0], [0.0, 0.5]]
    x = np.array([[[[1.0, 1.0]]]])  # unit 1 spikes every step, unit 2 every second step: 6 spikes
    rep = energy(snn, x)
    assert rep.snn_macs == 4 and rep.snn_acs == 6 * 2  # layer 0 as MACs once; spikes x fan-out 2
    assert rep.ann_macs == 8 and rep.ratio == pytest.approx(8 * 4.6 / (4 * 4.6 + 12 * 0.9))


def test_surrogate_inversion_starts_where_the_gate_has_no_gradient():
    """From noise far below threshold the gate surrogate gives no input gradient
    (the inversion would stay at its start: a fake 'no leakage'); the default
    darctanh surrogate moves it."""
    snn = Network.from_spec("2-2", (1, 1, 2), T=5, bias=False, reset="subtract", thresholds=(40.0,))
    snn.params["fc1.weight"][:] = [[1.0, 0.0], [0.0, 1.0]]
    snn.params["fc2.weight"][:] = [[1.0, -1.0], [-1.0, 1.0]]
    search = InputSearch(iterations=5, lr=0.1, tau=1.0)
    start = np.random.default_rng(np.random.SeedSequence([0, 0x1A7])).uniform(0.0, 1.0, (2, 1, 1, 2))
    x_gate, _ = invert_classes(snn, 1, (0.0, 1.0), search, surrogate=None)
    np.testing.assert_allclose(x_gate, start, atol=1e-6)  # V <= 5/40 of the threshold: no gradient
    x_soft, _ = invert_classes(snn, 1, (0.0, 1.0), search)
    assert np.abs(x_soft - start).max() > 0.1
