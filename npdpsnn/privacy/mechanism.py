"""The DP-SGD mechanism: clip, sum, add Gaussian noise, average (DPSNN eqs. 11-12).

For a logical batch ``S`` drawn by the sampler::

    g_i   = per-example gradient over all parameters (one flat vector)
    gbar_i = g_i / max(1, ||g_i||_2 / R)                        (eq. 11, flat)
    G     = (sum_{i in S} gbar_i + N(0, sigma^2 R^2 I)) / B     (eq. 12)

with ``B`` the *expected* batch size ``qN`` -- a public constant, never the drawn
``|S|``, which would leak.  The noise is drawn once per logical batch, in
float64, also for an empty batch.  Removing or adding one example changes the
clipped sum by at most ``R`` in L2 norm: the Gaussian mechanism's sensitivity.

Per-layer clipping (option): each of the ``L`` parameter tensors ``k`` is clipped
to ``R_k = R / sqrt(L)``, so the whole clipped vector still has norm at most
``sqrt(sum_k R_k^2) = R`` and the same noise gives the same guarantee.

Normalisation (option, "AUTO-S" of Bu, Wang, Zha & Karypis, NeurIPS 2023):
``gbar_i = g_i R / (||g_i|| + gamma)``, norm ``R ||g|| / (||g|| + gamma) < R``:
every example contributes an almost unit direction, so ``R`` only scales the
learning rate; the sensitivity and the guarantee are those of clipping to ``R``.

The noise comes from a source of :mod:`npdpsnn.privacy.noise`: NumPy's sampler
(the default), counter-based Philox kernels, or the secure source, which uses
OS entropy and sums several Gaussians per coordinate to harden the sampler
against floating-point attacks (Mironov 2012; Holohan & Braghin 2021).
"""

from __future__ import annotations

import math

import numpy as np

from npdpsnn.errors import UserError

CLIPPINGS: tuple[str, ...] = ("flat", "per-layer", "normalize")

#: Stability constant of normalisation (AUTO-S, Bu et al. 2023): g R / (||g|| + gamma).
NORMALIZE_GAMMA = 0.01

# Relative safety margin of the clipping factor.  The norm is computed in float64
# from float32 gradients; its rounding error is at most about P * 2**-53 relative
# (< 1e-10 for P < 1e6), so shrinking the factor by 1e-9 guarantees that the
# clipped vector's exact norm is <= R.
CLIP_MARGIN = 1e-9


def clip_factor(norm: float, clip: float) -> float:
    """The factor ``c`` with ``||c g|| <= R`` for a gradient of L2 norm ``norm``
    (eq. 11, ``1 / max(1, ||g|| / R)``, shrunk by :data:`CLIP_MARGIN` when it
    clips).  A non-finite norm gives 0: that example contributes nothing (norm 0
    <= R) instead of turning the whole sum into NaN.  One definition for every
    backend (NumPy, Numba CPU, CUDA)."""
    if not norm < math.inf:  # NaN or +inf
        return 0.0
    limit = clip * (1.0 - CLIP_MARGIN)
    if norm <= limit:
        return 1.0
    return limit / norm


def check_dp_args(sigma: float, clip: float, expected_batch_size: float) -> None:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise UserError(f"noise multiplier sigma must be finite and >= 0, got {sigma}")
    if not clip > 0:
        raise UserError(f"clipping norm R must be > 0, got {clip}")
    if not expected_batch_size > 0:
        raise UserError(f"expected batch size must be > 0, got {expected_batch_size}")


def add_noise(clipped_sum: np.ndarray, sigma: float, clip: float, expected_batch_size: float,
              rng) -> np.ndarray:
    """``(sum + N(0, sigma^2 R^2 I)) / B`` in float64 (eq. 12).

    ``rng`` is a NumPy ``Generator`` or a noise source of
    :mod:`npdpsnn.privacy.noise` (``normal(std, n)``: one call per step).
    ``clip`` may be ``inf`` only with ``sigma == 0`` (non-private SGD).
    """
    check_dp_args(sigma, clip, expected_batch_size)
    total = np.asarray(clipped_sum, dtype=np.float64)
    if sigma > 0:
        if not math.isfinite(clip):
            raise UserError("noise needs a finite clipping norm R")
        if isinstance(rng, np.random.Generator):
            noise = rng.normal(0.0, sigma * clip, size=total.shape)
        else:
            noise = rng.normal(sigma * clip, total.size).reshape(total.shape)
        total = total + noise
    return total / expected_batch_size


_clip_factor_vec = np.vectorize(clip_factor, otypes=[np.float64])


def _clipped_rows(g: np.ndarray, clip: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows get factor 0 below
        norms = np.sqrt(np.einsum("ij,ij->i", g, g))
        scale = _clip_factor_vec(norms, clip)
    out = np.where(scale[:, None] != 0.0, g, 0.0) * scale[:, None]  # dropped rows: 0, not 0 * inf
    return out, norms


def clip_per_layer(flat_grads: np.ndarray, bounds: list[tuple[int, int]], clip: float) -> np.ndarray:
    """Per-layer clipping of per-example gradients ``(B, P)``: each slice
    ``[start, stop)`` is clipped to ``R / sqrt(L)``; returns the clipped sum (P,)."""
    g = np.asarray(flat_grads, dtype=np.float64)
    out = np.zeros(g.shape[1])
    r = clip / math.sqrt(len(bounds))
    for start, stop in bounds:
        out[start:stop] = _clipped_rows(g[:, start:stop], r)[0].sum(axis=0)
    return out


def normalize_flat(flat_grads: np.ndarray, clip: float, gamma: float = NORMALIZE_GAMMA) -> np.ndarray:
    """Normalised per-example gradients ``(B, P)`` summed: ``sum_i g_i R / (||g_i|| + gamma)``
    (each term of norm < R; non-finite rows contribute 0)."""
    g = np.asarray(flat_grads, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", g, g))
    finite = np.isfinite(norms)
    scale = np.where(finite, clip * (1.0 - CLIP_MARGIN) / (np.where(finite, norms, 0.0) + gamma), 0.0)
    return (np.where(finite[:, None], g, 0.0) * scale[:, None]).sum(axis=0)


def privatize_rows(flat_grads: np.ndarray, clipping: str, clip: float, bounds: list[tuple[int, int]]) -> np.ndarray:
    """The bounded-sensitivity sum of per-example gradients ``(B, P)`` for ``clipping``
    (a name in :data:`CLIPPINGS`): every example moves it by at most ``clip``."""
    if clipping == "flat":
        return clip_flat(flat_grads, clip)[0]
    if clipping == "per-layer":
        return clip_per_layer(flat_grads, bounds, clip)
    if clipping == "normalize":
        return normalize_flat(flat_grads, clip)
    raise UserError(f"unknown clipping {clipping!r}; choose one of {', '.join(CLIPPINGS)}")


def clip_flat(flat_grads: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat clipping of per-example gradients ``(B, P)`` (eq. 11): ``(sum, norms)``."""
    rows, norms = _clipped_rows(np.asarray(flat_grads, dtype=np.float64), clip)
    return rows.sum(axis=0), norms
