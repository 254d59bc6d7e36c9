"""Exact area-averaging image downscaling (like OpenCV ``INTER_AREA``), NumPy only."""

from __future__ import annotations

import numpy as np

from npdpsnn.errors import UserError

__all__ = ["area_resize", "area_weights"]


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Matrix ``(n_out, n_in)`` of area-averaging weights along one axis.

    Output pixel ``i`` covers the input interval ``[i*s, (i+1)*s)`` with
    ``s = n_in / n_out``; the weight of input pixel ``j`` is the length of the
    overlap of ``[j, j+1)`` with that interval, divided by ``s``.  Each row sums
    to 1.  Only downscaling (``n_out <= n_in``) is supported.
    """
    if not (isinstance(n_in, int) and isinstance(n_out, int) and 0 < n_out <= n_in):
        raise UserError(f"area_weights needs 0 < n_out <= n_in, got {n_in}, {n_out}")
    return _area_weights(n_in, n_out)


def area_resize(image: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Downscale a 2-D ``uint8`` image to ``out_shape`` by exact area averaging.

    Each output pixel is the mean of the input pixels under it (fractional
    pixels weighted by their covered fraction), rounded to the nearest integer
    (``numpy.rint``, ties to even) and returned as ``uint8``.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise UserError(f"area_resize expects a 2-D uint8 image, got {image.dtype} {image.shape}")
    rows = area_weights(image.shape[0], int(out_shape[0]))
    cols = area_weights(image.shape[1], int(out_shape[1]))
    return _apply(image, rows, cols)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    scale = n_in / n_out
    lo = np.arange(n_out, dtype=np.float64)[:, None] * scale
    hi = lo + scale
    j = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.minimum(j + 1.0, hi) - np.maximum(j, lo)
    return np.clip(overlap, 0.0, None) / scale


def _apply(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = rows @ image.astype(np.float64) @ cols.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
