"""ROC figures, the loss attack, LiRA and the mu-GDP ceilings."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import special

from npdpsnn.audit import (
    attack_metrics,
    gdp_auc_ceiling,
    gdp_balanced_accuracy_ceiling,
    gdp_tpr_ceiling,
    lira_attack,
    lira_scores,
    lira_statistic,
    loss_attack,
    roc_auc,
    roc_curve,
    shadow_stats,
)
from npdpsnn.errors import UserError
from test_audit_one_run import _in_out


# ------------------------------------------------------------------ ROC


def test_roc_with_ties_by_hand():
    scores = [3.0, 2.0, 2.0, 1.0, 0.0]
    member = [True, True, False, False, True]
    roc = roc_curve(scores, member)
    np.testing.assert_array_equal(roc.thresholds, [np.inf, 3.0, 2.0, 1.0, 0.0])
    np.testing.assert_allclose(roc.tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(roc.fpr, [0, 0, 0.5, 1, 1])
    # pairs (member, non-member): (3,2) win, (3,1) win, (2,2) tie, (2,1) win, (0,2) loss, (0,1) loss
    assert roc_auc(scores, member) == pytest.approx(3.5 / 6)


def test_auc_equals_mann_whitney_with_ties():
    rng = np.random.default_rng(1)
    s_in = rng.integers(0, 6, 40).astype(float)
    s_out = rng.integers(0, 5, 30).astype(float)
    diff = s_in[:, None] - s_out[None, :]
    want = (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size
    scores = np.r_[s_in, s_out]
    member = np.r_[np.ones(40, bool), np.zeros(30, bool)]
    assert roc_auc(scores, member) == want  # exact, from integer counts


def test_metrics_by_hand():
    scores = np.r_[np.arange(10, 20), np.arange(0, 12)].astype(float)  # members 10..19, non-members 0..11
    member = np.r_[np.ones(10, bool), np.zeros(12, bool)]
    m = attack_metrics(scores, member, fprs=(0.0, 0.1, 0.2))
    # threshold 12 keeps all non-members out and 8 members in; 11 lets 1/12 in with 9/10; 10: 2/12, 10/10
    assert m.tpr_at_fpr == {0.0: 0.8, 0.1: 0.9, 0.2: 1.0}
    assert m.balanced_accuracy == pytest.approx((1.0 + 1.0 - 2 / 12) / 2)
    assert (m.n_members, m.n_nonmembers) == (10, 12)


def test_binormal_auc_and_tpr_meet_the_gaussian_formulas():
    mu = 1.0
    m = attack_metrics(*_in_out(mu, 20_000))
    assert m.auc == pytest.approx(special.ndtr(mu / math.sqrt(2)), abs=1e-3)
    assert m.auc == pytest.approx(gdp_auc_ceiling(mu), abs=1e-3)  # N(mu,1) vs N(0,1) *is* mu-GDP's extreme
    for f in (1e-3, 1e-2):
        assert m.tpr_at_fpr[f] == pytest.approx(gdp_tpr_ceiling(mu, f), abs=2e-3)
    assert m.balanced_accuracy == pytest.approx(gdp_balanced_accuracy_ceiling(mu), abs=1e-3)


def test_loss_attack_uses_minus_loss():
    rng = np.random.default_rng(2)
    loss_in = rng.exponential(0.2, 300)
    loss_out = rng.exponential(1.0, 300)
    member = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    m = loss_attack(np.r_[loss_in, loss_out], member)
    assert m.auc == pytest.approx(roc_auc(-np.r_[loss_in, loss_out], member))
    assert m.auc > 0.75


# ------------------------------------------------------------------ GDP ceilings


def test_gdp_ceiling_formulas():
    mu = 0.66
    assert gdp_auc_ceiling(mu) == pytest.approx(special.ndtr(mu / math.sqrt(2)), rel=1e-15)
    assert gdp_tpr_ceiling(mu, 1e-3) == pytest.approx(special.ndtr(special.ndtri(1e-3) + mu), rel=1e-14)
    fpr = np.linspace(0, 1, 200_001)
    tpr = gdp_tpr_ceiling(mu, fpr)
    assert tpr[0] == 0.0 and tpr[-1] == 1.0 and np.all(tpr >= fpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(gdp_auc_ceiling(mu), abs=1e-6)
    assert np.max((tpr + 1 - fpr) / 2) == pytest.approx(gdp_balanced_accuracy_ceiling(mu), abs=1e-9)
    np.testing.assert_allclose(gdp_tpr_ceiling(0.0, fpr), fpr, atol=1e-15)
    assert gdp_auc_ceiling(0.0) == 0.5 and gdp_auc_ceiling(math.inf) == 1.0
    assert gdp_tpr_ceiling(math.inf, 0.01) == 1.0


# ------------------------------------------------------------------ LiRA


def test_lira_statistic_is_logit_of_true_class_probability():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 6, 5))
    y = rng.integers(0, 5, 6)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    py = np.take_along_axis(p, np.broadcast_to(y[:, None], (4, 6, 1)), -1)[..., 0]
    np.testing.assert_allclose(lira_statistic(z, y), np.log(py) - np.log(1 - py), rtol=1e-12)
    np.testing.assert_allclose(lira_statistic(z + 1e4, y), lira_statistic(z, y), atol=1e-9)


def test_lira_statistic_is_stable_for_extreme_logits():
    z = np.array([[800.0, 0.0, -800.0], [0.0, 900.0, 899.0]], dtype=np.float32)
    phi = lira_statistic(z, np.array([0, 2]))
    assert phi[0] == pytest.approx(800.0)
    assert phi[1] == pytest.approx(-1.0, abs=1e-12)  # 899 - 900 - log(1 + e^{-899}) ~ -1


def _synthetic_shadows(n_models=17, n=600, classes=10, gap=2.0, seed=0):
    """Logits whose statistic is N(c_j + gap * in, 1) with per-example offsets c_j spread widely."""
    rng = np.random.default_rng(seed)
    in_mask = rng.random((n_models, n)) < 0.5
    centre = rng.normal(0.0, 4.0, n)
    phi = centre + gap * in_mask + rng.normal(size=(n_models, n))
    labels = rng.integers(0, classes, n)
    logits = np.zeros((n_models, n, classes))
    # with the other classes at 0, phi = z_y - log(classes - 1)
    np.put_along_axis(logits, np.broadcast_to(labels[None, :, None], (n_models, n, 1)),
                      (phi + np.log(classes - 1))[..., None], axis=-1)
    return logits, labels, in_mask, phi


@pytest.mark.parametrize("online,fixed", [(True, True), (True, False), (False, True)])
def test_lira_recovers_members_of_synthetic_gaussian_shadows(online, fixed):
    logits, labels, in_mask, _ = _synthetic_shadows()
    res = lira_attack(logits, labels, in_mask, target=0, online=online, fixed_variance=fixed)
    assert res.n_shadows == 16 and res.n_unscored == 0
    # the ideal test of N(c + 2, 1) vs N(c, 1) has AUC Phi(2 / sqrt 2) = 0.92
    assert res.metrics.auc > 0.85
    assert res.metrics.tpr_at_fpr[1e-2] > 0.05
    loss = -lira_statistic(logits[0], labels)  # a global threshold drowns in the offsets
    assert loss_attack(loss, in_mask[0]).auc < 0.75


def test_lira_scores_from_parts_match_the_attack():
    logits, labels, in_mask, _ = _synthetic_shadows()
    phi = lira_statistic(logits, labels)
    st = shadow_stats(phi[1:], in_mask[1:], fixed_variance=True)
    np.testing.assert_allclose(st.mean_in, np.nanmedian(np.where(in_mask[1:], phi[1:], np.nan), axis=0))
    assert np.all(st.std_in == st.std_in[0]) and 0.8 < st.std_in[0] < 1.2
    scores = lira_scores(phi[0], st, online=True)
    np.testing.assert_allclose(scores, lira_attack(logits, labels, in_mask).scores)


def test_lira_leaves_out_examples_without_shadows(caplog):
    logits, labels, in_mask, _ = _synthetic_shadows(n_models=5, n=200)
    in_mask[1:, 7] = False  # no IN shadow for example 7
    with caplog.at_level(logging.WARNING, logger="npdpsnn.audit.mia"):
        res = lira_attack(logits, labels, in_mask, online=True)
    assert np.isnan(res.scores[7]) and res.n_unscored >= 1
    assert "lack" in caplog.text
    assert res.metrics.n_members + res.metrics.n_nonmembers == 200 - res.n_unscored


@pytest.mark.parametrize(
    "call",
    [
        lambda: attack_metrics([0.1, np.nan], [True, False]),
        lambda: attack_metrics([0.1, 0.2], [True, True]),
        lambda: attack_metrics([0.1, 0.2], [True]),
        lambda: attack_metrics([0.1, 0.2], [True, False], fprs=(1.5,)),
        lambda: loss_attack([[0.1, 0.2]], [True, False]),
        lambda: lira_statistic(np.zeros((3, 1)), [0, 0, 0]),
        lambda: lira_statistic(np.zeros((3, 4)), [0, 4, 0]),
        lambda: lira_statistic(np.full((3, 4), np.nan), [0, 1, 0]),
        lambda: lira_attack(np.zeros((1, 3, 4)), [0, 1, 0], np.ones((1, 3), bool)),
        lambda: lira_attack(np.zeros((2, 3, 4)), [0, 1, 0], np.ones((2, 4), bool)),
        lambda: lira_attack(np.zeros((2, 3, 4)), [0, 1, 0], np.ones((2, 3), bool), target=2),
        lambda: shadow_stats(np.zeros((2, 3)), np.ones((2, 4), bool)),
        lambda: gdp_tpr_ceiling(-1.0, 0.1),
        lambda: gdp_tpr_ceiling(1.0, 1.1),
    ],
)
def test_bad_input_raises_user_error(call):
    with pytest.raises(UserError):
        call()
