r"""The privatised layer: per-example rows bounded to norm ``C``, plus Gaussian noise.

For the layer-``K`` feature :math:`h_i \in \mathbb{R}^d` of example ``i``
(:mod:`.features`) the released row is

.. math::

    z_i = \bar h_i + N(0, \sigma^2 C^2 I_d), \qquad
    \bar h_i = \begin{cases}
        h_i \min\{1, C / \lVert h_i \rVert\} & \text{bound = "clip"} \\
        C\, h_i / \lVert h_i \rVert          & \text{bound = "normalize"}
    \end{cases}

so :math:`\lVert \bar h_i \rVert \le C` for every example, whatever the data
(the factor is shrunk by :data:`~npdpsnn.privacy.mechanism.CLIP_MARGIN` so that
the bound holds after rounding, as in DP-SGD; a non-finite row becomes 0).
Replacing one example moves one row by at most :math:`2C`: the Gaussian
mechanism with noise multiplier :math:`\sigma / 2` (the ledger event
:class:`~npdpsnn.privacy.events.ActivationReleaseEvent`; the argument is in
:mod:`npdpsnn.neuraldp.accounting`).

Centring (optional): rows of positive spike counts share a large common
component that uses up the norm budget.  :func:`noisy_mean` releases
:math:`c = (\sum_i \bar h_i^{(C_c)} + N(0, \sigma_c^2 C_c^2 I)) / N` -- the same
kind of event (a sum of rows bounded by :math:`C_c`), with ``N`` public -- and
the rows are then bounded and released as :math:`\overline{(h_i - c)}`.

Backward pass: :func:`bound_rows_vjp` is the vector-Jacobian product of the
bounding, :math:`J^\top g` with :math:`J = \frac{C}{\lVert h\rVert}(I - u u^\top)`,
:math:`u = h / \lVert h \rVert`, where the row is scaled (identity where
"clip" leaves it unchanged).  The layers above ``K`` do not need it -- they
read the noisy row :math:`z_i` as their input, a constant -- but any training
of the layers at or below ``K`` through the privatised layer does, and it must
then itself be DP-SGD (:mod:`npdpsnn.neuraldp.guard` refuses anything else).
"""

from __future__ import annotations

import math

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.privacy.mechanism import CLIP_MARGIN

__all__ = ["BOUNDS", "bound_rows", "bound_rows_vjp", "noisy_mean", "release_rows"]

#: How a row is bounded to norm C.
BOUNDS: tuple[str, ...] = ("clip", "normalize")


def bound_rows(h, clip: float, bound: str = "clip") -> np.ndarray:
    """Rows of ``h`` ``(B, d)`` bounded to L2 norm ``clip`` (float64; see the module docstring)."""
    h = _rows(h)
    _check(clip, bound)
    scale = _scale(_norms(h), clip, bound)
    return np.where(scale[:, None] != 0.0, h, 0.0) * scale[:, None]  # dropped rows: 0, not 0 * inf


def bound_rows_vjp(h, grad, clip: float, bound: str = "clip") -> np.ndarray:
    r""":math:`J^\top g` of :func:`bound_rows` at ``h`` for upstream gradients ``grad`` (both ``(B, d)``)."""
    h = _rows(h)
    g = _rows(grad)
    if g.shape != h.shape:
        raise UserError(f"grad must have the shape of h {h.shape}, got {g.shape}")
    _check(clip, bound)
    norms = _norms(h)
    scale = _scale(norms, clip, bound)
    scaled = (scale != 1.0) & (norms > 0) & np.isfinite(norms)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(scaled[:, None], h / np.where(scaled, norms, 1.0)[:, None], 0.0)
    radial = np.einsum("ij,ij->i", u, g)
    return scale[:, None] * (g - u * radial[:, None])


def release_rows(h, clip: float, sigma: float, rng: np.random.Generator, bound: str = "clip") -> np.ndarray:
    """``bound_rows(h) + N(0, sigma^2 clip^2 I)``: one noisy row per example (float64)."""
    _check_sigma(sigma)
    rows = bound_rows(h, clip, bound)
    return rows + rng.normal(0.0, sigma * clip, size=rows.shape)


def noisy_mean(h, clip: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``(sum_i clip_rows(h)_i + N(0, sigma^2 clip^2 I)) / N`` ``(d,)``: the DP centre (``N`` public)."""
    _check_sigma(sigma)
    rows = bound_rows(h, clip, "clip")
    if len(rows) == 0:
        raise UserError("noisy_mean needs at least one row")
    return (rows.sum(axis=0) + rng.normal(0.0, sigma * clip, size=rows.shape[1])) / len(rows)


# ---------------------------------------------------------------- helpers
def _rows(h) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64)
    if h.ndim != 2:
        raise UserError(f"rows must be a (B, d) array, got shape {h.shape}")
    return h


def _check(clip: float, bound: str) -> None:
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not (math.isfinite(clip) and clip > 0):
        raise UserError(f"the row bound C must be a finite number > 0, got {clip!r}")
    if bound not in BOUNDS:
        raise UserError(f"bound must be one of {', '.join(BOUNDS)}, got {bound!r}")


def _check_sigma(sigma: float) -> None:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (math.isfinite(sigma) and sigma > 0):
        raise UserError(f"noise multiplier sigma must be a finite number > 0, got {sigma!r}")


def _norms(h: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.sqrt(np.einsum("ij,ij->i", h, h))


def _scale(norms: np.ndarray, clip: float, bound: str) -> np.ndarray:
    """Per-row factor: norm after scaling <= clip (1 - CLIP_MARGIN); 0 for non-finite or zero-norm rows
    (normalising a zero row)."""
    limit = clip * (1.0 - CLIP_MARGIN)
    finite = np.isfinite(norms)
    safe = np.where(finite & (norms > 0), norms, 1.0)
    if bound == "clip":
        scale = np.where(norms <= limit, 1.0, limit / safe)
    else:
        scale = np.where(norms > 0, limit / safe, 0.0)
    return np.where(finite, scale, 0.0)
