"""Statistical and exact tests of the DP-SGD mechanism (clipping, noise, sampling)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from npdpsnn import Network
from npdpsnn.errors import UserError
from npdpsnn.privacy.mechanism import add_noise, clip_flat, clip_per_layer
from npdpsnn.privacy.sampling import PoissonSampler, ShuffleSampler, make_sampler
from npdpsnn.training.optimizer import SGD

SPEC = "4C3S1-P2S2-8-3"
SHAPE = (1, 8, 8)


def _net(seed=0, **kw):
    return Network.from_spec(SPEC, SHAPE, seed=seed, T=3, **kw)


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *SHAPE)).astype(np.float32), rng.integers(0, 3, n)


def test_zero_gradient_update_norm_follows_scaled_chi():
    # With a zero clipped sum the update is N(0, sigma^2 R^2 I) / B: its squared norm
    # times (B / (sigma R))^2 is chi-square with P degrees of freedom.
    sigma, clip, b, p, draws = 1.3, 1.5, 250.0, 40, 3000
    rng = np.random.default_rng(123)
    z = np.array([np.sum(add_noise(np.zeros(p), sigma, clip, b, rng) ** 2) for _ in range(draws)])
    z *= (b / (sigma * clip)) ** 2
    assert stats.kstest(z, stats.chi2(df=p).cdf).pvalue > 1e-3
    # and the coordinates are N(0, (sigma R / B)^2)
    coords = np.concatenate([add_noise(np.zeros(p), sigma, clip, b, rng) for _ in range(200)])
    assert stats.kstest(coords / (sigma * clip / b), "norm").pvalue > 1e-3


def test_noise_is_drawn_even_for_an_empty_batch():
    rng = np.random.default_rng(0)
    out = add_noise(np.zeros(10), 1.0, 1.0, 5.0, rng)
    assert np.all(out != 0)


def test_sigma_zero_infinite_clip_is_plain_sgd():
    net = _net()
    x, y = _data(6)
    grads, _ = net.per_example_grads(x, y)
    flat = np.concatenate([grads[s.name].reshape(6, -1) for s in net.slots], axis=1).astype(np.float64)
    total, norms, _, _ = net.clipped_grad_sum(x, y, math.inf)
    np.testing.assert_allclose(total, flat.sum(axis=0), rtol=1e-6, atol=1e-9)
    g = add_noise(total, 0.0, math.inf, 6.0, np.random.default_rng(0))
    theta0 = net.theta.copy()
    SGD(net.num_params, lr=0.1).step(net.theta, g)
    np.testing.assert_allclose(net.theta, (theta0 - 0.1 * flat.mean(axis=0)).astype(np.float32), rtol=1e-6,
                               atol=1e-7)


def test_infinite_clip_with_noise_is_refused():
    with pytest.raises(UserError):
        add_noise(np.zeros(3), 1.0, math.inf, 1.0, np.random.default_rng(0))
    with pytest.raises(UserError):
        add_noise(np.zeros(3), -1.0, 1.0, 1.0, np.random.default_rng(0))


def test_poisson_batch_sizes_mean_and_variance():
    n, b, draws = 2000, 100, 4000
    s = PoissonSampler(n, b, np.random.default_rng(7))
    sizes = np.array([len(s.batch()) for _ in range(draws)])
    q = b / n
    mean, var = q * n, q * (1 - q) * n
    assert abs(sizes.mean() - mean) < 4 * math.sqrt(var / draws)
    # sample variance: (draws-1) s^2 / var ~ chi2(draws-1)
    chi = (draws - 1) * sizes.var(ddof=1) / var
    assert stats.chi2(draws - 1).cdf(chi) > 1e-4 and stats.chi2(draws - 1).sf(chi) > 1e-4


def test_poisson_inclusion_is_uniform_and_independent_of_position():
    n, b = 50, 10
    s = PoissonSampler(n, b, np.random.default_rng(3))
    counts = np.zeros(n)
    for _ in range(4000):
        counts[s.batch()] += 1
    assert stats.chisquare(counts).pvalue > 1e-3
    assert s.steps_per_epoch == 5 and s.sample_rate == 0.2


def test_empty_poisson_batches_happen_and_are_allowed():
    s = PoissonSampler(100, 1, np.random.default_rng(0))  # q = 0.01: P(empty) = 0.366
    sizes = [len(s.batch()) for _ in range(200)]
    assert 0 in sizes


def test_shuffle_sampler_one_pass_fixed_size():
    s = ShuffleSampler(103, 10, np.random.default_rng(0))
    batches = list(s.epoch())
    assert len(batches) == 10 and all(len(bt) == 10 for bt in batches)
    allidx = np.concatenate(batches)
    assert len(np.unique(allidx)) == 100
    assert not s.covered_by_analysis and PoissonSampler.covered_by_analysis


def test_sampler_validation():
    with pytest.raises(UserError, match="larger than the dataset"):
        make_sampler("poisson", 10, 11, np.random.default_rng(0))
    with pytest.raises(UserError, match="unknown sampling"):
        make_sampler("bogus", 10, 1, np.random.default_rng(0))


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_one_huge_example_moves_clipped_sum_by_at_most_R(backend):
    net = _net(seed=1)
    x, y = _data(5, seed=2)
    x[2] *= 1e3  # a huge input
    clip = 0.05  # far below that example's gradient norm
    with_all, norms, _, _ = net.clipped_grad_sum(x, y, clip, backend=backend)
    keep = np.array([0, 1, 3, 4])
    without, _, _, _ = net.clipped_grad_sum(x[keep], y[keep], clip, backend=backend)
    assert norms[2] > 10 * clip
    diff = np.linalg.norm(with_all - without)
    assert diff <= clip * (1 + 1e-9)
    assert diff > 0.99 * clip  # the clipped contribution has norm exactly R


def test_clip_flat_bounds_every_contribution():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(20, 30)) * rng.uniform(0.01, 10, size=(20, 1))
    total, norms = clip_flat(g, 1.0)
    np.testing.assert_allclose(norms, np.linalg.norm(g, axis=1))
    scaled = g * np.minimum(1, 1.0 / norms)[:, None]
    np.testing.assert_allclose(total, scaled.sum(axis=0))


def test_per_layer_clipping_total_norm_at_most_R():
    rng = np.random.default_rng(0)
    bounds = [(0, 5), (5, 25), (25, 30)]
    for _ in range(20):
        g = rng.normal(size=(1, 30)) * 100
        total = clip_per_layer(g, bounds, 2.0)
        assert np.linalg.norm(total) <= 2.0 * (1 + 1e-12)
        for a, b in bounds:
            assert np.linalg.norm(total[a:b]) <= 2.0 / math.sqrt(3) * (1 + 1e-12)


def test_fused_clipping_is_independent_of_thread_count():
    from npdpsnn.kernels import dispatch

    net = _net(seed=4)
    x, y = _data(40, seed=5)
    n = dispatch.get_threads()
    try:
        dispatch.set_threads(2)
        a = net.clipped_grad_sum(x, y, 0.5)[0]
        dispatch.set_threads(1)
        b = net.clipped_grad_sum(x, y, 0.5)[0]
    finally:
        dispatch.set_threads(n)
    assert np.array_equal(a, b)


def test_clip_factor_bounds_the_norm_exactly_and_drops_non_finite():
    from fractions import Fraction

    from npdpsnn.privacy.mechanism import clip_factor

    rng = np.random.default_rng(11)
    for _ in range(200):
        g = (rng.normal(size=50) * rng.uniform(0.1, 100)).astype(np.float32)
        clip = float(rng.uniform(0.1, 5))
        c = clip_factor(float(np.sqrt(np.sum(g.astype(np.float64) ** 2))), clip)
        scaled = [Fraction(float(c)) * Fraction(float(v)) for v in g]  # exact rational arithmetic
        assert sum(v * v for v in scaled) <= Fraction(clip) ** 2
    assert clip_factor(float("inf"), 1.0) == 0.0 and clip_factor(float("nan"), 1.0) == 0.0
    assert clip_factor(0.5, 1.0) == 1.0


def test_non_finite_example_is_dropped_not_poisoning_the_sum():
    from npdpsnn.privacy.mechanism import clip_flat

    g = np.array([[3.0, 4.0], [np.inf, 1.0], [np.nan, 0.0]])
    total, norms = clip_flat(g, 1.0)
    assert np.all(np.isfinite(total)) and np.linalg.norm(total) <= 1.0
