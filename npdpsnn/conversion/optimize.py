"""Optimising network inputs towards target output distributions: the one loop
that class impressions (:mod:`.impressions`) and class inversion (:mod:`.leakage`) share.

Loss (Nayak et al. 2019, eq. 5; PrivateSNN's generator): the cross-entropy of the
temperature-softened output against a target distribution ``q``::

    L(x) = - sum_k q_k log softmax(z(x) / tau)_k,   dL/dz = (softmax(z / tau) - q) / tau

``dL/dx`` is the network's input vector-Jacobian product
(:meth:`npdpsnn.network.Network.input_vjp`; surrogate gradients for an SNN), and
``x`` moves by Adam (Kingma & Ba 2015), kept inside the box ``[lo, hi]`` of
valid (normalised) pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.network import Network

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSearch:
    """Settings of :func:`optimize_inputs`: ``iterations``, Adam ``lr`` (betas
    0.9 / 0.999, eps 1e-8), softmax temperature ``tau``, ``batch`` images per
    input-gradient call."""

    iterations: int = 300
    lr: float = 0.05
    tau: float = 20.0
    batch: int = 250

    def __post_init__(self) -> None:
        if not (isinstance(self.iterations, int) and self.iterations >= 0):
            raise UserError(f"iterations must be an integer >= 0, got {self.iterations!r}")
        if not self.lr > 0 or not self.tau > 0:
            raise UserError(f"lr and tau must be > 0, got lr={self.lr!r}, tau={self.tau!r}")
        if not (isinstance(self.batch, int) and self.batch >= 1):
            raise UserError(f"batch must be an integer >= 1, got {self.batch!r}")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def optimize_inputs(net: Network, targets: np.ndarray, box: tuple[float, float], search: InputSearch,
                    rng: np.random.Generator, backend: str = "reference") -> np.ndarray:
    """Images ``(N, C, H, W)`` float32 whose softened outputs approach the rows of
    ``targets`` ``(N, classes)`` (probability vectors), started from uniform noise
    on ``box``."""
    targets = np.asarray(targets, np.float64)
    if targets.ndim != 2 or targets.shape[1] != net.num_classes:
        raise UserError(f"targets must have shape (N, {net.num_classes}), got {targets.shape}")
    if np.any(targets < 0) or not np.allclose(targets.sum(axis=1), 1.0, atol=1e-6):
        raise UserError("every target row must be a probability vector")
    lo, hi = float(box[0]), float(box[1])
    if not lo < hi:
        raise UserError(f"the pixel box must have lo < hi, got {box!r}")
    n = len(targets)
    x = rng.uniform(lo, hi, (n, *net.input_shape))
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for it in range(1, search.iterations + 1):
        for s in range(0, n, search.batch):
            xs = x[s : s + search.batch]
            z = net.forward(xs, backend)
            dz = (softmax(z / search.tau) - targets[s : s + search.batch]) / search.tau
            g = net.input_vjp(xs, dz, backend)
            m[s : s + search.batch] = b1 * m[s : s + search.batch] + (1 - b1) * g
            v[s : s + search.batch] = b2 * v[s : s + search.batch] + (1 - b2) * g * g
            mh = m[s : s + search.batch] / (1 - b1**it)
            vh = v[s : s + search.batch] / (1 - b2**it)
            x[s : s + search.batch] = np.clip(xs - search.lr * mh / (np.sqrt(vh) + eps), lo, hi)
        if it % 50 == 0 or it == search.iterations:
            z = net.forward(x[: search.batch], backend)
            ce = -np.sum(targets[: search.batch] * np.log(softmax(z / search.tau) + 1e-300), axis=1).mean()
            log.info("input search: iteration %d/%d, softened cross-entropy %.4f", it, search.iterations, ce)
    return x.astype(np.float32)
