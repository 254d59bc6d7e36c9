"""Seeded, stratified (per-class) train/test split."""

from __future__ import annotations

import math

import numpy as np

from npdpsnn.errors import UserError

__all__ = ["per_class_split", "holdout_count"]


def holdout_count(n: int, test_fraction: float) -> int:
    """Number of a class's ``n`` items that go to test: ``test_fraction * n`` rounded half up."""
    return int(math.floor(test_fraction * n + 0.5))


def per_class_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split item indices into train and test, class by class.

    For each class ``c`` in increasing order, with its ``n_c`` item indices in
    increasing order, ``rng.permutation(n_c)`` (one ``numpy.random.default_rng(seed)``
    shared across classes, used in that order) picks the first
    ``holdout_count(n_c, test_fraction)`` of them for test; the rest go to train.

    Returns:
        ``(train_idx, test_idx)``: sorted ``int64`` index arrays, disjoint and
        together covering ``0 .. len(labels)-1``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError("labels must be a 1-D integer array")
    if not (isinstance(test_fraction, (int, float)) and 0.0 <= test_fraction <= 1.0):
        raise UserError(f"test_fraction must be in [0, 1], got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative int, got {seed!r}")
    return _per_class_split(labels, float(test_fraction), int(seed))


def _per_class_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_test = np.zeros(labels.shape[0], dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n_test = holdout_count(members.shape[0], test_fraction)
        chosen = rng.permutation(members.shape[0])[:n_test]
        is_test[members[chosen]] = True
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)
