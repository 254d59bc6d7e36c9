"""Input gradients ``dL/dx`` and the vector-Jacobian product ``Network.input_vjp``.

The float64 reference is checked against central finite differences in ``x``
(SNNs through the surrogate's smooth primitive, as in ``test_gradcheck.py``;
the reset frozen for ``detach_reset``; the ANN directly).  The Numba kernels
are checked against the reference on dyadic weights and inputs (exact forward
passes, see ``test_kernels_cpu.py``); the CUDA kernels in ``test_kernels_cuda.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine_helpers import (
    dyadic_case, engine_settings, kink_distance, maxpool_gap, model_options, params64, small_specs,
)
from npdpsnn.errors import UserError
from npdpsnn.kernels import reference as ref
from npdpsnn.network import Network

H = 1e-6
RTOL, ATOL = 1e-5, 1e-7
MARGIN = 1e-4


def _fd_input(f, x: np.ndarray, index: tuple) -> float:
    xp, xm = x.copy(), x.copy()
    xp[index] += H
    xm[index] -= H
    return (f(xp) - f(xm)) / (2 * H)


def _smooth_case(spec, shape, opts, seed, scale=2.5):
    """A float64 network and an input away from the gate's kinks and max-pool ties."""
    net = Network.from_spec(spec, shape, seed=seed, **opts)
    p = params64(net, scale)
    rng = np.random.default_rng(seed + 1)
    x = rng.uniform(-0.25, 1.0, shape)
    y = int(rng.integers(net.num_classes))
    base = ref.forward_trace(net.layers, p, x, net.config, smooth=True)
    ok = maxpool_gap(net.layers, base) > MARGIN
    if net.config.kind == "snn" and net.config.surrogate == "gate":
        ok = ok and kink_distance(base, net.config) > MARGIN
    return net, p, x, y, base, ok, rng


def check_input_grad(net, p, x, y, base, rng, n_coords=12) -> None:
    """``example_input_grad`` and ``example_input_vjp`` of the smooth network
    against central differences of the loss and of ``v . logits``."""
    cfg, layers = net.config, net.layers
    frozen = base.spikes if (cfg.kind == "snn" and cfg.detach_reset) else None

    def loss(xx):
        return ref.loss_value(layers, p, xx, y, cfg, smooth=True, frozen_reset=frozen)

    v = rng.normal(size=net.num_classes)

    def v_logits(xx):
        return float(v @ ref.forward_trace(layers, p, xx, cfg, smooth=True, frozen_reset=frozen).logits)

    dx, l0 = ref.example_input_grad(layers, p, x, y, cfg, smooth=True)
    assert l0 == pytest.approx(loss(x), abs=1e-14) and dx.shape == x.shape
    vjp = ref.example_input_vjp(layers, p, x, v, cfg, smooth=True)
    flat = rng.choice(x.size, min(n_coords, x.size), replace=False)
    for i in flat:
        idx = np.unravel_index(int(i), x.shape)
        for f, an in ((loss, dx[idx]), (v_logits, vjp[idx])):
            fd = _fd_input(f, x, idx)
            assert abs(fd - an) <= RTOL * (abs(fd) + abs(an)) + ATOL, (idx, fd, an)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("surrogate", ["gate", "darctanh", "normal"])
@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_reference_snn_input_grad_matches_finite_differences(neuron, surrogate, detach_reset):
    opts = dict(kind="snn", neuron=neuron, surrogate=surrogate, T=3, leak=0.5, detach_reset=detach_reset)
    for seed in range(20):
        net, p, x, y, base, ok, rng = _smooth_case("2C3S1P1-P2S2-3C2S1-4-3", (2, 6, 6), opts, seed)
        if ok:
            break
    assert ok
    dx, _ = ref.example_input_grad(net.layers, p, x, y, net.config, smooth=True)
    assert np.abs(dx).max() > 1e-4  # the check is not vacuous
    check_input_grad(net, p, x, y, base, rng, n_coords=20)


@pytest.mark.parametrize("spec, shape", [("3C3S2P1-A2S1-5-4", (1, 7, 7)), ("4-3", (2, 3, 3)), ("3", (1, 2, 3))])
def test_reference_ann_input_grad_matches_finite_differences(spec, shape):
    net, p, x, y, base, ok, rng = _smooth_case(spec, shape, dict(kind="ann"), 3, 2.0)
    assert ok
    check_input_grad(net, p, x, y, base, rng, n_coords=1000)  # every coordinate


@engine_settings(max_examples=25)
@given(net_spec=small_specs(min_conv=0), opts=model_options(), seed=st.integers(0, 2**16))
def test_reference_input_grad_random_networks(net_spec, opts, seed):
    spec, shape = net_spec
    net, p, x, y, base, ok, rng = _smooth_case(spec, shape, opts, seed)
    assume(ok)
    check_input_grad(net, p, x, y, base, rng, n_coords=6)


# ------------------------------------------------------------------ Numba against the reference
def _dyadic_case(spec, shape, opts, seed, scale=2.0, B=3):
    return dyadic_case(spec, shape, opts, seed, scale, B)


def assert_close(a: np.ndarray, b: np.ndarray) -> None:
    """Max abs error <= 1e-5 max|b| + 1e-6 (float32 rounding of the backward pass)."""
    assert a.shape == b.shape
    assert np.abs(a.astype(np.float64) - b).max() <= 1e-5 * np.abs(b).max() + 1e-6


def compare_input_grads(net, x, y, backend: str) -> None:
    dx_k, l_k = net.input_grads(x, y, backend=backend)
    dx_r, l_r = net.input_grads(x, y, backend="reference")
    assert dx_k.dtype == np.float32 and dx_r.dtype == np.float64
    assert_close(dx_k, dx_r)
    assert np.array_equal(l_k, net.per_example_grads(x, y, backend=backend).losses)
    assert np.abs(l_k - l_r).max() <= 1e-6 * (1 + np.abs(l_r).max())
    d = np.random.default_rng(len(x)).normal(size=(len(x), net.num_classes))
    assert_close(net.input_vjp(x, d, backend=backend), net.input_vjp(x, d, backend="reference"))


@engine_settings(max_examples=60)
@given(net_spec=small_specs(min_conv=0, dyadic=True), opts=model_options(dyadic=True), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1.0, 2.0, 3.0]), B=st.integers(1, 3))
def test_numba_input_grads_match_reference(net_spec, opts, seed, scale, B):
    spec, shape = net_spec
    net, x, y = _dyadic_case(spec, shape, opts, seed, scale, B)
    compare_input_grads(net, x, y, "numba")


@pytest.mark.parametrize("spec, shape", [("3", (1, 3, 4)), ("4-3", (2, 3, 3)), ("3C3S1-2", (1, 5, 5)),
                                         ("2C2S2P1-A2S1-3C2S1-P2S1-4-3", (1, 8, 8))])
@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_numba_input_grads_fixed(spec, shape, kind):
    net, x, y = _dyadic_case(spec, shape, dict(kind=kind, neuron="lif", leak=0.5, surrogate="darctanh", T=3), 5)
    compare_input_grads(net, x, y, "numba")


# ------------------------------------------------------------------ the VJP and the chain rule
@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_input_vjp_one_hot_chain_equals_input_grads(backend):
    """``dL/dx = sum_k (p_k - 1{k = y}) dlogit_k/dx``: the VJP with one-hot
    ``dlogits`` gives the Jacobian rows, and their chain the input gradient."""
    net, x, y = _dyadic_case("2C3S1-P2S1-5-3", (1, 6, 6), dict(T=3, surrogate="normal"), 2)
    logits = net.forward(x, "reference")
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlog = p - np.eye(net.num_classes)[y]
    rows = [net.input_vjp(x, np.tile(np.eye(net.num_classes)[k], (len(x), 1)), backend=backend)
            for k in range(net.num_classes)]
    chain = sum(dlog[:, k, None, None, None] * rows[k] for k in range(net.num_classes))
    dx, _ = net.input_grads(x, y, backend=backend)
    assert np.abs(dx).max() > 0
    tol = 1e-12 if backend == "reference" else 1e-5
    assert np.abs(chain - dx).max() <= tol * np.abs(dx).max() + tol
    assert np.abs(net.input_vjp(x, dlog, backend=backend) - dx).max() <= tol * np.abs(dx).max() + tol


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_input_grads_edge_cases(backend):
    net = Network.from_spec("2C3S1-4-3", (1, 5, 5), seed=0)
    x0, y0 = np.zeros((0, 1, 5, 5), np.float32), np.zeros(0, np.int64)
    dx, losses = net.input_grads(x0, y0, backend=backend)
    assert dx.shape == (0, 1, 5, 5) and losses.shape == (0,)
    assert net.input_vjp(x0, np.zeros((0, 3)), backend=backend).shape == (0, 1, 5, 5)
    x = np.ones((2, 1, 5, 5), np.float32)
    for bad in (np.zeros((2, 4)), np.zeros(3), np.full((2, 3), np.nan), np.full((2, 3), "a")):
        with pytest.raises(UserError):
            net.input_vjp(x, bad, backend=backend)
    with pytest.raises(UserError):
        net.input_grads(x, np.array([0, 3]), backend=backend)
    # Zero upstream gradient: zero input gradient.
    assert np.array_equal(net.input_vjp(x, np.zeros((2, 3)), backend=backend), np.zeros(x.shape))
