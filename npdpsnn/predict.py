"""Predictions for one's own images: read, fit to the model's input, normalise, classify.

Images are grey: PNG (:mod:`npdpsnn.data.png`), binary PGM (:mod:`npdpsnn.data.pgm`)
or NumPy ``.npy`` (``(H, W)`` or a batch ``(N, H, W)``, uint8 in [0, 255] or
float in [0, 1]; read with ``allow_pickle=False``).  A larger image is
downscaled to the model's input size by exact area averaging (as Yale B's
images are); a smaller one is refused.  Normalisation is the model's own
(``pixels / 255``, then ``(x - mean) / std`` as stored in ``model.h5``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npdpsnn.data.normalization import normalize
from npdpsnn.data.pgm import read_pgm
from npdpsnn.data.png import read_png
from npdpsnn.data.resize import area_resize
from npdpsnn.errors import DataError, UserError
from npdpsnn.limits import MAX_DATA_FILE_BYTES
from npdpsnn.network import Network


def _read(path: Path) -> list[np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".png":
        return [read_png(path)]
    if suffix == ".pgm":
        return [read_pgm(path)]
    if suffix == ".npy":
        from npdpsnn.input_files import open_input_file

        with open_input_file(path, max_bytes=MAX_DATA_FILE_BYTES, error=DataError, what="image") as f:
            try:
                arr = np.load(f, allow_pickle=False)
            except ValueError as exc:
                raise DataError(f"{path}: not a plain .npy array ({exc})") from None
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise DataError(f"{path}: expected (H, W) or (N, H, W), got shape {arr.shape}")
        if np.issubdtype(arr.dtype, np.floating):
            if not (np.all(np.isfinite(arr)) and arr.min() >= 0 and arr.max() <= 1):
                raise DataError(f"{path}: float images must lie in [0, 1]")
            arr = np.rint(arr * 255)
        elif not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
            raise DataError(f"{path}: integer images must lie in [0, 255]")
        return list(arr.astype(np.uint8))
    raise UserError(f"{path}: unsupported image type {suffix or '(none)'}; use .png, .pgm or .npy")


def load_images(paths, input_shape: tuple[int, int, int]) -> tuple[list[str], np.ndarray]:
    """``(names, uint8 images (N, 1, H, W))`` fitted to ``input_shape``."""
    c, h, w = input_shape
    if c != 1:
        raise UserError(f"the model takes {c} channels; predict reads grey images only")
    names, out = [], []
    for path in map(Path, paths):
        for i, img in enumerate(_read(path)):
            if img.shape != (h, w):
                if img.shape[0] < h or img.shape[1] < w:
                    raise UserError(f"{path}: {img.shape[1]}x{img.shape[0]} is smaller than the model's {w}x{h}")
                img = area_resize(img, (h, w))
            names.append(str(path) if i == 0 and path.suffix.lower() != ".npy" else f"{path}[{i}]")
            out.append(img[None])
    return names, np.stack(out)


def predict_images(net: Network, pixels: np.ndarray, normalization: dict, backend: str = "numba") -> np.ndarray:
    """Class probabilities ``(N, classes)`` (softmax of the logits, float64)."""
    logits = net.forward(normalize(pixels, normalization), backend=backend)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
