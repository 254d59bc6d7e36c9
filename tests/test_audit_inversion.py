"""Analytic recovery of the input from a first fully connected layer's gradient."""

from __future__ import annotations

import numpy as np
import pytest

from npdpsnn import Network
from npdpsnn.audit import recover_fc_input
from npdpsnn.errors import UserError


def _grads(kind: str, **model):
    net = Network.from_spec("32-10", input_shape=(1, 8, 8), kind=kind, seed=3, **model)
    x = np.random.default_rng(5).random((4, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 3, 7, 9])
    return net.per_example_grads(x, y, backend="reference"), x


@pytest.mark.parametrize(
    "kind,model",
    [
        ("snn", dict(neuron="if", surrogate="gate", T=5)),
        ("snn", dict(neuron="lif", surrogate="darctanh", T=3)),
        ("snn", dict(neuron="if", surrogate="normal", T=7)),
        ("ann", {}),
    ],
)
def test_recovery_is_exact_for_each_example(kind, model):
    g, x = _grads(kind, **model)
    res = recover_fc_input(g.grads, input_shape=(1, 8, 8))
    assert res.x.shape == x.shape and res.rows.shape == (4, 1)
    np.testing.assert_allclose(res.x, x, rtol=1e-12, atol=1e-15)
    # the row used is the one with the largest |dL/db_i|
    np.testing.assert_array_equal(res.rows[:, 0], np.argmax(np.abs(g.grads["fc1.bias"]), axis=1))


def test_several_rows_and_single_gradient():
    g, x = _grads("snn")
    res = recover_fc_input(g, n_rows=5)  # the (grads, losses) tuple is accepted too
    np.testing.assert_allclose(res.x, x.reshape(4, -1), rtol=1e-12, atol=1e-15)
    one = recover_fc_input({"fc1.weight": g.grads["fc1.weight"][2], "fc1.bias": g.grads["fc1.bias"][2]})
    assert one.x.shape == (64,) and one.rows.shape == (1,)
    np.testing.assert_allclose(one.x, x[2].ravel(), rtol=1e-12, atol=1e-15)


def test_least_squares_averages_noise():
    g, x = _grads("ann")
    rng = np.random.default_rng(0)
    gw = g.grads["fc1.weight"] + rng.normal(0, 1e-3, g.grads["fc1.weight"].shape)
    gb = g.grads["fc1.bias"]
    err1 = np.abs(recover_fc_input({"fc1.weight": gw, "fc1.bias": gb}).x - x.reshape(4, -1)).mean()
    err8 = np.abs(recover_fc_input({"fc1.weight": gw, "fc1.bias": gb}, n_rows=8).x - x.reshape(4, -1)).mean()
    assert err8 < err1


@pytest.mark.parametrize(
    "grads,kwargs",
    [
        ({"fc1.weight": np.ones((3, 4))}, {}),
        ({"fc1.weight": np.ones((3, 4)), "fc1.bias": np.ones(4)}, {}),
        ({"fc1.weight": np.ones((3, 4)), "fc1.bias": np.zeros(3)}, {}),
        ({"fc1.weight": np.ones((3, 4)), "fc1.bias": np.ones(3)}, {"n_rows": 4}),
        ({"fc1.weight": np.ones((3, 4)), "fc1.bias": np.ones(3)}, {"input_shape": (1, 3, 3)}),
        ({"fc1.weight": np.full((3, 4), np.nan), "fc1.bias": np.ones(3)}, {}),
        ({"conv1.weight": np.ones((2, 1, 3, 3)), "conv1.bias": np.ones(2)}, {"layer": "conv1"}),
        ([1, 2], {}),
    ],
)
def test_bad_input_raises_user_error(grads, kwargs):
    with pytest.raises(UserError):
        recover_fc_input(grads, **kwargs)
