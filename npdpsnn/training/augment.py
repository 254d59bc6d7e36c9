"""Augmentation multiplicity (De et al. 2022): K randomly shifted copies of each example.

An example's gradient is averaged over its ``K`` copies *before* clipping, so
it still contributes one clipped vector of norm at most ``R`` -- the
sensitivity, and hence the privacy guarantee, is that of plain DP-SGD.

The shifts are translations by up to ``max_shift`` pixels in each direction
(the vacated border takes the image's smallest value: the background of
normalised MNIST-like images).  They are drawn from
``SeedSequence([seed, 3, step, index])``: a function of the run's seed, the step
and the example's index alone, so training resumes exactly without storing any
generator state, whatever the micro-batching.
"""

from __future__ import annotations

import numpy as np

MAX_SHIFT = 2


def shifts(seed: int, step: int, indices: np.ndarray, k: int, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """``(len(indices), k, 2)`` integer shifts ``(dy, dx)`` in ``[-max_shift, max_shift]``;
    copy 0 is the unshifted example."""
    out = np.zeros((len(indices), k, 2), np.int64)
    for row, i in enumerate(np.asarray(indices, np.int64)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 3, step, int(i)]))
        out[row, 1:] = rng.integers(-max_shift, max_shift + 1, size=(k - 1, 2))
    return out


def shift_image(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``x`` ``(C, H, W)`` translated by ``(dy, dx)``, the border filled with its minimum."""
    out = np.full_like(x, x.min())
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def multiply(x: np.ndarray, seed: int, step: int, indices: np.ndarray, k: int) -> np.ndarray:
    """``(B * k, C, H, W)``: the ``k`` copies of each of the ``B`` examples, example-major."""
    sh = shifts(seed, step, indices, k)
    return np.stack([shift_image(x[b], int(dy), int(dx)) for b in range(len(x)) for dy, dx in sh[b]])
