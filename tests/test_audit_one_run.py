"""One-run canary audit: pinned published values, exact p-values, sanity of the bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from npdpsnn.audit import (
    audit_canaries,
    audit_canaries_best_k,
    audit_canaries_roc_hull,
    canary_guesses,
    default_k_grid,
    fdp_epsilon,
    fdp_rejects,
    gdp_mu,
    one_run_epsilon,
    one_run_p_value,
)
from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import gdp_delta


def _quantile_scores(mu: float, n: int) -> np.ndarray:
    """Scores at the quantiles (i + 0.5) / n of N(mu, 1), i = 0..n-1 (as jax_privacy's tests)."""
    return stats.norm.ppf((np.arange(n) + 0.5) / n) + mu


def _in_out(mu: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.concatenate([_quantile_scores(mu, n), _quantile_scores(0.0, n)])
    included = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    return scores, included


# Published in google-deepmind/jax_privacy tests/auditing_test.py (test_epsilon_one_run_close):
# 10,000 in / 10,000 out canaries, alpha = 0.05, delta = 1e-6.  Those values are brentq roots
# with xtol = 1e-6, so they sit within 1e-6 of the exact root; ``ours`` is the root to 1e-10.
PINNED = [
    # (mu, method, published, ours, hull vertices = Bonferroni factor)
    (1.0, "one-run", 1.13346, 1.1334595633, 386),
    (2.0, "one-run", 2.311945, 2.3119452802, 374),
    (4.0, "one-run", 4.395568, 4.3955676980, 140),
    (1.0, "fdp", 2.164749, 2.1647492282, 386),
    (2.0, "fdp", 4.7218075, 4.7218066414, 374),
    (4.0, "fdp", 9.133752, 9.1337517113, 140),
]


@pytest.mark.parametrize("mu,method,published,ours,n_hull", PINNED)
def test_pinned_published_values(mu, method, published, ours, n_hull):
    scores, included = _in_out(mu, 10_000)
    res = audit_canaries_roc_hull(scores, included, alpha=0.05, delta=1e-6, method=method)
    assert res.n_hypotheses == n_hull
    assert abs(res.epsilon - ours) < 1e-9
    assert abs(res.epsilon - published) <= 1e-6  # their solver's tolerance
    if (mu, method) != (2.0, "fdp"):  # 4.7218075 is 8.6e-7 above the root: only xtol-accurate
        digits = len(repr(published).split(".")[1])
        assert round(res.epsilon, digits) == published


@pytest.mark.parametrize("method", ["one-run", "fdp"])
def test_identical_quantiles_give_zero(method):
    scores, included = _in_out(0.0, 10_000)
    assert audit_canaries_roc_hull(scores, included, alpha=0.05, delta=1e-6, method=method).epsilon == 0.0


def _brute_p_value(m, r, v, eps, delta):
    q = math.exp(eps) / (1.0 + math.exp(eps))
    pmf = [math.comb(r, j) * q**j * (1.0 - q) ** (r - j) for j in range(r + 1)]
    beta = sum(pmf[v:])
    a = max((sum(pmf[v - i : v]) / i for i in range(1, v + 1)), default=0.0)
    return min(1.0, beta + 2 * m * delta * a)


def test_p_value_matches_brute_force_binomial_sums():
    for m in (1, 5, 12):
        for r in range(m + 1):
            for v in range(r + 1):
                for eps in (0.0, 0.4, 1.7):
                    for delta in (0.0, 1e-3, 0.05):
                        got = one_run_p_value(m, r, v, eps, delta)
                        want = _brute_p_value(m, r, v, eps, delta)
                        assert got == pytest.approx(want, rel=1e-10, abs=1e-15), (m, r, v, eps, delta)


def test_p_value_large_counts_against_scipy():
    m, r, v, eps, delta = 5000, 800, 700, 1.2, 1e-5
    q = special.expit(eps)
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)
    a = np.max(np.cumsum(pmf) / np.arange(1, v + 1))
    want = stats.binom.sf(v - 1, r, q) + 2 * m * delta * a
    assert one_run_p_value(m, r, v, eps, delta) == pytest.approx(want, rel=1e-9)


def test_epsilon_is_the_largest_rejected():
    m, r, v, alpha, delta = 2000, 300, 270, 0.05, 1e-5
    eps = one_run_epsilon(m, r, v, alpha, delta)
    assert eps > 0
    assert one_run_p_value(m, r, v, eps, delta) <= alpha
    assert one_run_p_value(m, r, v, eps + 1e-8, delta) > alpha


def test_perfect_guesses_reach_the_randomized_response_ceiling():
    # delta = 0, r right of r: p(eps) = q^r, so eps_lb = logit(alpha^(1/r)) ~ ln(r / ln(1/alpha)).
    r, alpha = 500, 0.05
    want = special.logit(alpha ** (1.0 / r))
    assert one_run_epsilon(1000, r, r, alpha, 0.0) == pytest.approx(want, abs=1e-9)
    assert 5.0 < want < 5.2


def test_fdp_epsilon_is_the_largest_rejected_and_tied_to_mu():
    m, k, v, alpha, delta = 2000, 300, 290, 0.05, 1e-5
    eps = fdp_epsilon(m, k, v, alpha, delta)
    assert eps > 0
    assert fdp_rejects(m, k, v, gdp_mu(eps, delta), alpha)
    assert not fdp_rejects(m, k, v, gdp_mu(eps + 1e-8, delta), alpha)
    assert eps >= one_run_epsilon(m, k, v, alpha, delta)


def test_gdp_mu_inverts_the_gdp_profile():
    for eps, delta in [(0.5, 1e-5), (2.0, 1e-6), (8.0, 1e-3)]:
        mu = gdp_mu(eps, delta)
        assert gdp_delta(mu, eps) == pytest.approx(delta, rel=1e-9)
    assert gdp_mu(1.0, 0.0) == 0.0
    assert gdp_mu(1.0, 1.0) == math.inf


def test_fdp_rejects_is_monotone_in_mu():
    m, k, v = 1000, 200, 180
    verdicts = [fdp_rejects(m, k, v, mu, 0.05) for mu in np.linspace(0.0, 4.0, 41)]
    assert verdicts[0] and not verdicts[-1]
    first_accept = verdicts.index(False)
    assert not any(verdicts[first_accept:])


@pytest.mark.parametrize("method", ["one-run", "fdp"])
def test_bound_grows_with_the_signal(method):
    eps = []
    for mu in (0.5, 1.0, 2.0, 3.0):
        scores, included = _in_out(mu, 1000)
        eps.append(audit_canaries_best_k(scores, included, alpha=0.05, delta=1e-5, method=method).epsilon)
    assert all(b > a for a, b in zip(eps, eps[1:])), eps


@pytest.mark.parametrize("method", ["one-run", "fdp"])
def test_no_signal_gives_zero_most_of_the_time(method):
    positives = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        scores = rng.normal(size=1000)
        included = rng.random(1000) < 0.5
        res = audit_canaries_best_k(scores, included, alpha=0.05, delta=1e-5, method=method)
        positives += res.epsilon > 0
    assert positives <= 2  # a valid level-0.05 test: about 1 in 20 at most


def test_best_k_applies_bonferroni_over_the_grid():
    scores, included = _in_out(2.0, 500)
    grid = [10, 50, 100, 200]
    res = audit_canaries_best_k(scores, included, alpha=0.05, delta=1e-5, k_grid=grid)
    assert res.n_hypotheses == 4 and res.alpha == 0.05
    want = max(one_run_epsilon(1000, k, int(np.sum(included[np.argsort(-scores, kind="stable")[:k]])),
                               0.05 / 4, 1e-5) for k in grid)
    assert res.epsilon == pytest.approx(want, abs=1e-9)
    single = audit_canaries(scores, included, res.k_pos, alpha=0.05, delta=1e-5)
    assert single.epsilon > res.epsilon  # no correction for a pre-registered k


def test_two_sided_guesses():
    scores, included = _in_out(2.0, 500)
    res = audit_canaries(scores, included, 100, 100, alpha=0.05, delta=1e-5)
    g = canary_guesses(scores, 100, 100)
    right = int(np.sum(g == np.where(included, 1, -1)))
    assert (res.n_guesses, res.n_correct) == (200, right)
    assert res.epsilon == pytest.approx(one_run_epsilon(1000, 200, right, 0.05, 1e-5), abs=1e-9)


def test_guesses_break_ties_by_index_and_never_overlap():
    g = canary_guesses(np.zeros(5), 2, 3)
    assert g.tolist() == [1, 1, -1, -1, -1]
    g = canary_guesses([0.3, 0.9, 0.1, 0.9, 0.5], 2, 1)
    assert g.tolist() == [0, 1, -1, 1, 0]


def test_default_grid_depends_on_m_only():
    assert default_k_grid(1000) == [16, 32, 64, 128, 256, 512, 1000]
    assert default_k_grid(10) == [10]


@pytest.mark.parametrize(
    "call",
    [
        lambda: one_run_p_value(10, 5, 6, 1.0, 0.0),
        lambda: one_run_p_value(10, 11, 6, 1.0, 0.0),
        lambda: one_run_p_value(10, 5, 3, -1.0, 0.0),
        lambda: one_run_epsilon(10, 5, 3, alpha=1.5),
        lambda: one_run_epsilon(10, 5, 3, delta=2.0),
        lambda: one_run_epsilon(10.5, 5, 3),
        lambda: fdp_epsilon(10, 5, 3, delta=0.0),
        lambda: audit_canaries([0.1, np.nan], [True, False], 1),
        lambda: audit_canaries([0.1, 0.2], [True, False, True], 1),
        lambda: audit_canaries([0.1, 0.2], [True, False], 2, 1),
        lambda: audit_canaries([0.1, 0.2], [True, False], 1, method="bayes"),
        lambda: audit_canaries([0.1, 0.2], [2, 3], 1),
        lambda: audit_canaries_best_k([0.1, 0.2], [True, False], k_grid=[]),
        lambda: audit_canaries_roc_hull([0.1, 0.2], [True, True]),
    ],
)
def test_bad_input_raises_user_error(call):
    with pytest.raises(UserError):
        call()
