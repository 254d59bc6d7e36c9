"""The Numba CPU kernels against the float64 NumPy reference.

Weights are rounded to multiples of 1/64, inputs to multiples of 1/8, and the
threshold and leak are binary fractions, so every current and membrane is exact
in float32 and the spike trains of both backends are bit-identical; what is
left is float32 rounding in the backward pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_helpers import dyadic_case, engine_settings, model_options, small_specs
from npdpsnn.model.spec import NET1, NET2
from npdpsnn.network import Network

LOSS_ATOL = 1e-6


def _flat(grads: dict, net: Network) -> np.ndarray:
    """Per-example grads as ``(B, P)`` in ``theta`` order."""
    return np.concatenate([np.asarray(grads[n], np.float64).reshape(len(grads[n]), -1) for n in net.params], axis=1)


_case = dyadic_case


def assert_grads_close(g_n: dict, g_r: dict, net: Network) -> float:
    """Max abs error <= 1e-5 max|g| + 1e-6 per parameter; returns the largest
    fraction of that tolerance used."""
    worst = 0.0
    for name, view in net.params.items():
        a, b = g_n[name], g_r[name]
        assert a.dtype == np.float32 and a.shape == (b.shape[0], *view.shape), name
        scale = float(np.abs(b).max())
        err = float(np.abs(a.astype(np.float64) - b).max())
        assert err <= 1e-5 * scale + 1e-6, (name, err, scale)
        worst = max(worst, err / (1e-5 * scale + 1e-6))
    return worst


def compare_backends(net, x, y) -> float:
    lg_n, lg_r = net.forward(x, "numba"), net.forward(x, "reference")
    assert lg_n.shape == lg_r.shape == (len(x), net.num_classes)
    # SNN: exact spikes, only the float64 summation order differs; ANN: float32 tanh.
    tol = 1e-6 if net.config.kind == "ann" else 1e-9
    assert np.abs(lg_n - lg_r).max() <= tol * (1 + np.abs(lg_r).max())
    g_n, l_n = net.per_example_grads(x, y, backend="numba")
    g_r, l_r = net.per_example_grads(x, y, backend="reference")
    assert l_n.shape == l_r.shape == (len(x),)
    if net.config.kind == "ann":  # float32 tanh: relative float32 rounding of the logits
        assert np.all(np.abs(l_n - l_r) <= LOSS_ATOL * (1 + np.abs(l_r)))
    else:
        assert np.abs(l_n - l_r).max() <= 1e-9
    # The losses are the cross-entropy of the forward logits.
    lse = np.log(np.exp(lg_n - lg_n.max(1, keepdims=True)).sum(1)) + lg_n.max(1)
    assert np.allclose(l_n, lse - lg_n[np.arange(len(y)), y], atol=1e-9, rtol=0)
    return assert_grads_close(g_n, g_r, net)


@engine_settings(max_examples=100)
@given(
    net_spec=small_specs(min_conv=0, dyadic=True),
    opts=model_options(dyadic=True),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1.0, 2.0, 3.0]),
    B=st.integers(1, 3),
)
def test_numba_matches_reference(net_spec, opts, seed, scale, B):
    spec, shape = net_spec
    net, x, y = _case(spec, shape, opts, seed, scale, B)
    compare_backends(net, x, y)


@pytest.mark.parametrize(
    "spec, shape",
    [
        ("3", (1, 3, 4)),  # the output layer alone reads the input
        ("4-3", (2, 3, 3)),
        ("3C3S1-2", (1, 5, 5)),  # output right after a conv
        ("2C3S1-P2S2-3", (2, 6, 5)),  # output right after a pool
        ("2C2S2P1-A2S1-3C2S1-P2S1-4-3", (1, 8, 8)),
    ],
)
@pytest.mark.parametrize("neuron, detach", [("if", False), ("lif", True)])
def test_numba_matches_reference_fixed(spec, shape, neuron, detach):
    opts = dict(neuron=neuron, surrogate="darctanh", T=3, leak=0.5, detach_reset=detach)
    net, x, y = _case(spec, shape, opts, 5, 2.0, 3)
    compare_backends(net, x, y)


@pytest.mark.parametrize("spec", [NET1, NET2])
def test_paper_nets_on_28x28(spec):
    net, x, y = _case(spec, (1, 28, 28), dict(T=3), 0, 2.0, 4)
    x = np.clip(x, 0.0, 1.0)
    compare_backends(net, x, y)
    g_n, _ = net.per_example_grads(x, y, backend="numba")
    # Spikes reach the output: the hidden layers get gradient.
    assert np.abs(g_n["conv1.weight"]).max() > 0 and np.abs(g_n["fc1.weight"]).max() > 0


def test_per_example_grads_do_not_depend_on_the_batch():
    net, x, y = _case("2C3S1P1-P2S2-4-3", (1, 6, 6), dict(neuron="lif", leak=0.5, T=4), 1, 2.0, 5)
    g_all, l_all = net.per_example_grads(x, y)
    for i in range(len(x)):
        g_i, l_i = net.per_example_grads(x[i : i + 1], y[i : i + 1])
        assert l_i[0] == l_all[i]
        for name in g_all:
            assert np.array_equal(g_i[name][0], g_all[name][i])


# ------------------------------------------------------------------ clipping (eq. 11)
CLIP_SPEC, CLIP_SHAPE = "2C3S1-P2S1-5-3", (2, 6, 6)


def _factor(norms, clip):
    from npdpsnn.privacy.mechanism import clip_factor

    return np.array([clip_factor(float(n), clip) for n in norms])


@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_clipped_grad_sum(kind):
    net, x, y = _case(CLIP_SPEC, CLIP_SHAPE, dict(kind=kind, T=3), 2, 2.0, 6)
    g_n, l_n = net.per_example_grads(x, y, backend="numba")
    g_r, _ = net.per_example_grads(x, y, backend="reference")
    flat_n, flat_r = _flat(g_n, net), _flat(g_r, net)
    norms_r = np.linalg.norm(flat_r, axis=1)
    assert norms_r.min() > 0
    clips = {
        "none clipped": 1e30,
        "all clipped": 0.25 * norms_r.min(),
        "some clipped": float(np.median(norms_r)),
    }
    for label, clip in clips.items():
        out_n = net.clipped_grad_sum(x, y, clip, backend="numba")
        out_r = net.clipped_grad_sum(x, y, clip, backend="reference")
        (s_n, nrm_n, loss_n), (s_r, nrm_r, loss_r) = out_n[:3], out_r[:3]
        if len(out_n) > 3:  # optional 4th output: whether each example is classified correctly
            correct = np.argmax(net.forward(x, "reference"), axis=1) == y
            assert np.array_equal(np.asarray(out_n[3], bool), correct)
            assert np.array_equal(np.asarray(out_r[3], bool), correct)
        assert s_n.shape == s_r.shape == (net.num_params,), label
        assert np.allclose(nrm_n, norms_r, rtol=1e-5, atol=1e-7) and np.allclose(nrm_r, norms_r, rtol=1e-12)
        assert np.abs(loss_n - loss_r).max() <= LOSS_ATOL and np.array_equal(loss_n, l_n)
        scale = _factor(norms_r, clip)
        expected = (flat_r * scale[:, None]).sum(0)
        assert np.allclose(s_r, expected, rtol=1e-12, atol=1e-15), label
        tol = 1e-5 * np.abs(expected).max() + 1e-6
        assert np.abs(s_n - expected).max() <= tol, label
        # Numba's clipped sum equals its own per-example grads clipped and summed.
        scale_n = _factor(np.linalg.norm(flat_n, axis=1), clip)
        assert np.allclose(s_n, (flat_n * scale_n[:, None]).sum(0), rtol=1e-6, atol=1e-9), label
        if label == "none clipped":
            assert np.allclose(s_n, flat_n.sum(0), rtol=1e-12, atol=1e-12)
        if label == "all clipped":
            # Every clipped gradient has norm ``clip``; the sum at most B * clip.
            assert np.linalg.norm(s_n) <= len(x) * clip * (1 + 1e-6)
            assert np.allclose(s_n, (flat_n / np.linalg.norm(flat_n, axis=1)[:, None]).sum(0) * clip, rtol=1e-5)


@pytest.mark.parametrize("clip", [0.0, -1.0, float("nan")])
def test_clip_must_be_positive(clip):
    from npdpsnn.errors import UserError

    net, x, y = _case("4-3", (1, 2, 2), {}, 0, 1.0, 2)
    with pytest.raises(UserError):
        net.clipped_grad_sum(x, y, clip)
