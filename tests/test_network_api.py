"""The public ``Network`` API: parameter names, PyTorch layouts, flatten order,
initialisation, parameter assignment, input validation, predict."""

from __future__ import annotations

import numpy as np
import pytest

from npdpsnn.errors import UserError
from npdpsnn.model.spec import NET2
from npdpsnn.network import Network

NET2_PARAMS = [
    ("conv1.weight", (16, 1, 7, 7)),
    ("conv1.bias", (16,)),
    ("conv2.weight", (32, 16, 4, 4)),
    ("conv2.bias", (32,)),
    ("fc1.weight", (32, 512)),
    ("fc1.bias", (32,)),
    ("fc2.weight", (10, 32)),
    ("fc2.bias", (10,)),
]


def test_param_names_order_and_layouts():
    net = Network.from_spec(NET2, (1, 28, 28))
    assert [(k, v.shape) for k, v in net.params.items()] == NET2_PARAMS
    assert net.num_params == net.theta.size == 25770
    assert net.num_classes == 10
    assert net.theta.dtype == np.float32 and net.theta.flags.c_contiguous
    # The named parameters are views of theta, laid end to end in this order.
    off = 0
    for name, view in net.params.items():
        assert np.shares_memory(view, net.theta)
        assert np.array_equal(view.reshape(-1), net.theta[off : off + view.size])
        off += view.size
    assert off == net.theta.size


def test_pool_layers_have_no_params():
    net = Network.from_spec("3C3S1P1-A2S2-2C2S1-P2S1-4-2", (2, 8, 8))
    assert list(net.params) == [
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
    ]
    assert net.params["conv2.weight"].shape == (2, 3, 2, 2)
    assert net.params["fc1.weight"].shape == (4, 2 * 2 * 2)  # 8x8 -> 8x8 -> 4x4 -> 3x3 -> 2x2


def _manual_ann_logits(net, x):
    """tanh ANN by hand in PyTorch conventions: conv ``(out, in, kh, kw)``, no
    padding, stride 1; fc ``(out, in)`` on the (C, H, W)-flattened activation."""
    w, b = net.params["conv1.weight"].astype(np.float64), net.params["conv1.bias"].astype(np.float64)
    o, c, k, _ = w.shape
    out = []
    for xi in x.astype(np.float64):
        ho, wo = xi.shape[1] - k + 1, xi.shape[2] - k + 1
        y = np.zeros((o, ho, wo))
        for oc in range(o):
            for i in range(ho):
                for j in range(wo):
                    y[oc, i, j] = b[oc] + np.sum(w[oc] * xi[:, i : i + k, j : j + k])
        a = np.tanh(y).reshape(-1)  # (C, H, W) order
        out.append(net.params["fc1.weight"] @ a + net.params["fc1.bias"])
    return np.array(out)


@pytest.mark.parametrize("spec, shape", [("2C1S1-3", (2, 2, 3)), ("2C2S1-3", (2, 3, 4)), ("3C2S1-4", (1, 4, 3))])
def test_conv_layout_and_flatten_order(spec, shape):
    net = Network.from_spec(spec, shape, kind="ann", seed=3)
    rng = np.random.default_rng(0)
    for name, view in net.params.items():  # hand-set, asymmetric weights
        net.params[name] = rng.normal(size=view.shape)
    x = rng.normal(size=(3, *shape)).astype(np.float32)
    expected = _manual_ann_logits(net, x)
    assert np.allclose(net.forward(x, "reference"), expected, rtol=1e-6, atol=1e-6)
    assert np.allclose(net.forward(x, "numba"), expected, rtol=1e-5, atol=1e-5)
    # A wrong flatten order would give something else.
    wrong = net.params["fc1.weight"].copy()
    net.params["fc1.weight"] = wrong.reshape(wrong.shape[0], net.layers[0].out_shape[0], -1).transpose(0, 2, 1).reshape(
        wrong.shape
    )
    assert not np.allclose(net.forward(x, "numba"), expected, rtol=1e-3, atol=1e-3)


def test_fc_gradient_layout():
    """Single output layer "3" on a (2, 2, 2) input: dL/dW = (softmax - onehot) x^T
    with x flattened in (C, H, W) order, in PyTorch's (out, in) layout."""
    net = Network.from_spec("3", (2, 2, 2), seed=1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 2, 2, 2)).astype(np.float32)
    y = np.array([2, 0])
    for backend in ("numba", "reference"):
        grads, losses = net.per_example_grads(x, y, backend=backend)
        assert grads["fc1.weight"].shape == (2, 3, 8) and grads["fc1.bias"].shape == (2, 3)
        for i in range(2):
            z = net.params["fc1.weight"].astype(np.float64) @ x[i].reshape(-1) + net.params["fc1.bias"]
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            d = p - np.eye(3)[y[i]]
            assert np.allclose(grads["fc1.weight"][i], np.outer(d, x[i].reshape(-1)), atol=1e-6), backend
            assert np.allclose(grads["fc1.bias"][i], d, atol=1e-6), backend
            assert losses[i] == pytest.approx(-np.log(p[y[i]]), abs=1e-6)


# ------------------------------------------------------------------ initialisation
def test_kaiming_uniform_bounds():
    net = Network.from_spec(NET2, (1, 28, 28), seed=0)
    fan_in = {"conv1": 1 * 7 * 7, "conv2": 16 * 4 * 4, "fc1": 512, "fc2": 32}
    for name, v in net.params.items():
        bound = 1.0 / np.sqrt(fan_in[name.split(".")[0]])
        assert np.abs(v).max() <= bound * (1 + 1e-6), name
        if v.size >= 500:  # looks like U(-b, b): reaches the bound, std b / sqrt(3)
            assert np.abs(v).max() >= 0.95 * bound, name
            assert abs(v.std() - bound / np.sqrt(3)) <= 0.1 * bound / np.sqrt(3), name
            assert abs(v.mean()) <= 0.1 * bound, name


def test_init_gain_scales_the_same_draws():
    base = Network.from_spec(NET2, (1, 28, 28), seed=3)
    for gain in (0.5, 2.0):  # powers of two: the scaled float32 draws are exact multiples
        scaled = Network(NET2, (1, 28, 28), base.config, seed=3, init_gain=gain)
        np.testing.assert_array_equal(scaled.theta, gain * base.theta)
    odd = Network(NET2, (1, 28, 28), base.config, seed=3, init_gain=1.7)
    np.testing.assert_allclose(odd.theta, 1.7 * base.theta.astype(np.float64), rtol=1e-6)


def test_seed_determinism():
    a = Network.from_spec(NET2, (1, 28, 28), seed=5)
    b = Network.from_spec(NET2, (1, 28, 28), seed=5)
    c = Network.from_spec(NET2, (1, 28, 28), seed=6)
    assert np.array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, c.theta)
    # Two networks never share parameter memory.
    assert not np.shares_memory(a.theta, b.theta)


# ------------------------------------------------------------------ assignment
def test_bias_assignment_changes_forward():
    net = Network.from_spec("4C3S1-P2S2-5-3", (1, 6, 6), seed=2)
    x = np.random.default_rng(2).uniform(0, 1, (4, 1, 6, 6)).astype(np.float32)
    before = net.forward(x)
    old = net.params["fc2.bias"].copy()
    v = np.array([0.0, 0.0, 100.0], np.float32)
    net.params["fc2.bias"][:] = v  # in place
    after = net.forward(x)
    assert np.allclose(after - before, v - old, atol=1e-5)  # logits are linear in the output bias
    assert np.array_equal(net.predict(x), [2, 2, 2, 2])
    net.params["fc2.bias"] = np.array([100.0, 0.0, 0.0])  # copy-in
    assert np.array_equal(net.predict(x), [0, 0, 0, 0])
    assert np.array_equal(net.predict(x, backend="reference"), [0, 0, 0, 0])
    assert net.params["fc2.bias"].dtype == np.float32 and np.shares_memory(net.params["fc2.bias"], net.theta)


@pytest.mark.parametrize(
    "value", [np.zeros(4), np.zeros((3, 1)), np.array([0.0, np.nan, 0.0]), np.array([np.inf, 0.0, 0.0])]
)
def test_bad_assignment(value):
    net = Network.from_spec("5-3", (1, 2, 2))
    before = net.theta.copy()
    with pytest.raises(UserError):
        net.params["fc2.bias"] = value
    assert np.array_equal(net.theta, before)


def test_param_names_are_fixed():
    net = Network.from_spec("5-3", (1, 2, 2))
    with pytest.raises(KeyError):
        net.params["fc3.bias"] = np.zeros(3)
    with pytest.raises(TypeError):
        del net.params["fc1.bias"]
    assert len(net.params) == 4


# ------------------------------------------------------------------ validation
@pytest.fixture(scope="module")
def small_net():
    return Network.from_spec("2C3S1-4-3", (1, 5, 5), seed=0)


def _good(net, b=2):
    return np.zeros((b, 1, 5, 5), np.float32), np.zeros(b, np.int64)


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((2, 5, 5)),  # no channel axis
        np.zeros((2, 2, 5, 5)),  # wrong channels
        np.zeros((2, 1, 5, 4)),
        np.full((2, 1, 5, 5), np.nan),
        np.full((2, 1, 5, 5), np.inf),
        np.full((2, 1, 5, 5), "a"),
    ],
)
def test_bad_inputs(small_net, x):
    y = np.zeros(len(x), np.int64)
    with pytest.raises(UserError):
        small_net.forward(x)
    with pytest.raises(UserError):
        small_net.per_example_grads(x, y)
    with pytest.raises(UserError):
        small_net.predict(x)


@pytest.mark.parametrize(
    "y",
    [
        np.array([0, 3]),  # out of range
        np.array([-1, 0]),
        np.array([0.0, 1.0]),  # not integers
        np.array([0, 1, 2]),  # wrong length
        np.array([[0], [1]]),
    ],
)
def test_bad_labels(small_net, y):
    x, _ = _good(small_net)
    for backend in ("numba", "reference"):
        with pytest.raises(UserError):
            small_net.per_example_grads(x, y, backend=backend)
        with pytest.raises(UserError):
            small_net.clipped_grad_sum(x, y, 1.0, backend=backend)


def test_bad_backend(small_net):
    x, y = _good(small_net)
    with pytest.raises(UserError, match="backend"):
        small_net.forward(x, backend="gpu")
    with pytest.raises(UserError):
        small_net.per_example_grads(x, y, backend="torch")


def test_nan_parameters_rejected_by_per_example_grads():
    net = Network.from_spec("2C3S1-4-3", (1, 5, 5), seed=0)
    x, y = _good(net)
    net.params["fc1.weight"][0, 0] = np.nan  # in place: bypasses the assignment check
    with pytest.raises(UserError):
        net.per_example_grads(x, y)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kind="cnn"),
        dict(neuron="alif"),
        dict(surrogate="sigmoid"),
        dict(T=0),
        dict(T=2.5),
        dict(T=True),
        dict(leak=1.5),
        dict(leak=-0.1),
        dict(threshold=float("nan")),
    ],
)
def test_bad_options(kw):
    with pytest.raises(UserError):
        Network.from_spec("4-3", (1, 2, 2), **kw)


def test_bad_spec_is_user_error():
    with pytest.raises(UserError):
        Network.from_spec("4C9S1-3", (1, 5, 5))


# ------------------------------------------------------------------ predict
@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_predict_is_argmax_of_forward(kind):
    net = Network.from_spec("3C3S1-P2S1-6-4", (1, 6, 6), kind=kind, seed=9)
    net.theta *= 3
    x = np.random.default_rng(9).uniform(0, 1, (7, 1, 6, 6)).astype(np.float32)
    logits = net.forward(x)
    assert logits.shape == (7, 4) and logits.dtype == np.float64
    assert np.array_equal(net.predict(x), np.argmax(logits, axis=1))
    assert np.array_equal(net.predict(x, batch_size=3), np.argmax(logits, axis=1))
    assert np.array_equal(net.predict(x, backend="reference"), np.argmax(net.forward(x, "reference"), axis=1))
    assert net.predict(x[:0]).shape == (0,)


# ------------------------------------------------------------------ edge cases
@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_empty_batch(backend):
    net = Network.from_spec("2C3S1-4-3", (1, 5, 5), seed=0)
    x, y = np.zeros((0, 1, 5, 5), np.float32), np.zeros(0, np.int64)
    assert net.forward(x, backend).shape == (0, 3)
    grads, losses = net.per_example_grads(x, y, backend=backend)
    assert grads["conv1.weight"].shape == (0, 2, 1, 3, 3) and losses.shape == (0,)
    out = net.clipped_grad_sum(x, y, 1.0, backend=backend)
    assert np.array_equal(out[0], np.zeros(net.num_params)) and out[1].shape == (0,)


def test_nan_parameters_rejected_by_clipped_grad_sum():
    net = Network.from_spec("2C3S1-4-3", (1, 5, 5), seed=0)
    x, y = np.ones((2, 1, 5, 5), np.float32), np.zeros(2, np.int64)
    net.params["fc1.weight"][0, 0] = np.nan
    with pytest.raises(UserError):
        net.clipped_grad_sum(x, y, 1.0)
