"""The ``reference`` backend: :mod:`.reference` (plain NumPy, float64) behind the
:class:`~npdpsnn.kernels.protocol.Backend` interface.

Gradients are float64; the clipped sum is :func:`~npdpsnn.privacy.mechanism.clip_flat`
of the per-example gradients (the same ``clip_factor`` rule as the kernels).
"""

from __future__ import annotations

import numpy as np

from npdpsnn.engine import Engine, blas_single_threaded
from npdpsnn.kernels import reference as ref
from npdpsnn.kernels.host import HostBackend
from npdpsnn.kernels.protocol import ClippedSum, Gradients, Model
from npdpsnn.kernels.validate import check_clip, check_dlogits
from npdpsnn.privacy.mechanism import clip_flat


class ReferenceBackend(HostBackend):
    name = "reference"

    def __init__(self, engine: Engine):
        self.engine = engine

    def forward(self, net: Model, x: np.ndarray) -> np.ndarray:
        with blas_single_threaded():
            return ref.forward(net.layers, net.params, x, net.config)

    def per_example_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients:
        with blas_single_threaded():
            grads, losses = ref.per_example_grads(net.layers, net.params, x, y, net.config)
        flat = np.concatenate([grads[s.name].reshape(len(x), s.size) for s in net.slots], axis=1)
        # (a bias-free network has no bias slots: the reference's grads follow net.slots)
        return Gradients(flat, losses)

    def clipped_sum(self, net: Model, x: np.ndarray, y: np.ndarray, clip: float) -> ClippedSum:
        clip = check_clip(clip)
        flat, losses = self.per_example_grads(net, x, y)
        total, norms = clip_flat(flat, clip)
        correct = (np.argmax(self.forward(net, x), axis=1) == y).astype(np.int8)
        return ClippedSum(total, norms, losses, correct)

    def input_vjp(self, net: Model, x: np.ndarray, dlogits: np.ndarray) -> np.ndarray:
        d = check_dlogits(dlogits, len(x), net.num_classes)
        with blas_single_threaded():
            return ref.input_vjp(net.layers, net.params, x, d, net.config)

    def input_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients:
        with blas_single_threaded():
            return Gradients(*ref.input_grads(net.layers, net.params, x, y, net.config))
