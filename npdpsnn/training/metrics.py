"""Evaluation figures beyond accuracy: confusion matrix, per-class accuracy, firing rates."""

from __future__ import annotations

import numpy as np

from npdpsnn.network import Network


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


def firing_rates(net: Network, x: np.ndarray) -> dict[str, float]:
    """Mean spike rate of each hidden spiking layer (spikes per neuron per time
    step) over the examples ``x``, from the NumPy reference's traces (plain
    float64 arithmetic: the spike trains of the paper's equations)."""
    from npdpsnn.kernels.reference import forward_trace

    if net.config.kind != "snn":
        return {}
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for xi in np.asarray(x, np.float64):
        trace = forward_trace(net.layers, net.params, xi, net.config)
        for li, layer in enumerate(net.layers[:-1]):
            if layer.kind in ("conv", "fc"):
                spikes = np.asarray(trace.spikes[li])
                sums[layer.name] = sums.get(layer.name, 0.0) + float(spikes.sum())
                counts[layer.name] = counts.get(layer.name, 0) + spikes.size
    return {name: sums[name] / counts[name] for name in sums}
