"""The alternative paths of the Numba CPU kernels (``npdpsnn/kernels/cpu.py``).

Each path is checked against the float64 NumPy reference (dyadic weights and
inputs: exact forward passes, see ``test_kernels_cpu.py``) and against the other
path of the same choice:

* the input gradient of a conv layer: event-driven scatter of the non-zero
  entries of dL/dI (``sparse_max = 1``) or GEMM + col2im (``sparse_max = 0``);
* the conv GEMMs (currents, weight and input gradients): one per time step or
  one over all steps;
* spike layers that are all silent or all firing, and ``T = 1``;
* the vectorised float32 ``tanh`` (within half an ulp of the exact value) and the
  fixed-order float64 norm of the clipping;
* the in-kernel profile, which must not change any result.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

from engine_helpers import dyadic_case, engine_settings, model_options, small_specs
from npdpsnn.engine import Engine
from npdpsnn.kernels import cpu
from npdpsnn.kernels.numba_backend import NumbaBackend
from npdpsnn.model.spec import NET2
from test_kernels_cpu import assert_grads_close, compare_backends


def _backend(sparse_max: float | None = None, gemm_steps: bool | None = None, threads: int = 1) -> NumbaBackend:
    be = NumbaBackend(Engine(threads=threads))
    if sparse_max is not None:
        be.sparse_max = sparse_max
    be.gemm_steps = gemm_steps
    return be


def _close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float32 rounding of the backward pass."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.abs(a - b).max(initial=0.0) <= 1e-5 * np.abs(b).max(initial=0.0) + 1e-6


def _check_paths(net, x, y, backends) -> None:
    """Every backend matches the reference (gradients, input gradients, losses) and
    the backends match each other."""
    g_r, l_r = net.per_example_grads(x, y, backend="reference")
    dx_r, _ = net.input_grads(x, y, backend="reference")
    outs = []
    for be in backends:
        g, losses = net.per_example_grads(x, y, backend=be)
        assert_grads_close(g, g_r, net)
        assert np.abs(losses - l_r).max() <= 1e-6 * (1 + np.abs(l_r).max())
        dx, _ = net.input_grads(x, y, backend=be)
        _close(dx, dx_r)
        outs.append((g, dx))
    for g, dx in outs[1:]:
        for name in g:
            _close(g[name], outs[0][0][name])
        _close(dx, outs[0][1])


# ------------------------------------------------------------------ conv input gradient: scatter or GEMM
@engine_settings(max_examples=40)
@given(net_spec=small_specs(min_conv=1, dyadic=True), opts=model_options(dyadic=True), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1.0, 2.0, 3.0]), B=st.integers(1, 3))
def test_scatter_and_gemm_input_gradients_match_the_reference(net_spec, opts, seed, scale, B):
    spec, shape = net_spec
    net, x, y = dyadic_case(spec, shape, opts, seed, scale, B)
    _check_paths(net, x, y, [_backend(sparse_max=1.0), _backend(sparse_max=0.0)])


@pytest.mark.parametrize("spec, shape", [
    ("3C3S2P1-2C2S1P1-4-3", (2, 7, 7)),  # stride 2 and padding: partial windows at every border
    ("2C3S1-P2S2-3C2S1-P2S1-4-3", (1, 9, 9)),
    ("4C1S1-3C3S1P1-3", (2, 5, 4)),  # 1x1 kernel, non-square input
])
@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_input_gradient_paths_fixed(spec, shape, kind):
    opts = dict(kind=kind, neuron="lif", leak=0.5, surrogate="darctanh", T=3)
    net, x, y = dyadic_case(spec, shape, opts, 7, 2.0, 3)
    _check_paths(net, x, y, [_backend(sparse_max=1.0), _backend(sparse_max=0.0), _backend()])


# ------------------------------------------------------------------ conv GEMMs: per step or over all steps
@pytest.mark.parametrize("spec, shape, T", [("2C3S1-P2S2-3C2S1-P2S1-4-3", (1, 9, 9), 4),
                                            ("3C3S2P1-2C2S1P1-4-3", (2, 7, 7), 1)])
def test_gemm_per_step_and_over_all_steps(spec, shape, T):
    net, x, y = dyadic_case(spec, shape, dict(T=T, surrogate="normal"), 3, 2.0, 3)
    # sparse_max = 0: the input gradients are GEMMs too (per step, or one over all steps)
    _check_paths(net, x, y, [_backend(gemm_steps=True, sparse_max=0.0), _backend(gemm_steps=False, sparse_max=0.0),
                             _backend(gemm_steps=False, sparse_max=1.0)])
    for steps in (True, False):
        lg = net.forward(x, _backend(gemm_steps=steps))
        assert np.abs(lg - net.forward(x, "reference")).max() <= 1e-9 * (1 + np.abs(lg).max())


@pytest.mark.parametrize("steps", [True, False])
def test_both_gemm_strategies_are_independent_of_the_thread_count(steps):
    net, x, y = dyadic_case("2C3S1-P2S2-3C2S1-4-3", (1, 8, 8), dict(T=3), 1, 2.0, 37)
    one = net.clipped_grad_sum(x, y, 0.5, backend=_backend(gemm_steps=steps, threads=1))
    two = net.clipped_grad_sum(x, y, 0.5, backend=_backend(gemm_steps=steps, threads=2))
    for u, v in zip(one, two, strict=True):
        assert np.array_equal(u, v)


# ------------------------------------------------------------------ spike extremes and T = 1
@pytest.mark.parametrize("bias", [-64.0, 64.0])  # every hidden neuron silent / firing at every step
@pytest.mark.parametrize("T", [1, 3])
def test_silent_and_saturated_spike_layers(bias, T):
    for surrogate in ("gate", "darctanh"):
        net, x, y = dyadic_case("3C3S1-P2S2-2C2S1-4-3", (1, 8, 8), dict(T=T, surrogate=surrogate), 4, 2.0, 3)
        for s in net.slots:
            if s.name.endswith(".bias") and s.name != "fc2.bias":
                net.theta[s.offset : s.offset + s.size] = bias
        spikes = net.forward(x, "reference")
        assert np.all(np.isfinite(spikes))
        compare_backends(net, x, y)
        _check_paths(net, x, y, [_backend(sparse_max=1.0), _backend(sparse_max=0.0)])
        g, _ = net.per_example_grads(x, y)
        if surrogate == "gate":  # |V - V_th| >= 1/2 everywhere: no gradient below the output layer
            assert np.abs(g["conv1.weight"]).max() == 0.0


@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_net2_on_28x28_with_one_step(kind):
    net, x, y = dyadic_case(NET2, (1, 28, 28), dict(kind=kind, T=1), 0, 2.0, 3)
    x = np.clip(x, 0.0, 1.0)
    compare_backends(net, x, y)
    _check_paths(net, x, y, [_backend(sparse_max=1.0), _backend(sparse_max=0.0)])


# ------------------------------------------------------------------ tanh and the clipping norm
@njit(cache=False)
def _tanh_all(x, out):
    for i in range(x.shape[0]):
        out[i] = cpu._tanh(x[i])


def test_tanh_within_half_an_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(200_000) * s for s in (1e-4, 1e-3, 0.1, 1.0, 4.0, 12.0)])
    edges = [0.0, 1e-30, 1e-8, 9.999e-4, 1e-3, 1.0001e-3, 0.5, 1.0, 9.0, 9.01, 9.25, 10.0, 88.0, 3.4e38]
    x = np.concatenate([x, edges, np.negative(edges)]).astype(np.float32)
    out = np.empty_like(x)
    _tanh_all(x, out)
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)
    assert np.max(np.abs(out - exact) / ulp) <= 0.501
    assert np.array_equal(np.signbit(out), np.signbit(x))  # odd, -0.0 stays -0.0
    neg = np.empty_like(x)
    _tanh_all(-x, neg)
    assert np.array_equal(neg, -out)
    assert np.all(out[np.abs(x) >= 9.1] == np.sign(x[np.abs(x) >= 9.1]))


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 1000, 25770])
def test_clipping_norm_is_float64_in_a_fixed_order(n):
    g = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 3.0
    lanes = np.zeros(64)
    s = cpu._sumsq(g, lanes)
    assert s == cpu._sumsq(g.copy(), np.full(64, np.nan))  # the lanes are scratch space
    exact = math.fsum(float(v) ** 2 for v in g)
    assert abs(s - exact) <= 1e-13 * exact


# ------------------------------------------------------------------ profile
def test_profile_changes_no_result():
    net, x, y = dyadic_case("2C3S1-P2S2-3C2S1-4-3", (1, 8, 8), dict(T=2), 2, 2.0, 20)
    be = _backend()
    plain = net.clipped_grad_sum(x, y, 0.5, backend=be)
    be.profile = True
    prof = net.clipped_grad_sum(x, y, 0.5, backend=be)
    for u, v in zip(plain, prof, strict=True):
        assert np.array_equal(u, v)
    p = be.last_profile
    assert p.shape == (len(x), cpu.profile_slots(len(net.layers)))
    assert np.all(p >= 0) and p.sum() > 0
    assert len(cpu.PH_NAMES) == cpu.N_PHASES and len(cpu.G_NAMES) == cpu.N_GLOBAL
