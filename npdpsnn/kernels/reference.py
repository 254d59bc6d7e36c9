"""Plain NumPy reference implementation, following the DPSNN paper line by line.

Float64 throughout, one example at a time, PyTorch layouts ``(C, H, W)``.  It is
meant to be read and audited; the fast kernels (``cpu.py``, ``cuda.py``) are
tested against it.

Forward (sections 3.2-3.3), for ``t = 1..T`` with the analog input ``x`` fed at
every step (direct encoding)::

    I^n[t] = W^n * a^{n-1}[t] + b^n                    (conv or fc)
    V^n[t] = lambda V^n[t-1] (1 - o^n[t-1]) + I^n[t]   (eq. 2 / eq. 14)
    o^n[t] = 1{V^n[t] >= V_th}                         (eq. 3)
    a^n[t] = maxpool(o^n[t]) or o^n[t]
    logits = sum_t I^out[t] / T,   L = CE(softmax(logits), y)   (eq. 7)

Backward: BPTT with the surrogate of eqs. 4-6 in place of ``dg/dV`` (eqs. 8-10),
the reset path included unless ``detach_reset``.  The ANN baseline replaces the
neuron by ``a = tanh(I)`` and runs one step.  Input gradients run the same BPTT
one layer further: the image is fed at every step, so
``dL/dx = sum_t dL/d(input of layer 0)[t]`` (:func:`input_vjp` for any upstream
``dL/dlogits``, :func:`input_grads` for the cross-entropy).
"""

from __future__ import annotations

import numpy as np

from npdpsnn.model.config import ModelConfig
from npdpsnn.model.neurons import bptt_step, membrane_update
from npdpsnn.model.spec import Layer
from npdpsnn.model.surrogates import surrogate_grad_vec, surrogate_primitive_vec

_bptt_vec = np.vectorize(bptt_step, otypes=[np.float64])
_membrane_vec = np.vectorize(membrane_update, otypes=[np.float64])


# ---------------------------------------------------------------- layer math
def _patches(x: np.ndarray, k: int, s: int, p: int, ho: int, wo: int) -> np.ndarray:
    """``P[c, ky, kx, oy, ox] = xpad[c, oy*s + ky, ox*s + kx]``."""
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    c = x.shape[0]
    out = np.empty((c, k, k, ho, wo))
    for ky in range(k):
        for kx in range(k):
            out[:, ky, kx] = xp[:, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s]
    return out


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int) -> np.ndarray:
    """``y[o, i, j] = b[o] + sum_{c,ky,kx} w[o,c,ky,kx] xpad[c, i*s+ky, j*s+kx]``."""
    k = w.shape[2]
    ho = (x.shape[1] + 2 * p - k) // s + 1
    wo = (x.shape[2] + 2 * p - k) // s + 1
    return np.tensordot(w, _patches(x, k, s, p, ho, wo), axes=([1, 2, 3], [0, 1, 2])) + b[:, None, None]


def conv2d_backward(x: np.ndarray, w: np.ndarray, g: np.ndarray, s: int, p: int, need_input: bool):
    """Gradients of ``conv2d`` given ``g = dL/dy``: ``(dW, db, dx or None)``."""
    k = w.shape[2]
    ho, wo = g.shape[1:]
    dw = np.tensordot(g, _patches(x, k, s, p, ho, wo), axes=([1, 2], [3, 4]))
    db = g.sum(axis=(1, 2))
    if not need_input:
        return dw, db, None
    dpatch = np.tensordot(w, g, axes=([0], [0]))  # (C, k, k, ho, wo)
    c, h, wd = x.shape
    dxp = np.zeros((c, h + 2 * p, wd + 2 * p))
    for ky in range(k):
        for kx in range(k):
            dxp[:, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s] += dpatch[:, ky, kx]
    return dw, db, dxp[:, p : p + h, p : p + wd]


def _pool_windows(x: np.ndarray, k: int, s: int, ho: int, wo: int) -> np.ndarray:
    """``win[c, ky*k + kx, i, j] = x[c, i*s + ky, j*s + kx]``."""
    c = x.shape[0]
    out = np.empty((c, k * k, ho, wo))
    for ky in range(k):
        for kx in range(k):
            out[:, ky * k + kx] = x[:, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s]
    return out


def maxpool(x: np.ndarray, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Max-pooling; also returns the window index of the maximum (first on ties,
    row-major within the window, as PyTorch routes the gradient)."""
    ho, wo = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    win = _pool_windows(x, k, s, ho, wo)
    idx = np.argmax(win, axis=1)
    return np.take_along_axis(win, idx[:, None], axis=1)[:, 0], idx


def maxpool_backward(g: np.ndarray, idx: np.ndarray, in_shape, k: int, s: int) -> np.ndarray:
    dx = np.zeros(in_shape)
    c, ho, wo = g.shape
    for ky in range(k):
        for kx in range(k):
            sel = np.where(idx == ky * k + kx, g, 0.0)
            dx[:, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s] += sel
    return dx


def avgpool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    ho, wo = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    return _pool_windows(x, k, s, ho, wo).mean(axis=1)


def avgpool_backward(g: np.ndarray, in_shape, k: int, s: int) -> np.ndarray:
    dx = np.zeros(in_shape)
    c, ho, wo = g.shape
    for ky in range(k):
        for kx in range(k):
            dx[:, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s] += g / (k * k)
    return dx


def _weight_layer(layer: Layer, params, a: np.ndarray) -> np.ndarray:
    w = np.asarray(params[f"{layer.name}.weight"], dtype=np.float64)
    b = np.asarray(params[f"{layer.name}.bias"], dtype=np.float64)
    if layer.kind == "conv":
        return conv2d(a, w, b, layer.stride, layer.padding)
    return (w @ a.reshape(-1) + b).reshape(layer.out_shape)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


# ---------------------------------------------------------------- forward
class Trace:
    """Everything the forward pass of one example computed, per layer and step.

    ``inputs[l][t]`` is the input of layer ``l`` at step ``t``; ``current``,
    ``membrane`` and ``spikes`` hold ``I``, ``V`` and ``o`` of hidden weight
    layers (the ANN stores ``tanh(I)`` in ``spikes``); ``argmax`` holds max-pool
    routing; ``logits`` the output.
    """

    def __init__(self, n_layers: int):
        self.inputs: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.current: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.membrane: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.spikes: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.argmax: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.logits: np.ndarray | None = None


def forward_trace(
    layers: list[Layer],
    params,
    x: np.ndarray,
    cfg: ModelConfig,
    smooth: bool = False,
    frozen_reset: list | None = None,
) -> Trace:
    """Forward pass of one example ``x`` of shape ``(C, H, W)``.

    ``smooth=True`` replaces the Heaviside by the surrogate's smooth primitive
    (for gradient checks).  ``frozen_reset[l][t]``, if given, is used as
    ``o[t]`` in the reset term of layer ``l`` (a constant: gradient checks of
    ``detach_reset``).
    """
    n_layers = len(layers)
    tr = Trace(n_layers)
    lam, th, code = cfg.effective_leak, cfg.threshold, cfg.surrogate_id
    x = np.asarray(x, dtype=np.float64)
    acc = np.zeros(layers[-1].out_shape[0])
    v_prev = [np.zeros(layer.out_shape) for layer in layers]
    o_prev = [np.zeros(layer.out_shape) for layer in layers]
    for t in range(cfg.steps):
        a = x
        for li, layer in enumerate(layers):
            tr.inputs[li].append(a)
            if layer.kind == "maxpool":
                a, idx = maxpool(a, layer.kernel, layer.stride)
                tr.argmax[li].append(idx)
            elif layer.kind == "avgpool":
                a = avgpool(a, layer.kernel, layer.stride)
            elif li == n_layers - 1:
                acc += _weight_layer(layer, params, a).reshape(-1)
            else:
                cur = _weight_layer(layer, params, a)
                tr.current[li].append(cur)
                if cfg.kind == "ann":
                    a = np.tanh(cur)
                else:
                    reset = o_prev[li] if frozen_reset is None or t == 0 else frozen_reset[li][t - 1]
                    v = _membrane_vec(v_prev[li], reset, cur, lam)
                    if smooth:
                        o = surrogate_primitive_vec(code, v - th)
                    else:
                        o = (v >= th).astype(np.float64)
                    tr.membrane[li].append(v)
                    v_prev[li], o_prev[li] = v, o
                    a = o
                tr.spikes[li].append(a)
    tr.logits = acc / cfg.steps
    return tr


# ---------------------------------------------------------------- backward
def _cross_entropy(logits: np.ndarray, y: int) -> tuple[float, np.ndarray]:
    """Eq. 7: ``(L, dL/dlogits = softmax(logits) - onehot(y))``."""
    logp = log_softmax(logits)
    dlogits = np.exp(logp)
    dlogits[y] -= 1.0
    return -float(logp[y]), dlogits


def _backward(layers: list[Layer], params, tr: Trace, dlogits: np.ndarray, cfg: ModelConfig,
              want_params: bool = True, want_input: bool = False):
    """BPTT from ``dL/dlogits`` through a forward trace: ``(grads, dx)``.

    ``grads`` holds the parameter gradients (PyTorch layouts, float64) when
    ``want_params``; ``dx`` is ``dL/dx`` ``(C, H, W)`` when ``want_input``, else
    None.  The image enters layer 0 at every step (direct encoding), so
    ``dL/dx = sum_t dL/d(input of layer 0)[t]``.
    """
    T, n_layers = cfg.steps, len(layers)
    lam, th, code = cfg.effective_leak, cfg.threshold, cfg.surrogate_id
    grads: dict[str, np.ndarray] = {}

    # Output layer: logits = sum_t (W a[t] + b) / T, so dL/dI_out[t] = dlogits / T.
    out = layers[-1]
    w_out = np.asarray(params[f"{out.name}.weight"], dtype=np.float64)
    if want_params:
        a_sum = sum(a.reshape(-1) for a in tr.inputs[-1])
        grads[f"{out.name}.weight"] = np.outer(dlogits, a_sum) / T
        grads[f"{out.name}.bias"] = dlogits.copy()
    g_in = (w_out.T @ dlogits / T).reshape(out.in_shape)
    d_out = [g_in.copy() for _ in range(T)]  # dL/d(output of layer below), per step

    for li in range(n_layers - 2, -1, -1):
        layer = layers[li]
        if layer.kind == "maxpool":
            d_out = [
                maxpool_backward(d_out[t], tr.argmax[li][t], layer.in_shape, layer.kernel, layer.stride)
                for t in range(T)
            ]
            continue
        if layer.kind == "avgpool":
            d_out = [avgpool_backward(d_out[t], layer.in_shape, layer.kernel, layer.stride) for t in range(T)]
            continue
        # Hidden weight layer: dL/dI[t] through the neuron.
        g_cur = [None] * T
        if cfg.kind == "ann":
            for t in range(T):
                g_cur[t] = d_out[t] * (1.0 - tr.spikes[li][t] ** 2)
        else:
            g_next = np.zeros(layer.out_shape)
            for t in range(T - 1, -1, -1):
                v, o = tr.membrane[li][t], tr.spikes[li][t]
                sg = surrogate_grad_vec(code, v - th)
                g_next = _bptt_vec(d_out[t], v, o, g_next, sg, lam, cfg.detach_reset)
                g_cur[t] = g_next
        # Eq. 8: dL/dW = sum_t dL/dI[t] * input[t].
        w = np.asarray(params[f"{layer.name}.weight"], dtype=np.float64)
        dw = np.zeros(w.shape)
        db = np.zeros(layer.out_shape[0])
        need_dx = li > 0 or want_input
        new_d = []
        for t in range(T):
            a_in = tr.inputs[li][t]
            if layer.kind == "conv":
                dw_t, db_t, dx = conv2d_backward(a_in, w, g_cur[t], layer.stride, layer.padding, need_dx)
            else:
                g = g_cur[t].reshape(-1)
                dw_t, db_t = np.outer(g, a_in.reshape(-1)), g
                dx = (w.T @ g).reshape(layer.in_shape) if need_dx else None
            dw += dw_t
            db += db_t
            new_d.append(dx)
        if want_params:
            grads[f"{layer.name}.weight"] = dw
            grads[f"{layer.name}.bias"] = db
        d_out = new_d
    return grads, (sum(d_out) if want_input else None)


def example_grads(
    layers: list[Layer],
    params,
    x: np.ndarray,
    y: int,
    cfg: ModelConfig,
    smooth: bool = False,
) -> tuple[dict[str, np.ndarray], float]:
    """Per-example gradients (PyTorch layouts, float64) and the cross-entropy loss."""
    tr = forward_trace(layers, params, x, cfg, smooth=smooth)
    loss, dlogits = _cross_entropy(tr.logits, y)
    return _backward(layers, params, tr, dlogits, cfg)[0], loss


def example_input_vjp(layers: list[Layer], params, x: np.ndarray, dlogits: np.ndarray, cfg: ModelConfig,
                      smooth: bool = False) -> np.ndarray:
    """``sum_k dlogits[k] d logits[k] / dx`` ``(C, H, W)`` float64 for one example."""
    tr = forward_trace(layers, params, x, cfg, smooth=smooth)
    return _backward(layers, params, tr, np.asarray(dlogits, np.float64), cfg, False, True)[1]


def example_input_grad(layers: list[Layer], params, x: np.ndarray, y: int, cfg: ModelConfig,
                       smooth: bool = False) -> tuple[np.ndarray, float]:
    """``dL/dx`` ``(C, H, W)`` float64 of one example's cross-entropy, and the loss."""
    tr = forward_trace(layers, params, x, cfg, smooth=smooth)
    loss, dlogits = _cross_entropy(tr.logits, y)
    return _backward(layers, params, tr, dlogits, cfg, False, True)[1], loss


def per_example_grads(layers, params, x: np.ndarray, y: np.ndarray, cfg: ModelConfig, smooth: bool = False):
    """Loop of :func:`example_grads` over a batch: ``(grads[name] (B, ...), losses (B,))``."""
    B = x.shape[0]
    names = [f"{l.name}.{s}" for l in layers if l.has_weights for s in ("weight", "bias")]
    out = {n: np.zeros((B, *np.shape(params[n]))) for n in names}
    losses = np.zeros(B)
    for i in range(B):
        g, losses[i] = example_grads(layers, params, x[i], int(y[i]), cfg, smooth=smooth)
        for n in names:
            out[n][i] = g[n]
    return out, losses


def input_vjp(layers, params, x: np.ndarray, dlogits: np.ndarray, cfg: ModelConfig, smooth: bool = False):
    """Loop of :func:`example_input_vjp` over a batch: ``(B, C, H, W)`` float64."""
    out = np.zeros(np.shape(x))
    for i in range(len(x)):
        out[i] = example_input_vjp(layers, params, x[i], dlogits[i], cfg, smooth=smooth)
    return out


def input_grads(layers, params, x: np.ndarray, y: np.ndarray, cfg: ModelConfig, smooth: bool = False):
    """Loop of :func:`example_input_grad` over a batch: ``(dx (B, C, H, W), losses (B,))``."""
    out = np.zeros(np.shape(x))
    losses = np.zeros(len(x))
    for i in range(len(x)):
        out[i], losses[i] = example_input_grad(layers, params, x[i], int(y[i]), cfg, smooth=smooth)
    return out, losses


def forward(layers, params, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Logits ``(B, classes)`` of a batch."""
    out = np.zeros((len(x), layers[-1].out_shape[0]))
    for i, xi in enumerate(x):
        out[i] = forward_trace(layers, params, xi, cfg).logits
    return out


def loss_value(layers, params, x, y, cfg: ModelConfig, smooth: bool = False, frozen_reset=None) -> float:
    """Cross-entropy of one example (for finite differences)."""
    tr = forward_trace(layers, params, x, cfg, smooth=smooth, frozen_reset=frozen_reset)
    return -float(log_softmax(tr.logits)[int(y)])
