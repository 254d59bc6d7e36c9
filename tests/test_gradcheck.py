"""Gradient checks of the float64 reference BPTT (``npdpsnn.kernels.reference``).

With ``smooth=True`` the spike function is the surrogate's smooth primitive
``g`` (``g' =`` the surrogate of eqs. 4-6), so the BPTT gradient with the
surrogate is the *true* gradient of the smooth network's loss and must match
central finite differences.  For ``detach_reset`` the differentiated function is
the loss with the reset factor ``(1 - o[t-1])`` frozen at its base-point value.
The ANN baseline (tanh, one step) is checked the same way.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, target
from hypothesis import strategies as st

from engine_helpers import (
    central_difference,
    coordinate_subset,
    engine_settings,
    kink_distance,
    maxpool_gap,
    model_options,
    params64,
    rel_err,
    small_specs,
)
from npdpsnn.kernels import reference as ref
from npdpsnn.network import Network

H = 1e-6  # finite-difference step (float64)
RTOL, ATOL = 1e-5, 1e-7
MARGIN = 1e-4  # minimal distance of a membrane to a gate kink / of a max-pool near-tie


def _setup(spec, shape, opts, seed, scale):
    net = Network.from_spec(spec, shape, seed=seed, **opts)
    p = params64(net, scale)
    rng = np.random.default_rng(seed + 1)
    x = rng.uniform(-0.25, 1.0, shape)
    y = int(rng.integers(net.num_classes))
    return net, p, x, y, rng


def _admissible(net, p, x) -> tuple[bool, ref.Trace]:
    """Base point away from the gate's kinks and from max-pool near-ties."""
    cfg = net.config
    base = ref.forward_trace(net.layers, p, x, cfg, smooth=True)
    ok = maxpool_gap(net.layers, base) > MARGIN
    if cfg.kind == "snn" and cfg.surrogate == "gate":
        ok = ok and kink_distance(base, cfg) > MARGIN
    return ok, base


def gradcheck(net, p, x, y, rng, base, n_coords=6) -> dict[str, float]:
    """Compare ``example_grads(smooth=True)`` with central differences on a subset
    of coordinates of every parameter; returns the max relative error per name."""
    cfg, layers = net.config, net.layers
    frozen = base.spikes if (cfg.kind == "snn" and cfg.detach_reset) else None

    def f(q):
        return ref.loss_value(layers, q, x, y, cfg, smooth=True, frozen_reset=frozen)

    grads, loss = ref.example_grads(layers, p, x, y, cfg, smooth=True)
    # Freezing the reset at its own base value changes nothing at the base point.
    assert loss == pytest.approx(f(p), abs=1e-14)
    assert loss == pytest.approx(ref.loss_value(layers, p, x, y, cfg, smooth=True), abs=1e-14)
    assert set(grads) == set(p)
    worst = {}
    for name in p:
        assert grads[name].shape == p[name].shape
        worst[name] = 0.0
        for idx in coordinate_subset(p[name].shape, rng, n_coords):
            fd = central_difference(f, p, name, idx, H)
            an = float(grads[name][idx])
            assert abs(fd - an) <= RTOL * (abs(fd) + abs(an)) + ATOL, (name, idx, fd, an)
            if abs(fd) + abs(an) > 1e-3:  # relative error where the gradient is not tiny
                worst[name] = max(worst[name], rel_err(fd, an))
    return worst


# ------------------------------------------------------------------ random networks
@engine_settings(max_examples=100)
@given(
    net_spec=small_specs(min_conv=1),
    opts=model_options(kinds=("snn",)),
    seed=st.integers(0, 2**16),
    scale=st.floats(2.0, 3.0),
)
def test_snn_bptt_matches_finite_differences(net_spec, opts, seed, scale):
    spec, shape = net_spec
    net, p, x, y, rng = _setup(spec, shape, opts, seed, scale)
    ok, base = _admissible(net, p, x)
    assume(ok)
    worst = gradcheck(net, p, x, y, rng, base, n_coords=6)
    target(max(worst.values()), label="max relative error")


@engine_settings(max_examples=50)
@given(net_spec=small_specs(min_conv=0), seed=st.integers(0, 2**16), scale=st.floats(1.0, 3.0))
def test_ann_backprop_matches_finite_differences(net_spec, seed, scale):
    spec, shape = net_spec
    net, p, x, y, rng = _setup(spec, shape, dict(kind="ann"), seed, scale)
    ok, base = _admissible(net, p, x)
    assume(ok)
    worst = gradcheck(net, p, x, y, rng, base, n_coords=6)
    target(max(worst.values()), label="max relative error")


# ------------------------------------------------------------------ fixed networks
# A fixed small net for every neuron / surrogate / reset combination, with all
# the hidden gradients required to be non-trivial (the check is not vacuous).
FIXED_SPEC, FIXED_SHAPE = "2C3S1P1-P2S2-3C2S1-4-3", (2, 6, 6)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("surrogate", ["gate", "darctanh", "normal"])
@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_fixed_net_all_configs(neuron, surrogate, detach_reset):
    opts = dict(kind="snn", neuron=neuron, surrogate=surrogate, T=3, leak=0.5, detach_reset=detach_reset)
    for seed in range(20):  # the first admissible draw
        net, p, x, y, rng = _setup(FIXED_SPEC, FIXED_SHAPE, opts, seed, 2.5)
        ok, base = _admissible(net, p, x)
        if ok:
            break
    assert ok
    grads, _ = ref.example_grads(net.layers, p, x, y, net.config, smooth=True)
    for name in grads:  # every layer gets gradient
        assert np.abs(grads[name]).max() > 1e-4, name
    gradcheck(net, p, x, y, rng, base, n_coords=8)


def test_fixed_net_ann_with_avgpool():
    net, p, x, y, rng = _setup("3C3S2P1-A2S1-5-4", (1, 7, 7), dict(kind="ann"), 3, 2.0)
    ok, base = _admissible(net, p, x)
    assert ok
    worst = gradcheck(net, p, x, y, rng, base, n_coords=1000)  # every coordinate
    assert set(worst) == {"conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


def test_detach_reset_changes_the_gradient():
    """The reset path matters: with and without it the gradients differ, and the
    non-detached gradient does *not* match the frozen-reset finite differences."""
    opts = dict(kind="snn", neuron="if", surrogate="darctanh", T=4)
    net, p, x, y, rng = _setup("3C3S1-4-3", (1, 5, 5), opts, 0, 2.5)
    layers = net.layers
    g_full, _ = ref.example_grads(layers, p, x, y, net.config, smooth=True)
    net_d = Network.from_spec("3C3S1-4-3", (1, 5, 5), seed=0, detach_reset=True, **opts)
    g_det, _ = ref.example_grads(layers, p, x, y, net_d.config, smooth=True)
    diff = np.abs(g_full["conv1.weight"] - g_det["conv1.weight"]).max()
    assert diff > 1e-3 * np.abs(g_full["conv1.weight"]).max()
    # The output layer does not see the reset path.
    assert np.allclose(g_full["fc2.weight"], g_det["fc2.weight"], rtol=0, atol=1e-15)


# ------------------------------------------------------------------ item d
@pytest.mark.parametrize("neuron, surrogate, detach", [("if", "normal", False), ("lif", "darctanh", False)])
def test_summed_per_example_grads_equal_gradient_of_summed_loss(neuron, surrogate, detach):
    opts = dict(kind="snn", neuron=neuron, surrogate=surrogate, T=3, detach_reset=detach)
    net = Network.from_spec("2C3S1-P2S1-3", (1, 5, 5), seed=4, **opts)
    p = params64(net, 2.5)
    rng = np.random.default_rng(7)
    B = 3
    x = rng.uniform(-0.25, 1.0, (B, 1, 5, 5))
    y = rng.integers(0, 3, B)
    cfg = net.config
    grads, losses = ref.per_example_grads(net.layers, p, x, y, cfg, smooth=True)
    for i in range(B):
        assert losses[i] == pytest.approx(ref.loss_value(net.layers, p, x[i], y[i], cfg, smooth=True), abs=1e-14)
        g_i, _ = ref.example_grads(net.layers, p, x[i], int(y[i]), cfg, smooth=True)
        for name in grads:
            # the batched reference sums in another order than a batch of one (BLAS)
            np.testing.assert_allclose(grads[name][i], g_i[name], rtol=1e-12, atol=1e-14)

    def total(q):
        return sum(ref.loss_value(net.layers, q, x[i], y[i], cfg, smooth=True) for i in range(B))

    for name in p:
        gsum = grads[name].sum(axis=0)
        for idx in coordinate_subset(p[name].shape, rng, 5):
            fd = central_difference(total, p, name, idx, H)
            assert abs(fd - gsum[idx]) <= RTOL * (abs(fd) + abs(gsum[idx])) + ATOL, (name, idx, fd, gsum[idx])
