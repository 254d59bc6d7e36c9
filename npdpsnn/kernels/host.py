"""Bound data of the CPU backends and what the CPU backends share.

On the CPU, "binding" a data set to the device just keeps the host arrays:
``x`` may be any array-like of images ``(N, C, H, W)`` whose ``x[idx]`` gives
the float batch -- a float ndarray or a dataset's
:class:`~npdpsnn.data.normalization.NormalizedImages` (uint8 storage,
normalised float32 on indexing).
"""

from __future__ import annotations

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.kernels.protocol import ClippedSum, Model
from npdpsnn.kernels.validate import check_bound, check_indices, check_labels


def label_range(y: np.ndarray) -> tuple[int, int]:
    return (int(y.min()), int(y.max())) if y.size else (0, 0)


def image_shape(x) -> tuple[int, ...]:
    """``(C, H, W)`` of an image set ``(N, C, H, W)``."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 4 or not hasattr(x, "__getitem__") or not hasattr(x, "__len__"):
        raise UserError(f"data must be an indexable image array (N, C, H, W), got shape {shape}")
    return shape[1:]


class HostData:
    """A data set bound to a CPU backend: the host images and int64 labels."""

    def __init__(self, x, y=None):
        self.input_shape = image_shape(x)
        self.n = len(x)
        self.x = x
        self.y = check_labels(y, self.n)
        self.label_range = label_range(self.y)

    def take(self, idx) -> tuple[np.ndarray, np.ndarray]:
        idx = check_indices(idx, self.n)
        return np.asarray(self.x[idx]), self.y[idx]

    def __repr__(self) -> str:
        return f"HostData(n={self.n}, input_shape={self.input_shape})"


class HostBackend:
    """Indexed operations of the CPU backends, in terms of their batch operations."""

    def bind(self, x, y=None) -> HostData:
        return HostData(x, y)

    def clipped_sum_indexed(self, net: Model, data: HostData, idx, clip: float) -> ClippedSum:
        check_bound(net, data, labelled=True)
        x, y = data.take(idx)
        return self.clipped_sum(net, x, y, clip)

    def forward_indexed(self, net: Model, data: HostData, idx) -> np.ndarray:
        check_bound(net, data, labelled=False)
        return self.forward(net, data.take(idx)[0])
