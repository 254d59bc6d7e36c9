"""Subsets of a dataset that keep its uint8 storage (for hold-outs, shadow models, canaries)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from npdpsnn.data.dataset import Dataset


def take(images, idx: np.ndarray):
    """``images[idx]``, still a :class:`~npdpsnn.data.normalization.NormalizedImages`
    (uint8, normalised on reading) when ``images`` is one; plain arrays are indexed."""
    if hasattr(images, "raw") and hasattr(images, "normalization"):
        return type(images)(images.raw[idx], images.normalization)
    return images[idx]


def training_subset(data: Dataset, idx: np.ndarray) -> Dataset:
    """``data`` whose training set is the examples ``idx`` (test set unchanged)."""
    idx = np.asarray(idx, dtype=np.int64)
    return replace(data, train_x=take(data.train_x, idx), train_y=np.asarray(data.train_y)[idx])
