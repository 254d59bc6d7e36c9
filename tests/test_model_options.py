"""The conversion model options (ModelConfig: activation, reset, thresholds, bias,
encoding): validation, the reference BPTT against finite differences, and the
compiled backends refusing what they do not compute (Poisson input)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine_helpers import central_difference, coordinate_subset, params64
from npdpsnn.errors import UserError
from npdpsnn.kernels import reference as ref
from npdpsnn.kernels.program import kernel_options, unsupported_options
from npdpsnn.model.config import ModelConfig
from npdpsnn.model.encoding import rate_spike, rate_uniform
from npdpsnn.network import Network

H = 1e-6
RTOL, ATOL = 1e-5, 1e-7


def _check(net, seed=0, n_coords=5):
    """Reference BPTT (smooth spikes) against central differences of the loss."""
    p = params64(net, 2.0)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.25, 1.0, net.input_shape)
    y = int(rng.integers(net.num_classes))
    cfg = net.config
    frozen = None
    if cfg.kind == "snn" and cfg.detach_reset:
        frozen = ref.forward_trace(net.layers, p, x, cfg, smooth=True).spikes
    if cfg.kind == "ann" and cfg.activation == "relu":  # away from the kink of relu
        tr = ref.forward_trace(net.layers, p, x, cfg)
        assert min(np.abs(c[0]).min() for c in tr.current if c) > 1e-4

    def f(q):
        return ref.loss_value(net.layers, q, x, y, cfg, smooth=True, frozen_reset=frozen)

    grads, loss = ref.example_grads(net.layers, p, x, y, cfg, smooth=True)
    assert set(grads) == set(p) == set(net.params)
    for name in p:
        for idx in coordinate_subset(p[name].shape, rng, n_coords):
            fd = central_difference(f, p, name, idx, H)
            an = float(grads[name][idx])
            assert abs(fd - an) <= RTOL * (abs(fd) + abs(an)) + ATOL, (name, idx, fd, an)
    # and the input gradient
    dx, _ = ref.example_input_grad(net.layers, p, x, y, cfg, smooth=True)
    if cfg.encoding == "direct":
        for idx in coordinate_subset(x.shape, rng, n_coords):
            e = np.zeros_like(x)
            e[idx] = H
            fd = (ref.loss_value(net.layers, p, x + e, y, cfg, smooth=True, frozen_reset=frozen)
                  - ref.loss_value(net.layers, p, x - e, y, cfg, smooth=True, frozen_reset=frozen)) / (2 * H)
            assert abs(fd - dx[idx]) <= RTOL * (abs(fd) + abs(dx[idx])) + ATOL


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_subtract_reset_and_layer_thresholds_match_finite_differences(neuron, detach):
    net = Network.from_spec("2C3S1-A2S1-4-3", (1, 5, 5), seed=3, kind="snn", neuron=neuron, surrogate="darctanh",
                            T=4, detach_reset=detach, reset="subtract", thresholds=(0.3, 0.7))
    _check(net, seed=1)


def test_bias_free_and_poisson_snn_match_finite_differences():
    net = Network.from_spec("2C3S1-A2S1-3", (1, 5, 5), seed=5, kind="snn", surrogate="normal", T=3, bias=False,
                            encoding="poisson", encoding_seed=9)
    assert not any(n.endswith(".bias") for n in net.params)
    _check(net, seed=2)


@pytest.mark.parametrize("bias", [True, False])
def test_relu_ann_matches_finite_differences(bias):
    net = Network.from_spec("3C3S1-A2S1-5-3", (1, 5, 5), seed=7, kind="ann", activation="relu", bias=bias)
    _check(net, seed=4)


def test_zero_reset_unchanged_by_the_general_formula():
    """reset=zero with one threshold is the paper's network (the default config)."""
    a = Network.from_spec("2C3S1-P2S1-3", (1, 5, 5), seed=1, T=3)
    b = Network.from_spec("2C3S1-P2S1-3", (1, 5, 5), seed=1, T=3, reset="zero", thresholds=(0.5,))
    x = np.random.default_rng(0).uniform(0, 1, (4, 1, 5, 5))
    np.testing.assert_array_equal(a.forward(x, "reference"), b.forward(x, "reference"))


def test_poisson_stream_is_reproducible_and_rate_coded():
    i = np.arange(5000, dtype=np.int64)
    u = rate_uniform(3, 7, i)
    np.testing.assert_array_equal(u, rate_uniform(3, 7, i))
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.02
    assert not np.array_equal(u, rate_uniform(3, 8, i)) and not np.array_equal(u, rate_uniform(4, 7, i))
    assert rate_uniform(3, 7, 11) == u[11]  # scalar and array forms agree
    x = np.full(5000, 0.3)
    rates = np.mean([rate_spike(x, rate_uniform(0, t, i)) for t in range(40)])
    assert abs(rates - 0.3) < 0.01
    assert set(np.unique(rate_spike(-x, u))) <= {-1.0, 0.0}


def test_config_validation_and_json_round_trip():
    cfg = ModelConfig(reset="subtract", thresholds=[0.5, 1.5], bias=False, encoding="poisson")
    assert cfg.thresholds == (0.5, 1.5)
    again = ModelConfig(**json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    for bad in ({"reset": "soft"}, {"activation": "gelu"}, {"encoding": "latency"}, {"thresholds": []},
                {"thresholds": [1.0, float("nan")]}, {"thresholds": "0.5"}, {"bias": 1},
                {"kind": "ann", "encoding": "poisson"}, {"encoding_seed": -1}):
        with pytest.raises(UserError):
            ModelConfig(**bad)
    with pytest.raises(UserError, match="hidden weight layers"):
        Network.from_spec("2C3S1-A2S1-4-3", (1, 5, 5), thresholds=(0.5,))


@pytest.mark.parametrize("opts", [{"kind": "ann", "activation": "relu"}, {"reset": "subtract"},
                                  {"thresholds": (0.5, 0.6)}, {"bias": False}, {"encoding": "poisson"}])
def test_compiled_backends_refuse_only_poisson_input(opts):
    """The kernels compute every option but Poisson input (``test_kernel_options.py``)."""
    net = Network.from_spec("2C3S1-A2S1-4-3", (1, 5, 5), **opts)
    poisson = opts.get("encoding") == "poisson"
    assert bool(unsupported_options(net.config)) == poisson
    if poisson:
        with pytest.raises(UserError, match="reference backend"):
            kernel_options(net.config, net.program.table, "numba")
    else:
        kernel_options(net.config, net.program.table, "numba")
    assert not unsupported_options(ModelConfig())
