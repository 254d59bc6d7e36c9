"""The privatised layer: every released row bounded to norm C before noise, the noise's
statistics, and the backward pass through the bounding."""

from __future__ import annotations

import numpy as np
import pytest

from npdpsnn.errors import UserError
from npdpsnn.neuraldp.release import bound_rows, bound_rows_vjp, noisy_mean, release_rows


def _rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    h = rng.normal(size=(200, 17)) * rng.choice([1e-3, 1.0, 30.0, 1e6], size=(200, 1))
    h[0] = 0.0
    h[1, 3] = np.inf
    h[2, 0] = np.nan
    h[3] = 1e300
    return h


@pytest.mark.parametrize("bound", ["clip", "normalize"])
def test_every_row_is_bounded_before_noise(bound):
    h, C = _rows(), 2.5
    rows = bound_rows(h, C, bound)
    norms = np.linalg.norm(rows, axis=1)
    assert np.all(np.isfinite(rows)) and np.all(norms <= C)
    assert np.all(rows[1] == 0) and np.all(rows[2] == 0) and np.all(rows[0] == 0)  # non-finite and zero rows
    with np.errstate(over="ignore", invalid="ignore"):
        h_norms = np.linalg.norm(h, axis=1)  # row 3 overflows: it is dropped like a non-finite row
    finite = np.isfinite(h_norms) & (h_norms > 0)
    if bound == "normalize":
        np.testing.assert_allclose(norms[finite], C, rtol=1e-8)
    else:
        small = h_norms < C * (1 - 1e-6)
        np.testing.assert_array_equal(rows[small], h[small])  # rows inside the ball are left alone


def test_noise_statistics():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(4000, 8)) * 3.0
    C, sigma = 1.5, 0.8
    bounded = bound_rows(h, C)
    noise = release_rows(h, C, sigma, np.random.default_rng(2)) - bounded
    n = noise.size
    assert abs(noise.mean()) < 4 * sigma * C / np.sqrt(n)
    var_ratio = noise.var() / (sigma * C) ** 2  # ~ chi2(n)/n: sd sqrt(2/n)
    assert abs(var_ratio - 1.0) < 5 * np.sqrt(2.0 / n)
    corr = np.corrcoef(noise.T)[np.triu_indices(8, 1)]
    assert np.all(np.abs(corr) < 5 / np.sqrt(len(noise)))
    mean = np.array([noisy_mean(h, C, sigma, np.random.default_rng(s)) for s in range(300)])
    np.testing.assert_allclose(mean.std(axis=0), sigma * C / len(h), rtol=0.25)
    np.testing.assert_allclose(mean.mean(axis=0), bounded.mean(axis=0), atol=5 * sigma * C / len(h) / np.sqrt(300))


@pytest.mark.parametrize("bound", ["clip", "normalize"])
def test_backward_through_the_bound_matches_finite_differences(bound):
    rng = np.random.default_rng(3)
    h = rng.normal(size=(6, 5)) * np.array([[0.1], [0.5], [2.0], [3.0], [10.0], [0.2]])
    g = rng.normal(size=h.shape)
    C, eps = 1.0, 1e-6
    got = bound_rows_vjp(h, g, C, bound)
    want = np.zeros_like(h)
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            d = np.zeros_like(h)
            d[i, j] = eps
            want[i, j] = np.sum(g * (bound_rows(h + d, C, bound) - bound_rows(h - d, C, bound))) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_bad_arguments():
    with pytest.raises(UserError, match="row bound C"):
        bound_rows(np.ones((2, 2)), 0.0)
    with pytest.raises(UserError, match="bound"):
        bound_rows(np.ones((2, 2)), 1.0, "scale")
    with pytest.raises(UserError, match="sigma"):
        release_rows(np.ones((2, 2)), 1.0, -1.0, np.random.default_rng(0))
    with pytest.raises(UserError, match="shape"):
        bound_rows_vjp(np.ones((2, 2)), np.ones((2, 3)), 1.0)
