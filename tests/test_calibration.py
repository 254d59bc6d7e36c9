"""Sigma calibration: meets the target exactly as computed, minimal to 3 significant digits."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import calibrate_sigma, clt_epsilon, pld_epsilon, rdp_epsilon

EPS = {"rdp": rdp_epsilon, "gdp": clt_epsilon, "pld": pld_epsilon}


def _sig_digits(x: float) -> int:
    return len(f"{x:.12g}".replace(".", "").lstrip("0").rstrip("0").split("e")[0])


@pytest.mark.parametrize("accountant", ["rdp", "gdp"])
@pytest.mark.parametrize(
    ("target", "q", "steps", "delta"),
    [(8.0, 0.04, 2250, 1e-5), (2.0, 250 / 60000, 14400, 1e-5), (0.5, 0.01, 500, 1e-6), (30.0, 0.2, 1000, 1e-5)],
)
def test_calibrated_sigma_meets_target_and_is_minimal(accountant, target, q, steps, delta):
    eps = EPS[accountant]
    sigma = calibrate_sigma(target, q, steps, delta, accountant=accountant)
    assert _sig_digits(sigma) <= 4
    assert eps(q, sigma, steps, delta) <= target
    assert eps(q, sigma * (1 - 1e-3), steps, delta) > target


@settings(max_examples=8, deadline=None)
@given(target=st.floats(0.3, 20.0), q=st.sampled_from([1e-3, 5e-3, 0.02, 0.1]), steps=st.integers(10, 5000))
def test_calibration_random_rdp(target, q, steps):
    sigma = calibrate_sigma(target, q, steps, 1e-5)
    assert rdp_epsilon(q, sigma, steps, 1e-5) <= target
    assert rdp_epsilon(q, sigma * (1 - 1e-3), steps, 1e-5) > target


def test_calibration_pld():
    q, steps, target = 250 / 60000, 14400, 2.0
    sigma = calibrate_sigma(target, q, steps, 1e-5, accountant="pld")
    assert pld_epsilon(q, sigma, steps, 1e-5) <= target
    assert pld_epsilon(q, sigma * (1 - 2e-3), steps, 1e-5) > target
    # PLD is tighter than RDP, so it needs less noise for the same target.
    assert sigma < calibrate_sigma(target, q, steps, 1e-5, accountant="rdp")


def test_calibration_matches_opacus_get_noise_multiplier():
    # Opacus tests/accountants_test.py: q=0.04, delta=1e-5, target 8.
    # 90 epochs = 2250 steps, rdp -> 1.416 (places=4); Opacus searches to eps
    # within 0.01 of the target, so its sigma can sit slightly above the minimal one.
    assert calibrate_sigma(8.0, 0.04, 2250, 1e-5, "rdp") == 1.416
    assert abs(calibrate_sigma(8.0, 0.04, 2000, 1e-5, "rdp") - 1.3562) <= 1e-3  # Opacus: 1.3562
    assert abs(calibrate_sigma(8.0, 0.04, 2250, 1e-5, "gdp") - 1.3232421875) <= 1e-3  # Opacus: 1.3232421875


@pytest.mark.parametrize("target", [0.0, -1.0, math.inf, math.nan])
def test_unreachable_or_invalid_target(target):
    with pytest.raises(UserError):
        calibrate_sigma(target, 0.01, 100, 1e-5)


def test_rdp_floor_is_unreachable():
    # The RDP conversion has a positive floor even at zero RDP (about 0.02 at delta=1e-5
    # with orders up to 256), so epsilon 0.001 cannot be certified by RDP at any sigma.
    with pytest.raises(UserError, match="not reachable"):
        calibrate_sigma(0.001, 0.01, 100, 1e-5, "rdp")
    # The CLT has no such floor.
    sigma = calibrate_sigma(0.001, 0.01, 100, 1e-5, "gdp")
    assert clt_epsilon(0.01, sigma, 100, 1e-5) <= 0.001


def test_target_met_by_any_sigma():
    # With q=1e-6 < delta a single step is (0, delta)-DP whatever sigma is.
    with pytest.raises(UserError, match="nothing to calibrate"):
        calibrate_sigma(0.5, 1e-6, 1, 1e-5, "pld")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sample_rate=0.0),
        dict(sample_rate=1.5),
        dict(steps=0),
        dict(delta=0.0),
        dict(delta=1.0),
        dict(accountant="all"),
        dict(accountant="pld", delta=1e-12),
    ],
)
def test_bad_arguments(kwargs):
    args = dict(target_epsilon=2.0, sample_rate=0.01, steps=100, delta=1e-5, accountant="rdp")
    args.update(kwargs)
    with pytest.raises(UserError):
        calibrate_sigma(**args)
