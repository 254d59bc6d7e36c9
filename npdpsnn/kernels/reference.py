"""Plain NumPy reference implementation, following the DPSNN paper line by line.

Float64 throughout, PyTorch layouts ``(C, H, W)``, vectorised over a batch
(leading axis ``B``; one example is a batch of one).  It is meant to be read and
audited; the fast kernels (``cpu.py``, ``cuda.py``) are tested against it.

Forward (sections 3.2-3.3), for ``t = 1..T`` with the input ``s[t]`` of layer 0
(the analog image ``x`` at every step with direct encoding, Poisson spikes of
:mod:`npdpsnn.model.encoding` otherwise)::

    I^n[t] = W^n * a^{n-1}[t] + b^n                    (conv or fc; no b^n when bias-free)
    V^n[t] = membrane(V^n[t-1], o^n[t-1], I^n[t])      (eq. 2 / eq. 14, reset zero or subtract)
    o^n[t] = 1{V^n[t] >= V_th^n}                       (eq. 3, per-layer thresholds)
    a^n[t] = maxpool(o^n[t]), avgpool(o^n[t]) or o^n[t]
    logits = sum_t I^out[t] / T,   L = CE(softmax(logits), y)   (eq. 7)

Backward: BPTT with the surrogate of eqs. 4-6 in place of ``dg/dV`` (eqs. 8-10),
the reset path included unless ``detach_reset`` (:mod:`npdpsnn.model.neurons`).
The ANN replaces the neuron by ``a = f(I)`` (tanh or relu) and runs one step.
Input gradients run the same BPTT one layer further:
``dL/dx = sum_t dL/d(input of layer 0)[t]`` (the Poisson sampler is passed
straight through) -- :func:`input_vjp` for any upstream ``dL/dlogits``,
:func:`input_grads` for the cross-entropy.
"""

from __future__ import annotations

import numpy as np

from npdpsnn.model.config import ModelConfig
from npdpsnn.model.encoding import POISSON, rate_spike, rate_uniform
from npdpsnn.model.neurons import activation, activation_grad, bptt, membrane
from npdpsnn.model.spec import Layer
from npdpsnn.model.surrogates import surrogate_grad_vec, surrogate_primitive_vec

FORWARD_CHUNK = 256  # examples per forward pass of :func:`forward` (bounds the memory)


# ---------------------------------------------------------------- layer math (batched: x is (B, C, H, W))
def _patches(x: np.ndarray, k: int, s: int, p: int, ho: int, wo: int) -> np.ndarray:
    """``P[b, c, ky, kx, oy, ox] = xpad[b, c, oy*s + ky, ox*s + kx]``."""
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    b, c = x.shape[:2]
    out = np.empty((b, c, k, k, ho, wo))
    for ky in range(k):
        for kx in range(k):
            out[:, :, ky, kx] = xp[:, :, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s]
    return out


def _batched(fn):
    """Lets a batched layer function take one example ``(C, H, W)`` too."""
    def wrapper(x, *args, **kwargs):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 3:
            out = fn(x[None], *args, **kwargs)
            return tuple(o[0] for o in out) if isinstance(out, tuple) else out[0]
        return fn(x, *args, **kwargs)
    wrapper.__doc__, wrapper.__name__ = fn.__doc__, fn.__name__
    return wrapper


@_batched
def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, s: int, p: int) -> np.ndarray:
    """``y[o, i, j] = b[o] + sum_{c,ky,kx} w[o,c,ky,kx] xpad[c, i*s+ky, j*s+kx]`` (``b`` None: no bias)."""
    k = w.shape[2]
    ho = (x.shape[2] + 2 * p - k) // s + 1
    wo = (x.shape[3] + 2 * p - k) // s + 1
    y = np.tensordot(_patches(x, k, s, p, ho, wo), w, axes=([1, 2, 3], [1, 2, 3])).transpose(0, 3, 1, 2)
    return y if b is None else y + b[None, :, None, None]


def conv2d_backward(x: np.ndarray, w: np.ndarray, g: np.ndarray, s: int, p: int, need_input: bool):
    """Gradients of ``conv2d`` given ``g = dL/dy``: ``(dW, db, dx or None)``, per
    example for a batch ``x`` ``(B, C, H, W)``, ``g`` ``(B, O, Ho, Wo)``."""
    if np.ndim(x) == 3:
        dw, db, dx = conv2d_backward(np.asarray(x)[None], w, np.asarray(g)[None], s, p, need_input)
        return dw[0], db[0], (None if dx is None else dx[0])
    k = w.shape[2]
    bsz, o_ch, ho, wo = g.shape
    pt = _patches(x, k, s, p, ho, wo).reshape(bsz, x.shape[1] * k * k, ho * wo)
    dw = np.matmul(g.reshape(bsz, o_ch, ho * wo), pt.transpose(0, 2, 1)).reshape(bsz, *w.shape)
    db = g.sum(axis=(2, 3))
    if not need_input:
        return dw, db, None
    dpatch = np.tensordot(g, w, axes=([1], [0])).transpose(0, 3, 4, 5, 1, 2)  # (B, C, k, k, ho, wo)
    c, h, wd = x.shape[1:]
    dxp = np.zeros((bsz, c, h + 2 * p, wd + 2 * p))
    for ky in range(k):
        for kx in range(k):
            dxp[:, :, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s] += dpatch[:, :, ky, kx]
    return dw, db, dxp[:, :, p : p + h, p : p + wd]


def _pool_windows(x: np.ndarray, k: int, s: int, ho: int, wo: int) -> np.ndarray:
    """``win[b, c, ky*k + kx, i, j] = x[b, c, i*s + ky, j*s + kx]``."""
    out = np.empty((*x.shape[:2], k * k, ho, wo))
    for ky in range(k):
        for kx in range(k):
            out[:, :, ky * k + kx] = x[:, :, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s]
    return out


@_batched
def maxpool(x: np.ndarray, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Max-pooling; also returns the window index of the maximum (first on ties,
    row-major within the window, as PyTorch routes the gradient)."""
    ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    win = _pool_windows(x, k, s, ho, wo)
    idx = np.argmax(win, axis=2)
    return np.take_along_axis(win, idx[:, :, None], axis=2)[:, :, 0], idx


def maxpool_backward(g: np.ndarray, idx: np.ndarray, in_shape, k: int, s: int) -> np.ndarray:
    """``in_shape`` is one example's ``(C, H, W)``; ``g``, ``idx`` may carry a batch axis."""
    dx = np.zeros((*g.shape[:-3], *in_shape))
    ho, wo = g.shape[-2:]
    for ky in range(k):
        for kx in range(k):
            sel = np.where(idx == ky * k + kx, g, 0.0)
            dx[..., ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s] += sel
    return dx


@_batched
def avgpool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    return _pool_windows(x, k, s, ho, wo).mean(axis=2)


def avgpool_backward(g: np.ndarray, in_shape, k: int, s: int) -> np.ndarray:
    dx = np.zeros((*g.shape[:-3], *in_shape))
    ho, wo = g.shape[-2:]
    for ky in range(k):
        for kx in range(k):
            dx[..., ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s] += g / (k * k)
    return dx


def _bias(layer: Layer, params) -> np.ndarray | None:
    name = f"{layer.name}.bias"
    return np.asarray(params[name], dtype=np.float64) if name in params else None


def _weight_layer(layer: Layer, params, a: np.ndarray) -> np.ndarray:
    """The current ``W a (+ b)`` of a batch ``a`` ``(B, *in_shape)``."""
    w = np.asarray(params[f"{layer.name}.weight"], dtype=np.float64)
    b = _bias(layer, params)
    if layer.kind == "conv":
        return conv2d(a, w, b, layer.stride, layer.padding)
    y = a.reshape(len(a), layer.in_size) @ w.T
    return (y if b is None else y + b).reshape(len(a), *layer.out_shape)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def layer_thresholds(layers: list[Layer], cfg: ModelConfig) -> list[float]:
    """``V_th`` of every layer index (hidden weight layers in order; 0 elsewhere)."""
    hidden = [i for i, layer in enumerate(layers[:-1]) if layer.has_weights]
    ths = cfg.layer_thresholds(len(hidden))
    out = [0.0] * len(layers)
    for i, th in zip(hidden, ths):
        out[i] = float(th)
    return out


def encoded_input(x: np.ndarray, t: int, cfg: ModelConfig) -> np.ndarray:
    """The input of layer 0 at step ``t`` for a batch ``x`` ``(B, C, H, W)``."""
    if cfg.encoding_id != POISSON:
        return x
    i = np.arange(int(np.prod(x.shape[1:])), dtype=np.int64).reshape(x.shape[1:])
    return rate_spike(x, rate_uniform(int(cfg.encoding_seed), t, i))


# ---------------------------------------------------------------- forward
class Trace:
    """Everything the forward pass computed, per layer and step.

    ``inputs[l][t]`` is the input of layer ``l`` at step ``t``; ``current``,
    ``membrane`` and ``spikes`` hold ``I``, ``V`` and ``o`` of hidden weight
    layers (the ANN stores ``f(I)`` in ``spikes``); ``argmax`` holds max-pool
    routing; ``logits`` the output.  Arrays have a leading batch axis when the
    trace comes from :func:`forward_trace_batch`, none from :func:`forward_trace`.
    """

    def __init__(self, n_layers: int):
        self.inputs: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.current: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.membrane: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.spikes: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.argmax: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.logits: np.ndarray | None = None

    def example(self, i: int) -> "Trace":
        """The trace of example ``i`` of a batch trace."""
        out = Trace(len(self.inputs))
        for name in ("inputs", "current", "membrane", "spikes", "argmax"):
            setattr(out, name, [[a[i] for a in per_layer] for per_layer in getattr(self, name)])
        out.logits = self.logits[i]
        return out


def forward_trace_batch(
    layers: list[Layer],
    params,
    x: np.ndarray,
    cfg: ModelConfig,
    smooth: bool = False,
    frozen_reset: list | None = None,
    record: bool = True,
) -> Trace:
    """Forward pass of a batch ``x`` ``(B, C, H, W)``.

    ``smooth=True`` replaces the Heaviside by the surrogate's smooth primitive
    (for gradient checks).  ``frozen_reset[l][t]``, if given, is used as
    ``o[t]`` in the reset term of layer ``l`` (a constant: gradient checks of
    ``detach_reset``).  ``record=False`` keeps only the logits.
    """
    n_layers = len(layers)
    tr = Trace(n_layers)
    lam, code, reset, act = cfg.effective_leak, cfg.surrogate_id, cfg.reset_id, cfg.activation_id
    ths = layer_thresholds(layers, cfg)
    x = np.asarray(x, dtype=np.float64)
    bsz = len(x)
    acc = np.zeros((bsz, layers[-1].out_shape[0]))
    v_prev = [np.zeros((bsz, *layer.out_shape)) for layer in layers]
    o_prev = [np.zeros((bsz, *layer.out_shape)) for layer in layers]
    for t in range(cfg.steps):
        a = encoded_input(x, t, cfg)
        for li, layer in enumerate(layers):
            if record:
                tr.inputs[li].append(a)
            if layer.kind == "maxpool":
                a, idx = maxpool(a, layer.kernel, layer.stride)
                if record:
                    tr.argmax[li].append(idx)
            elif layer.kind == "avgpool":
                a = avgpool(a, layer.kernel, layer.stride)
            elif li == n_layers - 1:
                acc += _weight_layer(layer, params, a).reshape(bsz, layer.out_size)
            else:
                cur = _weight_layer(layer, params, a)
                if record:
                    tr.current[li].append(cur)
                if cfg.kind == "ann":
                    a = activation(act, cur)
                else:
                    th = ths[li]
                    reset_o = o_prev[li] if frozen_reset is None or t == 0 else frozen_reset[li][t - 1]
                    v = membrane(v_prev[li], reset_o, cur, lam, th, reset)
                    if smooth:
                        o = surrogate_primitive_vec(code, v - th)
                    else:
                        o = (v >= th).astype(np.float64)
                    if record:
                        tr.membrane[li].append(v)
                    v_prev[li], o_prev[li] = v, o
                    a = o
                if record:
                    tr.spikes[li].append(a)
    tr.logits = acc / cfg.steps
    return tr


def forward_trace(layers: list[Layer], params, x: np.ndarray, cfg: ModelConfig, smooth: bool = False,
                  frozen_reset: list | None = None) -> Trace:
    """Forward pass of one example ``x`` ``(C, H, W)`` (see :func:`forward_trace_batch`)."""
    x = np.asarray(x, dtype=np.float64)[None]
    return forward_trace_batch(layers, params, x, cfg, smooth=smooth, frozen_reset=frozen_reset).example(0)


# ---------------------------------------------------------------- backward
def _cross_entropy(logits: np.ndarray, y) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 7 per row: ``(L (B,), dL/dlogits = softmax(logits) - onehot(y))``."""
    logp = log_softmax(logits)
    rows = np.arange(len(logits))
    dlogits = np.exp(logp)
    dlogits[rows, y] -= 1.0
    return -logp[rows, y], dlogits


def _backward(layers: list[Layer], params, tr: Trace, dlogits: np.ndarray, cfg: ModelConfig,
              want_params: bool = True, want_input: bool = False):
    """BPTT from ``dL/dlogits`` ``(B, classes)`` through a batch trace: ``(grads, dx)``.

    ``grads`` holds the per-example parameter gradients ``(B, *shape)``
    (PyTorch layouts, float64) when ``want_params``; ``dx`` is ``dL/dx``
    ``(B, C, H, W)`` when ``want_input``, else None.  Layer 0 sees its input at
    every step, so ``dL/dx = sum_t dL/d(input of layer 0)[t]``.
    """
    T, n_layers = cfg.steps, len(layers)
    lam, code, reset, act = cfg.effective_leak, cfg.surrogate_id, cfg.reset_id, cfg.activation_id
    ths = layer_thresholds(layers, cfg)
    grads: dict[str, np.ndarray] = {}
    bsz = len(dlogits)

    # Output layer: logits = sum_t (W a[t] + b) / T, so dL/dI_out[t] = dlogits / T.
    out = layers[-1]
    w_out = np.asarray(params[f"{out.name}.weight"], dtype=np.float64)
    if want_params:
        a_sum = sum(a.reshape(bsz, out.in_size) for a in tr.inputs[-1])
        grads[f"{out.name}.weight"] = dlogits[:, :, None] * a_sum[:, None, :] / T
        if cfg.bias:
            grads[f"{out.name}.bias"] = dlogits.copy()
    g_in = (dlogits @ w_out / T).reshape(bsz, *out.in_shape)
    d_out = [g_in] * T  # dL/d(output of layer below), per step

    for li in range(n_layers - 2, -1, -1):
        layer = layers[li]
        if layer.kind == "maxpool":
            d_out = [maxpool_backward(d_out[t], tr.argmax[li][t], layer.in_shape, layer.kernel, layer.stride)
                     for t in range(T)]
            continue
        if layer.kind == "avgpool":
            d_out = [avgpool_backward(d_out[t], layer.in_shape, layer.kernel, layer.stride) for t in range(T)]
            continue
        # Hidden weight layer: dL/dI[t] through the neuron.
        g_cur = [None] * T
        if cfg.kind == "ann":
            for t in range(T):
                g_cur[t] = d_out[t] * activation_grad(act, tr.spikes[li][t])
        else:
            th = ths[li]
            g_next = np.zeros((bsz, *layer.out_shape))
            for t in range(T - 1, -1, -1):
                v, o = tr.membrane[li][t], tr.spikes[li][t]
                sg = surrogate_grad_vec(code, v - th)
                g_next = bptt(d_out[t], v, o, g_next, sg, lam, cfg.detach_reset, th, reset)
                g_cur[t] = g_next
        # Eq. 8: dL/dW = sum_t dL/dI[t] * input[t].
        w = np.asarray(params[f"{layer.name}.weight"], dtype=np.float64)
        dw = np.zeros((bsz, *w.shape)) if want_params else None
        db = np.zeros((bsz, layer.out_shape[0]))
        need_dx = li > 0 or want_input
        new_d = []
        for t in range(T):
            a_in = tr.inputs[li][t]
            if layer.kind == "conv":
                dw_t, db_t, dx = conv2d_backward(a_in, w, g_cur[t], layer.stride, layer.padding, need_dx)
            else:
                g = g_cur[t].reshape(bsz, layer.out_size)
                dw_t = g[:, :, None] * a_in.reshape(bsz, 1, layer.in_size) if want_params else None
                db_t = g
                dx = (g @ w).reshape(bsz, *layer.in_shape) if need_dx else None
            if want_params:
                dw += dw_t
            db += db_t
            new_d.append(dx)
        if want_params:
            grads[f"{layer.name}.weight"] = dw
            if cfg.bias:
                grads[f"{layer.name}.bias"] = db
        d_out = new_d
    return grads, (sum(d_out) if want_input else None)


def per_example_grads(layers, params, x: np.ndarray, y: np.ndarray, cfg: ModelConfig, smooth: bool = False):
    """Per-example gradients ``grads[name]`` ``(B, ...)`` (PyTorch layouts, float64) and losses ``(B,)``."""
    tr = forward_trace_batch(layers, params, x, cfg, smooth=smooth)
    losses, dlogits = _cross_entropy(tr.logits, np.asarray(y, dtype=np.int64))
    return _backward(layers, params, tr, dlogits, cfg)[0], losses


def input_vjp(layers, params, x: np.ndarray, dlogits: np.ndarray, cfg: ModelConfig, smooth: bool = False):
    """``sum_k dlogits[i, k] d logits[i, k] / dx_i`` ``(B, C, H, W)`` float64."""
    tr = forward_trace_batch(layers, params, x, cfg, smooth=smooth)
    return _backward(layers, params, tr, np.asarray(dlogits, np.float64), cfg, False, True)[1]


def input_grads(layers, params, x: np.ndarray, y: np.ndarray, cfg: ModelConfig, smooth: bool = False):
    """``(dL_i/dx_i (B, C, H, W), losses (B,))`` of the cross-entropy."""
    tr = forward_trace_batch(layers, params, x, cfg, smooth=smooth)
    losses, dlogits = _cross_entropy(tr.logits, np.asarray(y, dtype=np.int64))
    return _backward(layers, params, tr, dlogits, cfg, False, True)[1], losses


def example_grads(layers: list[Layer], params, x: np.ndarray, y: int, cfg: ModelConfig,
                  smooth: bool = False) -> tuple[dict[str, np.ndarray], float]:
    """Gradients of one example (PyTorch layouts, float64) and its cross-entropy."""
    grads, losses = per_example_grads(layers, params, np.asarray(x)[None], np.array([int(y)]), cfg, smooth)
    return {k: v[0] for k, v in grads.items()}, float(losses[0])


def example_input_vjp(layers: list[Layer], params, x: np.ndarray, dlogits: np.ndarray, cfg: ModelConfig,
                      smooth: bool = False) -> np.ndarray:
    """``sum_k dlogits[k] d logits[k] / dx`` ``(C, H, W)`` float64 for one example."""
    return input_vjp(layers, params, np.asarray(x)[None], np.asarray(dlogits)[None], cfg, smooth)[0]


def example_input_grad(layers: list[Layer], params, x: np.ndarray, y: int, cfg: ModelConfig,
                       smooth: bool = False) -> tuple[np.ndarray, float]:
    """``dL/dx`` ``(C, H, W)`` float64 of one example's cross-entropy, and the loss."""
    dx, losses = input_grads(layers, params, np.asarray(x)[None], np.array([int(y)]), cfg, smooth)
    return dx[0], float(losses[0])


def forward(layers, params, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Logits ``(B, classes)`` of a batch, :data:`FORWARD_CHUNK` examples at a time."""
    out = np.zeros((len(x), layers[-1].out_shape[0]))
    for lo in range(0, len(x), FORWARD_CHUNK):
        out[lo : lo + FORWARD_CHUNK] = forward_trace_batch(layers, params, x[lo : lo + FORWARD_CHUNK], cfg,
                                                           record=False).logits
    return out


def loss_value(layers, params, x, y, cfg: ModelConfig, smooth: bool = False, frozen_reset=None) -> float:
    """Cross-entropy of one example (for finite differences)."""
    tr = forward_trace(layers, params, x, cfg, smooth=smooth, frozen_reset=frozen_reset)
    return -float(log_softmax(tr.logits)[int(y)])
