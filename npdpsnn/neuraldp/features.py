r"""Layer-``K`` features of a frozen network: NumPy/BLAS, vectorised over the batch.

NeuralDP (:mod:`npdpsnn.neuraldp`) privatises the output of one layer ``K`` of
a network from :mod:`npdpsnn.model.spec`.  This module computes that output
for a batch with the *frozen* weights of layers ``0..K`` and splits the spec
into the part below (the encoder) and the part above (the head).

What is computed (the same equations as :mod:`npdpsnn.kernels.reference`,
section 3.2 of the DPSNN paper, with the image fed at every step)::

    I^n[t] = W^n * a^{n-1}[t] + b^n                       (conv or fc)
    V^n[t] = lambda V^n[t-1] (1 - o^n[t-1]) + I^n[t],   o^n[t] = 1{V^n[t] >= V_th}
    a^n[t] = maxpool / avgpool(a^{n-1}[t]) for a pooling layer, else o^n[t]

* SNN: the feature of an example is the **spike count** of layer ``K`` over the
  time window, :math:`h = \sum_{t=1}^{T} a^K[t]` (for a pooling layer ``K``:
  the count of its pooled spikes).  Why counts and not every time step: the
  counts are one vector per example, so NeuralDP releases *one* noisy row per
  example; releasing the ``T`` binary vectors separately would be ``T`` Gaussian
  releases of the same example, whose composition needs :math:`\sqrt{T}` times
  the noise for the same epsilon, while a rate-coded head reads only the count
  anyway (the output layer itself uses :math:`\sum_t I[t] / T`, eq. 7).
* ANN (tanh): one step, :math:`h = a^K` (the tanh output, or its pooling).

Everything is float64; a convolution is ``im2col`` (a strided view) times the
weight matrix through BLAS, the first layer's current is computed once (the
image is the same at every step), and batches are processed ``chunk`` examples
at a time.  :func:`npdpsnn.kernels.reference.forward_trace` is the
line-by-line reference it is tested against (``tests/test_neuraldp_features.py``).
"""

from __future__ import annotations

import hashlib
import json
import numbers
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from npdpsnn.errors import UserError
from npdpsnn.model.config import ModelConfig
from npdpsnn.model.spec import Layer, parse_spec
from npdpsnn.network import Network

__all__ = ["FeatureCache", "LayerSplit", "layer_features", "lower_digest", "split_at"]

_DEFAULT_CHUNK = 256


@dataclass(frozen=True)
class LayerSplit:
    """A network cut after layer ``index`` (0-based): ``lower`` are the layers
    ``0..index`` whose output is privatised, ``head_spec`` the spec of the
    layers above, which reads inputs of ``feature_shape``."""

    index: int
    lower: tuple[Layer, ...]
    head_spec: str

    @property
    def layer(self) -> Layer:
        """The privatised layer ``K``."""
        return self.lower[-1]

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return self.layer.out_shape

    @property
    def feature_size(self) -> int:
        return self.layer.out_size

    @property
    def lower_weight_names(self) -> tuple[str, ...]:
        """Names of the weight layers at or below ``K`` (the frozen encoder)."""
        return tuple(layer.name for layer in self.lower if layer.has_weights)


def split_at(layers: list[Layer], privatize_layer: int | str, head: str | None = None) -> LayerSplit:
    """Cut ``layers`` after the privatised layer ``K``.

    ``privatize_layer`` is the layer's position in the spec counting from 1
    (``net2`` = ``16C7S1-P2S2-32C4S1-P2S2-32-10``: 4 is the second pooling,
    5 the ``32`` unit layer) or the name of a weight layer (``conv2``, ``fc1``).
    ``K`` may not be the output layer, and the layer above it must be a
    convolution or fully connected (a head cannot start with pooling: privatise
    the pooling layer's output instead).  ``head`` replaces the layers above
    ``K`` by another spec (it must start with a convolution or fully connected
    layer and end with the same number of outputs).
    """
    n = len(layers)
    if isinstance(privatize_layer, str) and not privatize_layer.strip().isdigit():
        names = [layer.name for layer in layers]
        key = privatize_layer.strip().lower()
        if key not in names or not key:
            raise UserError(f"privatize_layer {privatize_layer!r} names no weight layer; choose one of "
                            f"{', '.join(nm for nm in names[:-1] if nm)} or a position 1..{n - 1}")
        index = names.index(key)
    else:
        pos = int(privatize_layer) if isinstance(privatize_layer, str) else privatize_layer
        if isinstance(pos, bool) or not isinstance(pos, numbers.Integral) or not 1 <= pos <= n:
            raise UserError(f"privatize_layer must be a layer position 1..{n - 1} or a weight layer name, "
                            f"got {privatize_layer!r}")
        index = int(pos) - 1
    if index == n - 1:
        raise UserError(f"privatize_layer {privatize_layer!r} is the output layer; privatise a hidden layer "
                        f"(positions 1..{n - 1})")
    above = layers[index + 1]
    if not above.has_weights:
        raise UserError(f"the layer above privatize_layer {privatize_layer!r} is the pooling {above.token!r}; "
                        f"privatise its output instead (position {index + 2})")
    head_spec = "-".join(layer.token for layer in layers[index + 1 :])
    if head is not None:
        custom = parse_spec(head, layers[index].out_shape)
        if custom[-1].out_shape != layers[-1].out_shape:
            raise UserError(f"the head {head!r} has {custom[-1].out_shape[0]} outputs, the network "
                            f"{layers[-1].out_shape[0]}")
        head_spec = head.strip()
    return LayerSplit(index, tuple(layers[: index + 1]), head_spec)


def layer_features(net: Network, x, split: LayerSplit, chunk: int = _DEFAULT_CHUNK) -> np.ndarray:
    """Layer-``K`` features ``(B, *feature_shape)`` float64 of the images ``x``
    ``(B, C, H, W)`` (any array-like with slicing, e.g. a dataset's
    normalised images): SNN spike counts over ``T``, ANN activations (module
    docstring).  ``net`` supplies the weights of the layers ``0..K`` and the
    model options."""
    if tuple(split.lower) != tuple(net.layers[: split.index + 1]):
        raise UserError("the layer split does not belong to this network")
    if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
        raise UserError(f"chunk must be an integer >= 1, got {chunk!r}")
    n = len(x)
    out = np.empty((n, *split.feature_shape), np.float64)
    params = {name: np.asarray(net.params[name], np.float64) for name in net.params}
    for lo in range(0, n, chunk):
        xb = np.asarray(x[lo : lo + chunk], dtype=np.float64)
        if xb.ndim != 4 or tuple(xb.shape[1:]) != tuple(net.input_shape):
            raise UserError(f"images must have shape (B, {', '.join(map(str, net.input_shape))}), got {xb.shape}")
        if not np.all(np.isfinite(xb)):
            raise UserError("images contain NaN or infinity")
        out[lo : lo + len(xb)] = _features(split.lower, params, xb, net.config)
    return out


def lower_digest(net: Network, split: LayerSplit) -> str:
    """sha256 of the parameters of layers ``0..K`` of ``net`` and of its model options."""
    h = hashlib.sha256(json.dumps(net.config.to_dict(), sort_keys=True).encode())
    for slot in net.slots:
        if slot.layer_index <= split.index:
            h.update(slot.name.encode())
            h.update(np.ascontiguousarray(net.theta[slot.offset : slot.offset + slot.size]).tobytes())
    return h.hexdigest()


class FeatureCache:
    """Layer-``K`` features kept by what they depend on -- the encoder's layers
    ``0..K`` (:func:`lower_digest`), the cut and the images' bytes -- so that
    runs sharing a frozen encoder and data (a sweep over epsilon) compute them
    once.  A cached entry is only returned for exactly the same inputs."""

    def __init__(self) -> None:
        self._store: dict[tuple, np.ndarray] = {}

    def features(self, net: Network, x, split: LayerSplit) -> np.ndarray:
        """:func:`layer_features` of ``x``, computed once per distinct input."""
        images = np.ascontiguousarray(getattr(x, "raw", None) if hasattr(x, "raw") else np.asarray(x))
        h = hashlib.sha256(images.tobytes())
        h.update(json.dumps(getattr(x, "normalization", None), sort_keys=True).encode())
        key = (lower_digest(net, split), split.index, images.shape, h.hexdigest())
        if key not in self._store:
            self._store[key] = layer_features(net, x, split)
        return self._store[key]


# ---------------------------------------------------------------- computation
def _features(layers, params, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Sum over the time steps of the last layer's output (one step for the ANN)."""
    lam, th = cfg.effective_leak, cfg.threshold
    first = _weight(layers[0], params, x)  # the image enters every step: its current is the same
    v = [None] * len(layers)
    o = [None] * len(layers)
    total = None
    for _ in range(cfg.steps):
        a = x
        for li, layer in enumerate(layers):
            if layer.kind == "maxpool":
                a = _windows(a, layer.kernel, layer.stride).max(axis=(-2, -1))
            elif layer.kind == "avgpool":
                a = _windows(a, layer.kernel, layer.stride).mean(axis=(-2, -1))
            else:
                cur = first if li == 0 else _weight(layer, params, a)
                if cfg.kind == "ann":
                    a = np.tanh(cur)
                else:
                    v[li] = cur.copy() if v[li] is None else lam * v[li] * (1.0 - o[li]) + cur
                    o[li] = (v[li] >= th).astype(np.float64)
                    a = o[li]
        total = a.copy() if total is None else total + a
    return total


def _windows(a: np.ndarray, k: int, s: int) -> np.ndarray:
    """``(B, C, Ho, Wo, k, k)`` strided view of the ``k x k`` windows at stride ``s``."""
    return sliding_window_view(a, (k, k), axis=(2, 3))[:, :, ::s, ::s]


def _weight(layer: Layer, params, a: np.ndarray) -> np.ndarray:
    w, b = params[f"{layer.name}.weight"], params[f"{layer.name}.bias"]
    if layer.kind == "fc":
        return (a.reshape(len(a), -1) @ w.T + b).reshape(len(a), *layer.out_shape)
    p = layer.padding
    if p:
        a = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = _windows(a, layer.kernel, layer.stride)  # (B, C, Ho, Wo, k, k)
    out = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3]))  # (B, Ho, Wo, O)
    return out.transpose(0, 3, 1, 2) + b[None, :, None, None]
