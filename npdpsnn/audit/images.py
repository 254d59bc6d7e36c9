r"""Image similarity for reconstruction attacks: PSNR and SSIM on images in [0, 1].

PSNR, with peak value ``L = 1`` and the mean squared error over all pixels and
channels of one image:

.. math::

    \mathrm{PSNR}(x, y) = 10 \log_{10} \frac{L^2}{\mathrm{MSE}(x, y)} \quad (+\infty \text{ when } x = y).

SSIM of Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image Quality
Assessment: From Error Visibility to Structural Similarity", IEEE TIP 13(4), 2004,
with their parameters: an 11 x 11 Gaussian window of standard deviation 1.5
(normalised to sum 1), ``K1 = 0.01``, ``K2 = 0.03``, ``C1 = (K1 L)^2``,
``C2 = (K2 L)^2``.  At every window position fully inside the image ("valid",
as the authors' MATLAB ``ssim_index``), with weighted means ``mu``, variances
``sigma^2`` and covariance ``sigma_xy``:

.. math::

    \mathrm{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
                         {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},

averaged over positions, then over channels.  Images need at least 11 x 11 pixels.

Shapes: one image is ``(H, W)`` or ``(C, H, W)``; a batch is ``(N, H, W)`` or
``(N, C, H, W)``.  Values must lie in [0, 1] (clip or de-normalise first).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from npdpsnn.audit._checks import float_array
from npdpsnn.errors import UserError

__all__ = ["psnr", "psnr_batch", "ssim", "ssim_batch", "ssim_window"]

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1 = 0.01
K2 = 0.03
PEAK = 1.0


def psnr(x, y) -> float:
    """PSNR in dB of one image pair (``+inf`` for identical images)."""
    a, b = _pair(x, y, batch=False)
    return float(_psnr(a, b)[0])


def psnr_batch(x, y) -> np.ndarray:
    """PSNR in dB of each image pair of two batches, ``(N,)``."""
    return _psnr(*_pair(x, y, batch=True))


def ssim(x, y) -> float:
    """Mean SSIM of one image pair (1 for identical images)."""
    a, b = _pair(x, y, batch=False)
    return float(_ssim(a, b)[0])


def ssim_batch(x, y) -> np.ndarray:
    """Mean SSIM of each image pair of two batches, ``(N,)``."""
    return _ssim(*_pair(x, y, batch=True))


def ssim_window() -> np.ndarray:
    """The 11 x 11 Gaussian window (sigma 1.5, sum 1) of SSIM."""
    g = _gauss_1d()
    return np.outer(g, g)


# --------------------------------------------------------------------------


def _pair(x, y, *, batch: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 ``(N, C, H, W)`` (N = 1 for one image) after checking shapes and range."""
    a = float_array(x, "image x")
    b = float_array(y, "image y")
    if a.shape != b.shape:
        raise UserError(f"images differ in shape: {a.shape} and {b.shape}")
    ok_ndim = (3, 4) if batch else (2, 3)
    if a.ndim not in ok_ndim:
        want = "(N, H, W) or (N, C, H, W)" if batch else "(H, W) or (C, H, W)"
        raise UserError(f"expected {'a batch' if batch else 'an image'} of shape {want}, got {a.shape}")
    for name, arr in (("x", a), ("y", b)):
        if arr.size and (arr.min() < 0.0 or arr.max() > PEAK):
            raise UserError(f"image {name} has values outside [0, {PEAK:g}] "
                            f"({arr.min():.4g} .. {arr.max():.4g}); clip or de-normalise it first")
    if batch:
        shape = a.shape if a.ndim == 4 else (a.shape[0], 1) + a.shape[1:]
    else:
        shape = (1,) + (a.shape if a.ndim == 3 else (1,) + a.shape)
    return a.reshape(shape), b.reshape(shape)


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mse = np.mean((a - b) ** 2, axis=tuple(range(1, a.ndim)))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(PEAK**2 / mse)


def _gauss_1d() -> np.ndarray:
    k = np.arange(WINDOW_SIZE, dtype=np.float64) - (WINDOW_SIZE - 1) / 2.0
    g = np.exp(-(k**2) / (2.0 * WINDOW_SIGMA**2))
    return g / g.sum()


def _filter(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of ``(..., H, W)`` by the outer product of ``g``."""
    rows = sliding_window_view(img, g.size, axis=-1) @ g
    return sliding_window_view(rows, g.size, axis=-2) @ g


def _ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape[-1] < WINDOW_SIZE or a.shape[-2] < WINDOW_SIZE:
        raise UserError(f"SSIM needs images of at least {WINDOW_SIZE} x {WINDOW_SIZE} pixels, got "
                        f"{a.shape[-2]} x {a.shape[-1]}")
    g = _gauss_1d()
    c1, c2 = (K1 * PEAK) ** 2, (K2 * PEAK) ** 2
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    var_a = _filter(a * a, g) - mu_a**2
    var_b = _filter(b * b, g) - mu_b**2
    cov = _filter(a * b, g) - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return smap.mean(axis=(-1, -2)).mean(axis=-1)
