"""The conversion model options in the compiled kernels, against the reference.

The Numba CPU kernels (and the CUDA kernels, in Numba's simulator when there is
no GPU) compute the ReLU ANN, reset by subtraction (with and without
``detach_reset``), per-layer thresholds and bias-free layers; only Poisson
input stays in the reference backend.  As in ``test_kernels_cpu.py``, weights
and inputs are dyadic and thresholds and leaks binary fractions, so forward
passes are exact in float32 and spike trains bit-identical to the reference;
the backward pass agrees up to float32 rounding.  Each case checks logits,
losses, per-example gradients, the fused clipped sum (its norms have no bias
entry when the model has none), input gradients and input VJPs, on both input
gradient paths of the conv layers; and results do not depend on the number of
threads.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_helpers import dyadic_case, engine_settings, model_options, small_specs
from npdpsnn.errors import UserError
from npdpsnn.kernels.program import HIDDEN, kernel_options, unsupported_options
from npdpsnn.model.config import ModelConfig
from npdpsnn.network import Network
from test_kernels_cpu import _flat, compare_backends
from test_kernels_cpu_paths import _backend, _check_paths, _close
from test_kernels_cuda import CUDA_READY, SIM, assert_cuda_matches_reference, cuda_only  # noqa: F401

# Two small networks with average pooling: three and two hidden weight layers.
NET_A = ("4C3S1-A2S2-8C3S1-A2S2-16-10", (1, 10, 10))
NET_B = ("4C5S2-P2S2-16-10", (1, 12, 12))
THS = {NET_A: (0.75, 0.5, 1.0), NET_B: (1.0, 0.5)}
B = 4


def _case(net_def, opts: dict, seed: int = 3, scale: float = 2.0, batch: int = B):
    spec, shape = net_def
    return dyadic_case(spec, shape, opts, seed, scale, batch)


def _check_clipped(net: Network, x: np.ndarray, y: np.ndarray) -> None:
    """The fused clipped sum, norms and losses equal the reference's, for no,
    some and all examples clipped; the norms are those of the reference's
    per-example gradients (no bias entries for a bias-free model)."""
    g_r, _ = net.per_example_grads(x, y, backend="reference")
    norms_r = np.linalg.norm(_flat(g_r, net), axis=1)
    assert norms_r.min() > 0
    for clip in (1e30, float(np.median(norms_r)), 0.25 * norms_r.min()):
        got = net.clipped_grad_sum(x, y, clip, backend="numba")
        want = net.clipped_grad_sum(x, y, clip, backend="reference")
        assert got.total.shape == want.total.shape == (net.num_params,)
        assert np.allclose(got.norms, norms_r, rtol=1e-5, atol=1e-7)
        assert np.abs(got.losses - want.losses).max() <= 1e-6 * (1 + np.abs(want.losses).max())
        assert np.array_equal(got.correct, want.correct)
        _close(got.total, want.total)


def _check_input_vjp(net: Network, x: np.ndarray) -> None:
    d = np.random.default_rng(5).normal(size=(len(x), net.num_classes))
    _close(net.input_vjp(x, d, backend="numba"), net.input_vjp(x, d, backend="reference"))


def check_numba(net: Network, x: np.ndarray, y: np.ndarray) -> None:
    """Every Numba CPU result of ``net`` equals the reference's, on both input
    gradient paths (scatter and GEMM) and both GEMM strategies."""
    assert unsupported_options(net.config) == []
    compare_backends(net, x, y)
    _check_paths(net, x, y, [_backend(sparse_max=1.0, gemm_steps=True), _backend(sparse_max=0.0, gemm_steps=False)])
    _check_clipped(net, x, y)
    _check_input_vjp(net, x)


def _first_layer_learns(net: Network, x: np.ndarray, y: np.ndarray) -> None:
    """The case is not trivial: gradient reaches the first layer."""
    g, _ = net.per_example_grads(x, y, backend="numba")
    first = next(iter(net.params))
    assert np.abs(g[first]).max() > 0, first


# ------------------------------------------------------------------ ReLU ANN
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("net_def", [NET_A, NET_B])
def test_relu_ann(net_def, bias):
    net, x, y = _case(net_def, dict(kind="ann", activation="relu", bias=bias))
    assert any(n.endswith(".bias") for n in net.params) == bias
    check_numba(net, x, y)
    _first_layer_learns(net, x, y)


def test_tanh_ann_without_bias():
    net, x, y = _case(NET_A, dict(kind="ann", bias=False))
    check_numba(net, x, y)


# ------------------------------------------------------------------ reset by subtraction
@pytest.mark.parametrize("surrogate", ["gate", "darctanh", "normal"])
@pytest.mark.parametrize("neuron, detach", [("if", False), ("if", True), ("lif", False), ("lif", True)])
def test_subtract_reset(neuron, detach, surrogate):
    net, x, y = _case(NET_A, dict(reset="subtract", neuron=neuron, leak=0.5, detach_reset=detach,
                                  surrogate=surrogate, T=4))
    check_numba(net, x, y)
    _first_layer_learns(net, x, y)


def test_subtract_reset_differs_from_zero_reset():
    """The option reaches the kernels: with enough input a neuron fires twice in a
    row and the two resets give different logits and gradients."""
    opts = dict(neuron="if", surrogate="darctanh", T=4)
    a, x, y = _case(NET_B, opts, scale=3.0)
    b, _, _ = _case(NET_B, dict(opts, reset="subtract"), scale=3.0)
    assert not np.array_equal(a.forward(x), b.forward(x))
    compare_backends(b, x, y)


# ------------------------------------------------------------------ per-layer thresholds, no bias
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("net_def", [NET_A, NET_B])
def test_layer_thresholds(net_def, reset):
    opts = dict(reset=reset, neuron="lif", leak=0.75, surrogate="darctanh", T=3)
    net, x, y = _case(net_def, dict(opts, thresholds=THS[net_def]))
    check_numba(net, x, y)
    # The same value in every layer is the single threshold, bit for bit.
    one, _, _ = _case(net_def, dict(opts, threshold=0.5))
    same, _, _ = _case(net_def, dict(opts, thresholds=(0.5,) * len(THS[net_def])))
    for u, v in zip(one.clipped_grad_sum(x, y, 0.5), same.clipped_grad_sum(x, y, 0.5), strict=True):
        assert np.array_equal(u, v)
    assert not np.array_equal(net.forward(x), one.forward(x))


@pytest.mark.parametrize("reset, surrogate", [("zero", "gate"), ("zero", "normal"), ("subtract", "darctanh")])
def test_snn_without_bias(reset, surrogate):
    net, x, y = _case(NET_A, dict(bias=False, reset=reset, surrogate=surrogate, neuron="lif", leak=0.5, T=3),
                      scale=3.0)
    assert not any(n.endswith(".bias") for n in net.params)
    check_numba(net, x, y)
    _first_layer_learns(net, x, y)


@pytest.mark.parametrize("detach", [False, True])
def test_converted_snn(detach):
    """The PrivateSNN form: IF neurons, reset by subtraction, per-layer
    thresholds, no bias, average pooling."""
    net, x, y = _case(NET_A, dict(neuron="if", reset="subtract", thresholds=(1.0, 0.75, 0.5), bias=False, T=6,
                                  surrogate="gate", detach_reset=detach), scale=3.0)
    check_numba(net, x, y)
    _first_layer_learns(net, x, y)


# ------------------------------------------------------------------ threads
@pytest.mark.parametrize("opts", [
    dict(kind="ann", activation="relu", bias=False),
    dict(reset="subtract", thresholds=(1.0, 0.75, 0.5), bias=False, T=3, surrogate="normal"),
    dict(reset="subtract", neuron="lif", leak=0.5, detach_reset=True, T=3, surrogate="gate"),
])
def test_one_and_two_threads_give_the_same_bits(opts):
    net, x, y = _case(NET_A, opts, batch=37)  # three chunks of the batch
    one, two = _backend(threads=1), _backend(threads=2)
    assert np.array_equal(net.forward(x, one), net.forward(x, two))
    for u, v in zip(net.clipped_grad_sum(x, y, 0.5, one), net.clipped_grad_sum(x, y, 0.5, two), strict=True):
        assert np.array_equal(u, v)
    g1, g2 = net.per_example_grads(x, y, one), net.per_example_grads(x, y, two)
    assert all(np.array_equal(g1.grads[n], g2.grads[n]) for n in net.params)
    assert np.array_equal(net.input_grads(x, y, one).grads, net.input_grads(x, y, two).grads)


# ------------------------------------------------------------------ random networks
@engine_settings(max_examples=30)
@given(net_spec=small_specs(min_conv=1, dyadic=True), opts=model_options(dyadic=True), data=st.data(),
       seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 2.0, 3.0]))
def test_random_networks_with_options(net_spec, opts, data, seed, scale):
    spec, shape = net_spec
    n_hidden = int(Network.from_spec(spec, shape).program.table[:, HIDDEN].sum())
    opts = dict(opts, bias=data.draw(st.booleans()))
    if opts["kind"] == "ann":
        opts["activation"] = data.draw(st.sampled_from(["tanh", "relu"]))
    else:
        opts["reset"] = data.draw(st.sampled_from(["zero", "subtract"]))
        if n_hidden and data.draw(st.booleans()):
            opts["thresholds"] = tuple(data.draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])) for _ in range(n_hidden))
    net, x, y = dyadic_case(spec, shape, opts, seed, scale, 2)
    compare_backends(net, x, y)
    _check_paths(net, x, y, [_backend(sparse_max=1.0), _backend(sparse_max=0.0, gemm_steps=False)])


# ------------------------------------------------------------------ what stays in the reference
def test_only_poisson_input_is_refused():
    for cfg in (ModelConfig(kind="ann", activation="relu", bias=False),
                ModelConfig(reset="subtract", thresholds=(0.5, 0.6), bias=False, detach_reset=True)):
        assert unsupported_options(cfg) == []
    net = Network.from_spec(*NET_B, reset="subtract", encoding="poisson")
    assert unsupported_options(net.config) == ["encoding=poisson"]
    x = np.zeros((1, *NET_B[1]), np.float32)
    for backend in ("numba", "cuda"):
        with pytest.raises(UserError, match=rf"the {backend} backend does not support encoding=poisson yet "
                                            r"\(.*layer 0.*\); use the reference backend"):
            kernel_options(net.config, net.program.table, backend)
    with pytest.raises(UserError, match="encoding=poisson"):
        net.forward(x, "numba")


def test_kernel_thresholds_per_table_row():
    net = Network.from_spec(*NET_A, thresholds=(0.75, 0.5, 1.0))
    ths = kernel_options(net.config, net.program.table, "numba").thresholds
    assert ths.dtype == np.float32
    assert ths.tolist() == [0.75, 0.0, 0.5, 0.0, 1.0, 0.0]  # conv1, pool, conv2, pool, fc1, output
    default = kernel_options(ModelConfig(threshold=0.3), net.program.table, "numba").thresholds
    assert default.tolist() == [np.float32(0.3), 0, np.float32(0.3), 0, np.float32(0.3), 0]


# ------------------------------------------------------------------ CUDA (a GPU or the simulator)
CUDA_CASES = {
    "relu-ann/no-bias": ("2C3S1-A2S2-4-3", (1, 6, 6), dict(kind="ann", activation="relu", bias=False)),
    "if/subtract/thresholds/no-bias": ("2C3S1P1-A2S1-3C2S2P1-4-3", (1, 6, 6),
                                       dict(reset="subtract", thresholds=(0.75, 0.5, 1.0), bias=False, T=3,
                                            surrogate="darctanh")),
    "lif/subtract/detach/gate": ("2C3S1-P2S2-4-3", (1, 6, 6),
                                 dict(reset="subtract", neuron="lif", leak=0.5, detach_reset=True, T=2)),
}


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA_READY, reason="no GPU: run by test_cuda_options_under_simulator")
@pytest.mark.parametrize("case", list(CUDA_CASES))
def test_cuda_options_match_reference(case, cuda_only):  # noqa: F811 - the fixture
    spec, shape, opts = CUDA_CASES[case]
    assert_cuda_matches_reference(*dyadic_case(spec, shape, opts, 5, 2.0, 3))


@pytest.mark.cuda
@pytest.mark.skipif(CUDA_READY or SIM, reason="the CUDA tests run directly here")
def test_cuda_options_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NPDPSNN_CUDA_THREADS="8")
    tests = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "test_cuda_options_match_reference",
         os.path.abspath(__file__)],
        cwd=tests, env=env, capture_output=True, text=True, timeout=600,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert f"{len(CUDA_CASES)} passed" in out, out[-3000:]
