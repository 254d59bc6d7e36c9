"""Softmax cross-entropy of the logits (DPSNN paper, eq. 7): one home for every backend.

``L = log sum_j exp(z_j) - z_y`` with ``z`` the logits (the SNN's accumulated
output membrane over ``T``), and ``dL/dz = softmax(z) - onehot(y)``.  The
functions are plain Python over an array so each backend compiles the same
definition (Numba CPU: ``njit``; CUDA: ``cuda.jit(device=True)``).
"""

from __future__ import annotations

import math


def softmax_cross_entropy(z, y: int) -> float:
    """Returns the loss and overwrites ``z`` with ``dL/dz = softmax(z) - onehot(y)``
    (float64, max-shifted log-sum-exp)."""
    n = z.shape[0]
    m = z[0]
    for o in range(1, n):
        m = max(m, z[o])
    s = 0.0
    for o in range(n):
        s += math.exp(z[o] - m)
    lse = m + math.log(s)
    loss = lse - z[y]
    for o in range(n):
        z[o] = math.exp(z[o] - lse) - (1.0 if o == y else 0.0)
    return loss


def predicted_class(dz, y: int) -> int:
    """``argmax softmax(z)`` (first on ties) from ``dz = softmax(z) - onehot(y)``."""
    best = 0
    pbest = dz[0] + (1.0 if y == 0 else 0.0)
    for o in range(1, dz.shape[0]):
        po = dz[o] + (1.0 if y == o else 0.0)
        if po > pbest:
            best = o
            pbest = po
    return best


def cross_entropy_rows(logits, y):
    """Per-example ``L_i = log sum_j exp(z_ij) - z_iy`` of a batch ``(B, classes)``
    in float64 (the same eq. 7, vectorised with NumPy for evaluation)."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=1, keepdims=True) if z.shape[0] else np.zeros((0, 1))
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return lse - z[np.arange(z.shape[0]), np.asarray(y, dtype=np.int64)]
