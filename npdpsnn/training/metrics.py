"""Evaluation figures beyond accuracy: confusion matrix, per-class accuracy, firing rates.

Firing rates (spikes per neuron per time step of each hidden spiking layer)
follow the reference's equations (:mod:`npdpsnn.kernels.reference`: membrane,
threshold, reset, encoding and pooling are its functions) in float64, but
computed for a whole batch at once and counting spikes only: the weight
layers are one matrix product per step, the first layer's current is
computed once when its input is the same at every step (direct encoding),
and nothing after the last hidden layer is evaluated.  The training loop
records them per epoch on the first :data:`FIRING_EXAMPLES` *test* images
(never training data: a statistic of the private data would not be covered
by the privacy guarantee).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from npdpsnn.errors import UserError
from npdpsnn.network import Network

#: Test images whose firing rates the training loop records after every epoch.
FIRING_EXAMPLES = 256
#: ``metrics.csv`` column of a layer's firing rate: this prefix and the layer's name.
FIRING_RATE_PREFIX = "firing_rate_"
#: Examples per batched forward pass of :func:`firing_rates` (bounds the memory).
_CHUNK = 32  # images per pass: the float64 windows of a 256-image pass took 170 MB (bench/README.md)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of examples of class ``i`` predicted as ``j``."""
    c = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(c, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return c


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class without examples)."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)


def spiking_layers(net: Network) -> list[str]:
    """Names of the hidden spiking layers (weight layers before the output; none for an ANN)."""
    if net.config.kind != "snn":
        return []
    return [layer.name for layer in net.layers[:-1] if layer.has_weights]


def firing_rate_columns(net: Network) -> list[str]:
    """The ``metrics.csv`` columns of :func:`firing_rates` (``firing_rate_conv1`` ...)."""
    return [FIRING_RATE_PREFIX + name for name in spiking_layers(net)]


def firing_rates(net: Network, x, batch_size: int = _CHUNK) -> dict[str, float]:
    """Mean spike rate of each hidden spiking layer (spikes per neuron per time
    step) over the examples ``x`` ``(N, C, H, W)``, in layer order; ``{}`` for an
    ANN or without examples.  ``x`` may be a dataset's normalised images."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 4 or shape[1:] != tuple(net.input_shape):
        raise UserError(f"firing rates need images of shape (N, {', '.join(map(str, net.input_shape))}), "
                        f"got {shape}")
    names = spiking_layers(net)
    if not names or shape[0] == 0:
        return {}
    spikes = dict.fromkeys(names, 0.0)
    for lo in range(0, shape[0], batch_size):
        for name, count in _spike_counts(net, np.asarray(x[lo : lo + batch_size], np.float64)).items():
            spikes[name] += count
    sizes = {layer.name: layer.out_size for layer in net.layers if layer.name in spikes}
    return {name: spikes[name] / (sizes[name] * shape[0] * net.config.steps) for name in names}


def _spike_counts(net: Network, x: np.ndarray) -> dict[str, float]:
    """Total spikes of each hidden spiking layer over the batch ``x`` and all steps."""
    from npdpsnn.kernels.reference import encoded_input, layer_thresholds
    from npdpsnn.model.encoding import POISSON
    from npdpsnn.model.neurons import membrane

    cfg, layers = net.config, net.layers
    hidden = [i for i, layer in enumerate(layers[:-1]) if layer.has_weights]  # hidden[0] == 0 (parse_spec)
    ths = layer_thresholds(layers, cfg)
    params = {layers[i].name: (np.asarray(net.params[f"{layers[i].name}.weight"], np.float64),
                               np.asarray(net.params[f"{layers[i].name}.bias"], np.float64)
                               if f"{layers[i].name}.bias" in net.params else None) for i in hidden}

    def first_current(t: int) -> np.ndarray:
        return _weight_layer(layers[0], *params[layers[0].name], encoded_input(x, t, cfg))

    # direct encoding feeds the same image at every step: the first layer's current is computed once
    fixed = first_current(0) if cfg.encoding_id != POISSON else None
    v: dict[int, np.ndarray | float] = dict.fromkeys(hidden, 0.0)
    o: dict[int, np.ndarray | float] = dict.fromkeys(hidden, 0.0)
    counts = {layers[i].name: 0.0 for i in hidden}
    for t in range(cfg.steps):
        cur = fixed if fixed is not None else first_current(t)
        for li in range(hidden[-1] + 1):
            layer = layers[li]
            if li > 0:
                if not layer.has_weights:
                    a = _pool(a, layer.kind, layer.kernel, layer.stride)
                    continue
                cur = _weight_layer(layer, *params[layer.name], a)
            v[li] = membrane(v[li], o[li], cur, cfg.effective_leak, ths[li], cfg.reset_id)
            o[li] = (v[li] >= ths[li]).astype(np.float64)
            counts[layer.name] += float(o[li].sum())
            a = o[li]
    return counts


def _weight_layer(layer, w: np.ndarray, b: np.ndarray | None, a: np.ndarray) -> np.ndarray:
    """``W a (+ b)`` of a batch ``a``: a convolution as one matrix product over
    sliding windows, or a fully connected layer."""
    if layer.kind == "fc":
        y = a.reshape(len(a), layer.in_size) @ w.T
        return (y if b is None else y + b).reshape(len(a), *layer.out_shape)
    p, s, k = layer.padding, layer.stride, layer.kernel
    if p:
        a = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(a, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (B, C, Ho, Wo, k, k)
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    return y if b is None else y + b[None, :, None, None]


def _pool(a: np.ndarray, kind: str, k: int, s: int) -> np.ndarray:
    win = sliding_window_view(a, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max(axis=(4, 5)) if kind == "maxpool" else win.mean(axis=(4, 5))
