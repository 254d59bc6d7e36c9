"""PSNR and SSIM against hand-computable cases and a direct window-by-window SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npdpsnn.audit import psnr, psnr_batch, ssim, ssim_batch, ssim_window
from npdpsnn.errors import UserError

C1, C2 = 0.01**2, 0.03**2


def _direct_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two (H, W) images by explicit weighted sums over every valid 11 x 11 window."""
    k = np.arange(11) - 5.0
    g = np.exp(-(k**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            ma, mb = np.sum(w * a), np.sum(w * b)
            va, vb = np.sum(w * (a - ma) ** 2), np.sum(w * (b - mb) ** 2)
            cov = np.sum(w * (a - ma) * (b - mb))
            vals.append((2 * ma * mb + C1) * (2 * cov + C2) / ((ma**2 + mb**2 + C1) * (va + vb + C2)))
    return float(np.mean(vals))


def test_identical_images():
    x = np.random.default_rng(0).random((1, 28, 28))
    assert psnr(x, x) == math.inf
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_constant_offset_psnr_is_exact():
    x = np.random.default_rng(1).random((28, 28)) * 0.8
    assert psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-9)  # MSE = 0.01


def test_constant_images_ssim_is_the_luminance_term():
    a, b = 0.3, 0.7
    x, y = np.full((16, 20), a), np.full((16, 20), b)
    assert ssim(x, y) == pytest.approx((2 * a * b + C1) / (a * a + b * b + C1), rel=1e-12)


def test_known_noise():
    rng = np.random.default_rng(2)
    x = np.full((28, 28), 0.5)
    noise = np.clip(rng.normal(0, 0.1, x.shape), -0.5, 0.5)
    y = x + noise
    assert psnr(x, y) == pytest.approx(10 * math.log10(1.0 / np.mean(noise**2)), rel=1e-12)
    # x flat: sigma_x = sigma_xy = 0, so SSIM = luminance * C2 / (sigma_y^2 + C2) -- well below 1
    s = ssim(x, y)
    assert s == pytest.approx(_direct_ssim(x, y), rel=1e-10)
    assert 0.0 < s < 0.2


def test_matches_direct_windows_on_random_images():
    rng = np.random.default_rng(3)
    x = rng.random((24, 26))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    assert ssim(x, y) == pytest.approx(_direct_ssim(x, y), rel=1e-10)


def test_batches_and_channels():
    rng = np.random.default_rng(4)
    x = rng.random((3, 2, 14, 15))
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    per_image = [ssim(x[i], y[i]) for i in range(3)]
    np.testing.assert_allclose(ssim_batch(x, y), per_image, rtol=1e-13)
    # a multi-channel image's SSIM is the mean over its channels
    assert per_image[0] == pytest.approx(np.mean([ssim(x[0, c], y[0, c]) for c in range(2)]), rel=1e-13)
    np.testing.assert_allclose(psnr_batch(x, y), [psnr(x[i], y[i]) for i in range(3)], rtol=1e-13)
    np.testing.assert_allclose(ssim_batch(x[:, 0], y[:, 0]), [ssim(x[i, 0], y[i, 0]) for i in range(3)])


def test_window():
    w = ssim_window()
    assert w.shape == (11, 11) and w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w.T)
    assert w[5, 5] / w[5, 6] == pytest.approx(math.exp(1 / (2 * 1.5**2)))


@pytest.mark.parametrize(
    "call",
    [
        lambda: psnr(np.zeros((8, 8)), np.zeros((8, 9))),
        lambda: psnr(np.zeros((8, 8)), np.full((8, 8), 1.5)),
        lambda: psnr(np.zeros((8, 8)), np.full((8, 8), -0.1)),
        lambda: psnr(np.zeros((8, 8)), np.full((8, 8), np.nan)),
        lambda: psnr(np.zeros(8), np.zeros(8)),
        lambda: ssim(np.zeros((8, 8)), np.zeros((8, 8))),
        lambda: ssim_batch(np.zeros((12, 12)), np.zeros((12, 12))),
    ],
)
def test_bad_input_raises_user_error(call):
    with pytest.raises(UserError):
        call()
