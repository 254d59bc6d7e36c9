"""Checks every backend applies at its public boundary (one home for each)."""

from __future__ import annotations

import numpy as np

from npdpsnn.errors import UserError


def check_clip(clip: float) -> float:
    """The clipping norm ``R``: ``> 0``; ``inf`` means no clipping."""
    clip = float(clip)
    if not clip > 0:
        raise UserError(f"clipping norm must be > 0, got {clip}")
    return clip


def check_dlogits(dlogits, batch: int, n_classes: int) -> np.ndarray:
    """An upstream gradient on the logits: finite, ``(batch, n_classes)``, float64."""
    d = np.asarray(dlogits)
    if d.shape != (batch, n_classes) or not (np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype,
                                                                                                   np.integer)):
        raise UserError(f"dlogits must be a numeric array of shape ({batch}, {n_classes}), got {d.dtype} {d.shape}")
    d = np.ascontiguousarray(d, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise UserError("dlogits contains NaN or infinity")
    return d


def check_indices(idx, n: int) -> np.ndarray:
    """Batch indices into a bound data set of ``n`` examples: 1-d int64 in ``[0, n)``."""
    idx = np.asarray(idx)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise IndexError(f"batch indices must be a 1-d integer array, got {idx.dtype} {idx.shape}")
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"batch indices must lie in [0, {n})")
    return idx


def check_labels(y, n: int) -> np.ndarray:
    """Labels of a bound data set: ``(n,)`` integers (range checked per model by :func:`check_bound`)."""
    y = np.zeros(n, np.int64) if y is None else np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"labels must be an integer array of shape ({n},), got {y.dtype} {y.shape}")
    return np.ascontiguousarray(y, dtype=np.int64)


def check_bound(net, data, labelled: bool) -> None:
    """Bound data fit the model: same image shape; labels in range where used."""
    if tuple(data.input_shape) != tuple(net.input_shape):
        raise UserError(f"bound data hold images of shape {tuple(data.input_shape)}, "
                        f"the network expects {tuple(net.input_shape)}")
    if labelled and data.n and not (0 <= data.label_range[0] and data.label_range[1] < net.num_classes):
        raise UserError(f"labels must lie in [0, {net.num_classes - 1}]")

