"""Pixel normalisation shared by training and evaluation.

``x = (pixel / 255 - mean) / std``, computed in float32.  ``mean`` and ``std``
are fixed per dataset (MNIST 0.1307/0.3081, Fashion-MNIST 0.2860/0.3530) or,
for Extended Yale B, measured on the training split (see :mod:`.yaleb`).  They
travel with the dataset in :attr:`Dataset.normalization`, so evaluation code
calls :func:`normalize` with the same dict and gets identical inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from npdpsnn.errors import UserError

__all__ = ["normalize", "pixel_stats"]


def normalize(images_uint8: np.ndarray, normalization: Mapping[str, float]) -> np.ndarray:
    """Map ``uint8`` pixels to ``float32`` as ``(pixel/255 - mean)/std``.

    Args:
        images_uint8: any shape, dtype ``uint8``.
        normalization: a mapping with float ``"mean"`` and ``"std"`` (``std > 0``),
            e.g. :attr:`Dataset.normalization`.

    Returns:
        A new float32 array with the same shape.
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8:
        raise UserError(f"normalize expects uint8 pixels, got dtype {images.dtype}")
    mean, std = _mean_std(normalization)
    return _normalize(images, mean, std)


def pixel_stats(images_uint8: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation of ``pixel/255`` over all pixels (float64)."""
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.size == 0:
        raise UserError("pixel_stats expects a non-empty uint8 array")
    scaled = images.astype(np.float64) / 255.0
    return {"mean": float(scaled.mean()), "std": float(scaled.std())}


def _mean_std(normalization: Mapping[str, float]) -> tuple[float, float]:
    try:
        mean = float(normalization["mean"])
        std = float(normalization["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(
            f"normalization must map 'mean' and 'std' to numbers, got {normalization!r}"
        ) from exc
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise UserError(f"normalization needs finite mean and std > 0, got {mean}, {std}")
    return mean, std


def _normalize(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    out = images.astype(np.float32)
    out /= np.float32(255.0)
    out -= np.float32(mean)
    out /= np.float32(std)
    return out


class NormalizedImages:
    """uint8 images ``(N, 1, H, W)`` that normalise on indexing.

    Behaves like the float32 array ``normalize(images, normalization)`` for
    ``len``, ``shape``, ``dtype``, indexing (``x[idx]`` returns a float32
    ndarray) and ``np.asarray(x)``, but stores 1 byte per pixel: a batch is
    normalised only when it is read, identically in training and evaluation.
    """

    def __init__(self, images_uint8: np.ndarray, normalization: Mapping[str, float]):
        images = np.asarray(images_uint8)
        if images.dtype != np.uint8:
            raise UserError(f"NormalizedImages expects uint8 pixels, got dtype {images.dtype}")
        self.raw = images
        self.normalization = dict(normalization)
        self._mean, self._std = _mean_std(normalization)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.raw.shape

    @property
    def ndim(self) -> int:
        return self.raw.ndim

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, idx) -> np.ndarray:
        return _normalize(np.asarray(self.raw[idx]), self._mean, self._std)

    def __array__(self, dtype=None, copy=None):
        out = _normalize(self.raw, self._mean, self._std)
        return out if dtype is None else out.astype(dtype)

    def head(self, n: int) -> "NormalizedImages":
        """The first ``n`` images, still stored as uint8."""
        return NormalizedImages(self.raw[:n], self.normalization)

    def __repr__(self) -> str:
        return f"NormalizedImages(shape={self.shape}, normalization={self.normalization})"
