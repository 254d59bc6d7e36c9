"""Pinned membrane and spike traces of IF (eq. 2) and LIF (eq. 14) neurons,
computed by hand, and the output layer (eq. 7: logits = sum_t I_out[t] / T).

    V[t] = lambda * V[t-1] * (1 - o[t-1]) + I[t],   o[t] = 1{V[t] >= V_th}

with lambda = 1 for IF.  The output layer has no membrane: it neither spikes nor
resets, its currents are averaged over the T steps.
"""

from __future__ import annotations

import numpy as np
import pytest

from npdpsnn.kernels import reference as ref
from npdpsnn.network import Network

T = 4
TH = 0.5
# Hidden layer "3": one input pixel x = 1, currents I = W x + b = (0.3, 0.5, 0.45).
W1 = np.array([[0.3], [0.5], [0.25]])
B1 = np.array([0.0, 0.0, 0.2])
# Output layer "2".
W2 = np.array([[1.0, 2.0, 4.0], [-1.0, 0.5, 0.0]])
B2 = np.array([0.25, -0.5])
X = np.ones((1, 1, 1, 1))

# IF (eq. 2, no leak), V_th = 0.5:
#   I = 0.3 : V = 0.3, 0.6 -> spike, reset: 0 + 0.3 = 0.3, 0.6 -> spike
#   I = 0.5 : V = 0.5 -> spike (V == V_th spikes), reset: 0.5 -> spike, ... every step
#   I = 0.45: V = 0.45, 0.9 -> spike, 0.45, 0.9 -> spike
IF_V = [[0.3, 0.5, 0.45], [0.6, 0.5, 0.9], [0.3, 0.5, 0.45], [0.6, 0.5, 0.9]]
IF_O = [[0, 1, 0], [1, 1, 1], [0, 1, 0], [1, 1, 1]]
# Output currents I_out[t] = W2 o[t] + b2: (2.25, 0), (7.25, -1), (2.25, 0), (7.25, -1);
# logits = mean = (4.75, -0.5)  (= W2 (0.5, 1, 0.5) + b2).
IF_IOUT = [[2.25, 0.0], [7.25, -1.0], [2.25, 0.0], [7.25, -1.0]]
IF_LOGITS = [4.75, -0.5]

# LIF (eq. 14), lambda = 0.2, V_th = 0.5:
#   I = 0.3 : V = 0.3, 0.2*0.3 + 0.3 = 0.36, 0.2*0.36 + 0.3 = 0.372, 0.2*0.372 + 0.3 = 0.3744
#   I = 0.5 : V = 0.5 -> spike every step (the reset zeroes the leak term)
#   I = 0.45: V = 0.45, 0.2*0.45 + 0.45 = 0.54 -> spike, reset: 0.45, 0.54 -> spike
LIF_V = [[0.3, 0.5, 0.45], [0.36, 0.5, 0.54], [0.372, 0.5, 0.45], [0.3744, 0.5, 0.54]]
LIF_O = [[0, 1, 0], [0, 1, 1], [0, 1, 0], [0, 1, 1]]
# I_out: (2.25, 0), (6.25, 0), (2.25, 0), (6.25, 0); logits = (4.25, 0).
LIF_IOUT = [[2.25, 0.0], [6.25, 0.0], [2.25, 0.0], [6.25, 0.0]]
LIF_LOGITS = [4.25, 0.0]


def _net(neuron, leak=0.2, **kw):
    net = Network.from_spec("3-2", (1, 1, 1), neuron=neuron, T=T, threshold=TH, leak=leak, **kw)
    net.params["fc1.weight"] = W1
    net.params["fc1.bias"] = B1
    net.params["fc2.weight"] = W2
    net.params["fc2.bias"] = B2
    return net


@pytest.mark.parametrize(
    "neuron, v, o, i_out, logits",
    [("if", IF_V, IF_O, IF_IOUT, IF_LOGITS), ("lif", LIF_V, LIF_O, LIF_IOUT, LIF_LOGITS)],
)
def test_pinned_traces(neuron, v, o, i_out, logits):
    net = _net(neuron)
    tr = ref.forward_trace(net.layers, net.params, X[0], net.config)
    assert len(tr.membrane[0]) == len(tr.spikes[0]) == T
    assert np.allclose(np.array(tr.membrane[0]).reshape(T, 3), v, rtol=0, atol=1e-6)
    assert np.array_equal(np.array(tr.spikes[0]).reshape(T, 3), np.array(o, float))
    # The output layer: no membrane, no spikes, no reset; logits = sum_t I_out[t] / T.
    assert tr.membrane[1] == [] and tr.spikes[1] == []
    cur = [W2 @ a.reshape(-1) + B2 for a in tr.inputs[1]]
    assert np.allclose(cur, i_out, atol=1e-6)
    assert np.allclose(tr.logits, np.mean(cur, axis=0), atol=1e-12)
    assert np.allclose(tr.logits, logits, atol=1e-6)
    assert tr.logits[0] > TH  # an output neuron above threshold does not fire or reset
    for backend in ("reference", "numba"):
        assert np.allclose(net.forward(X, backend)[0], logits, atol=1e-6), backend


def test_if_ignores_the_leak_parameter():
    a, b = _net("if"), _net("if", leak=0.9)
    assert a.config.effective_leak == b.config.effective_leak == 1.0
    assert np.array_equal(a.forward(X, "reference"), b.forward(X, "reference"))


def test_spike_exactly_at_threshold():
    """V == V_th spikes (eq. 3: o = 1 iff V >= V_th): with V_th = 1 and I = 1/4 an
    IF neuron reaches V = 1/4, 1/2, 3/4, 1 -> spike at the 4th step only; with
    I = 1/4 - 2^-20 (exact in float32) it ends at 1 - 2^-18 and never spikes."""
    net = Network.from_spec("2-2", (1, 1, 1), neuron="if", T=4, threshold=1.0)
    net.params["fc1.weight"] = np.array([[0.25], [0.25 - 2.0**-20]])
    net.params["fc1.bias"] = np.zeros(2)
    net.params["fc2.weight"] = np.eye(2)
    net.params["fc2.bias"] = np.zeros(2)
    tr = ref.forward_trace(net.layers, net.params, X[0], net.config)
    v = np.array(tr.membrane[0]).reshape(4, 2)
    assert np.array_equal(v[:, 0], [0.25, 0.5, 0.75, 1.0])
    assert v[3, 1] == 1.0 - 2.0**-18
    assert np.array_equal(np.array(tr.spikes[0]).reshape(4, 2), [[0, 0], [0, 0], [0, 0], [1, 0]])
    for backend in ("reference", "numba"):  # logits = mean spikes = (1/4, 0), exactly
        assert np.array_equal(net.forward(X, backend)[0], [0.25, 0.0]), backend


def test_conv_trace_with_bias():
    """Spec "1C1S1-2" on a 1x3 image x = (0.5, 0.8, 0.3); conv weight 0.5, bias
    0.05 -> I = (0.3, 0.45, 0.2).  IF, V_th = 0.5:
      pixel 0: V = 0.3, 0.6 s, 0.3, 0.6 s   -> o = 0, 1, 0, 1
      pixel 1: V = 0.45, 0.9 s, 0.45, 0.9 s -> o = 0, 1, 0, 1
      pixel 2: V = 0.2, 0.4, 0.6 s, 0.2     -> o = 0, 0, 1, 0
    fc2 W = ((1, 1, 1), (0, 0, 2)), b = 0: logits = W (0.5, 0.5, 0.25) = (1.25, 0.5)."""
    net = Network.from_spec("1C1S1-2", (1, 1, 3), neuron="if", T=4, threshold=0.5)
    net.params["conv1.weight"] = np.full((1, 1, 1, 1), 0.5)
    net.params["conv1.bias"] = np.array([0.05])
    net.params["fc1.weight"] = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 2.0]])
    net.params["fc1.bias"] = np.zeros(2)
    x = np.array([0.5, 0.8, 0.3]).reshape(1, 1, 1, 3)
    tr = ref.forward_trace(net.layers, net.params, x[0], net.config)
    v = np.array(tr.membrane[0]).reshape(4, 3)
    expected_v = [[0.3, 0.45, 0.2], [0.6, 0.9, 0.4], [0.3, 0.45, 0.6], [0.6, 0.9, 0.2]]
    assert np.allclose(v, expected_v, atol=1e-6)
    assert np.array_equal(np.array(tr.spikes[0]).reshape(4, 3), [[0, 0, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0]])
    for backend in ("reference", "numba"):
        assert np.allclose(net.forward(x, backend)[0], [1.25, 0.5], atol=1e-6), backend


def test_ann_is_one_tanh_step():
    """kind="ann": hidden a = tanh(I), a single step whatever T; logits = W a + b."""
    net = _net("if", kind="ann")
    tr = ref.forward_trace(net.layers, net.params, X[0], net.config)
    assert len(tr.spikes[0]) == 1 and tr.membrane[0] == []
    a = np.tanh(np.array([0.3, 0.5, 0.45]))
    expected = W2 @ a + B2
    assert np.allclose(tr.spikes[0][0].reshape(-1), a, atol=1e-7)
    for backend in ("reference", "numba"):
        assert np.allclose(net.forward(X, backend)[0], expected, atol=1e-6), backend


def test_t1_logits_are_the_output_current():
    net = Network.from_spec("3-2", (1, 1, 1), neuron="if", T=1, threshold=TH)
    for name, v in (("fc1.weight", W1), ("fc1.bias", B1), ("fc2.weight", W2), ("fc2.bias", B2)):
        net.params[name] = v
    # One step: o = (0, 1, 0) -> logits = I_out[0] = (2.25, 0).
    for backend in ("reference", "numba"):
        assert np.allclose(net.forward(X, backend)[0], [2.25, 0.0], atol=1e-6), backend


def test_lif_with_leak_one_is_if():
    a, b = _net("if"), _net("lif", leak=1.0)
    ta = ref.forward_trace(a.layers, a.params, X[0], a.config)
    tb = ref.forward_trace(b.layers, b.params, X[0], b.config)
    assert np.array_equal(np.array(ta.membrane[0]), np.array(tb.membrane[0]))
    assert np.array_equal(a.forward(X), b.forward(X))
