"""NeuralDP's privacy argument as code: the ledger events, how each analysis accounts
(or refuses) them, calibration, the guard on the lower layers, and the statement."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from npdpsnn.network import Network
from npdpsnn.neuraldp.accounting import (
    calibrate_head_sigma, calibrate_release_sigma, head_event, neuraldp_event, neuraldp_ledger, privacy_report,
)
from npdpsnn.neuraldp.config import NeuralDPConfig, NeuralDPSettings
from npdpsnn.neuraldp.features import split_at
from npdpsnn.neuraldp.guard import LowerLayers, PrivacyAssumptionError, check_lower_layers, check_unchanged
from npdpsnn.neuraldp.features import lower_digest
from npdpsnn.neuraldp.statement import ASSUMPTIONS, neuraldp_statement
from npdpsnn.privacy.accountants import ANALYSES, PrivacyAccountant, UnsupportedEventError, compute_rdp
from npdpsnn.privacy.accountants.gdp import gdp_epsilon
from npdpsnn.privacy.accountants.pld import pld_epsilon
from npdpsnn.privacy.accountants.rdp import rdp_epsilon
from npdpsnn.privacy.events import (
    ActivationReleaseEvent, ComposedEvent, GaussianEvent, NonPrivateEvent, PoissonSampledEvent, ReplaceOneEvent,
    SelfComposedEvent, event_from_dict, event_to_dict,
)
from npdpsnn.training.config import ConfigError

DELTA = 1e-5
STEPS = SelfComposedEvent(PoissonSampledEvent(0.02, GaussianEvent(1.2)), 300)


@pytest.mark.parametrize("sigma", [0.7, 2.0, 6.0])
def test_a_row_release_is_the_gaussian_mechanism_with_half_the_noise_multiplier(sigma):
    ev = ActivationReleaseEvent(sigma)  # sensitivity 2C, noise sigma C
    assert ANALYSES["rdp"].epsilon(ev, DELTA) == pytest.approx(rdp_epsilon(1.0, sigma / 2, 1, DELTA))
    assert ANALYSES["pld"].epsilon(ev, DELTA) == pytest.approx(pld_epsilon(1.0, sigma / 2, 1, DELTA))
    clt = ANALYSES["clt"].values(ev, DELTA)
    assert clt["clt_mu"] == pytest.approx(2 / sigma)  # the Gaussian mechanism is exactly (1/s)-GDP
    # PLD agrees with the exact Gaussian-DP curve (a tight bound), RDP is looser
    assert ANALYSES["pld"].epsilon(ev, DELTA) == pytest.approx(gdp_epsilon(2 / sigma, DELTA), rel=1e-3)
    assert ANALYSES["rdp"].epsilon(ev, DELTA) >= ANALYSES["pld"].epsilon(ev, DELTA)


def test_renoising_every_epoch_composes_like_one_release_with_sqrt_k_less_noise():
    k, sigma = 9, 6.0
    many = SelfComposedEvent(ActivationReleaseEvent(sigma), k)
    one = ActivationReleaseEvent(sigma / math.sqrt(k))
    for a in ANALYSES.values():
        assert a.epsilon(many, DELTA) == pytest.approx(a.epsilon(one, DELTA), rel=2e-3), a.name


def test_replace_one_dpsgd_steps_are_charged_as_a_group_of_two():
    ar = {a.name: a.epsilon(STEPS, DELTA) for a in ANALYSES.values()}
    ev = ReplaceOneEvent(STEPS)
    assert ANALYSES["rdp"].epsilon(ev, DELTA) > 1.5 * ar["rdp"]  # never below the add/remove figure
    assert ANALYSES["clt"].values(ev, DELTA)["clt_mu"] == pytest.approx(2 * ANALYSES["clt"].values(STEPS, DELTA)["clt_mu"])
    assert not ANALYSES["pld"].supports(ev)
    with pytest.raises(UnsupportedEventError, match="ReplaceOneEvent"):
        ANALYSES["pld"].epsilon(ComposedEvent((ActivationReleaseEvent(2.0), ev)), DELTA)


@pytest.mark.parametrize("alpha", [2.0, 4.0, 8.0])
def test_weak_triangle_bound_covers_the_replace_one_divergence_of_one_step(alpha):
    """True Rényi divergence of a replaced example (gradient +R vs -R, the extreme pair) for one
    Poisson-sampled step, by numerical integration, against what the rdp analysis charges."""
    q, s = 0.1, 1.0
    x = np.linspace(-40.0, 60.0, 400_001)
    log_p = np.logaddexp(math.log(1 - q) + stats.norm.logpdf(x, 0, s), math.log(q) + stats.norm.logpdf(x, 1, s))
    log_r = np.logaddexp(math.log(1 - q) + stats.norm.logpdf(x, 0, s), math.log(q) + stats.norm.logpdf(x, -1, s))
    log_f = alpha * log_p + (1 - alpha) * log_r
    top = log_f.max()
    true = (top + math.log(integrate.trapezoid(np.exp(log_f - top), x))) / (alpha - 1)
    orders = np.array([2 * alpha, 2 * alpha - 1])
    rdp2a, rdp2a1 = compute_rdp(q, s, 1, orders)
    charged = (alpha - 0.5) / (alpha - 1) * rdp2a + rdp2a1
    assert true <= charged
    assert compute_rdp(q, s, 1, [alpha])[0] < true  # the add/remove figure alone would under-report


def test_ledgers_that_mix_adjacencies_are_refused_and_non_private_phases_are_infinite():
    mixed = ComposedEvent((ActivationReleaseEvent(2.0), STEPS))
    for a in ANALYSES.values():
        assert not a.supports(mixed)
        with pytest.raises(UnsupportedEventError, match="mix adjacencies"):
            a.epsilon(mixed, DELTA)
        assert a.epsilon(ComposedEvent((ActivationReleaseEvent(2.0), NonPrivateEvent())), DELTA) == math.inf
        assert a.epsilon(STEPS, DELTA) == pytest.approx(a.epsilon(STEPS, DELTA))  # add/remove ledgers unchanged


def test_the_ledger_round_trips_and_reports_refusals():
    ev = neuraldp_event(3.0, center_noise_factor=8.0, head=STEPS)
    ledger = neuraldp_ledger(ev)
    back = PrivacyAccountant.from_state_dict(json.loads(json.dumps(ledger.state_dict())))
    assert back == ledger and event_from_dict(event_to_dict(ev)) == ev
    report = privacy_report(back.event, DELTA)
    assert report.epsilon("pld") is None and "ReplaceOneEvent" in report.refused["pld"]
    assert report.epsilon("rdp") > 0 and report.values["clt_mu"] > 0
    public = privacy_report(neuraldp_event(3.0, center_noise_factor=8.0), DELTA)
    assert not public.refused and public.epsilon("pld") <= public.epsilon("rdp")


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_calibration_meets_the_target(accountant):
    target = 2.0
    sigma = calibrate_release_sigma(target, DELTA, accountant, center_noise_factor=8.0)
    eps = ANALYSES[accountant].epsilon
    assert eps(neuraldp_event(sigma, center_noise_factor=8.0), DELTA) <= target
    assert eps(neuraldp_event(sigma * 0.999, center_noise_factor=8.0), DELTA) > target
    head_sigma = calibrate_head_sigma(1.0, DELTA, 5000, 250, 3)
    head = head_event(head_sigma, 5000, 250, 3)
    assert ANALYSES["rdp"].epsilon(ReplaceOneEvent(head), DELTA) <= 1.0
    sigma = calibrate_release_sigma(target, DELTA, "rdp", head=head)
    assert ANALYSES["rdp"].epsilon(neuraldp_event(sigma, head=head), DELTA) <= target
    with pytest.raises(Exception, match="upper bound"):
        calibrate_release_sigma(target, DELTA, "clt")


# ---------------------------------------------------------------- guard
SPEC = "4C3S1-P2S2-8-3"


def _encoder(seed: int = 0) -> Network:
    return Network.from_spec(SPEC, (1, 8, 8), kind="snn", T=2, seed=seed)


@pytest.mark.parametrize("lower,match", [
    (LowerLayers("init", trainable=True), "without DP"),
    (LowerLayers("private"), "does not cover"),
    (LowerLayers("public"), "name the public data set"),
    (LowerLayers("public", public_source="MNIST"), "private data set itself"),
    (LowerLayers("dp-sgd"), "ledger"),
    (LowerLayers("dp-sgd", ledger_event=ComposedEvent((STEPS, NonPrivateEvent()))), "non-private"),
])
def test_the_guard_refuses_lower_layers_that_saw_private_data_without_dp(lower, match):
    net = _encoder()
    with pytest.raises(PrivacyAssumptionError, match=match):
        check_lower_layers(lower, split_at(net.layers, 2), net, dataset="mnist", seed=0)


def test_the_guard_accepts_declared_provenances_and_catches_changed_weights():
    net = _encoder()
    split = split_at(net.layers, 2)
    check_lower_layers(LowerLayers("init"), split, net, dataset="mnist", seed=0)
    check_lower_layers(LowerLayers("public", public_source="fashion-mnist"), split, net, dataset="mnist", seed=0)
    check_lower_layers(LowerLayers("dp-sgd", ledger_event=STEPS), split, net, dataset="mnist", seed=0)
    with pytest.raises(PrivacyAssumptionError, match="not the initialisation"):
        check_lower_layers(LowerLayers("init"), split, _encoder(seed=1), dataset="mnist", seed=0)
    digest = lower_digest(net, split)
    net.params["fc1.bias"][:] = 0.0  # fc1 is below/at K = 3? no: K is layer 2, fc1 is the head
    check_unchanged(digest, net, split)
    net.params["conv1.bias"][0] += 0.1
    with pytest.raises(PrivacyAssumptionError, match="changed"):
        check_unchanged(digest, net, split)


# ---------------------------------------------------------------- statement and settings
@pytest.mark.parametrize("labels", ["private", "public"])
def test_the_statement_names_every_assumption(labels):
    net = _encoder()
    split = split_at(net.layers, 2)
    settings = NeuralDPSettings(layer=2, clip=1.5, sigma=3.0, center_clip=4.0, labels=labels,
                                head_sigma=1.0 if labels == "private" else None)
    head = STEPS if labels == "private" else None
    report = privacy_report(neuraldp_event(3.0, center_noise_factor=8.0, head=head), DELTA)
    st = neuraldp_statement(settings, split, kind="snn", n_train=1000, sigma=3.0, head_sigma=settings.head_sigma,
                            head_steps=300, head_rate=0.02, report=report)
    assert tuple(st.assumptions) == ASSUMPTIONS and all(st.assumptions.values())
    for key in ASSUMPTIONS:
        assert st.assumptions[key] in st.text
    for needle in ("replace-one", "N = 1000", "2C = 3", "sigma = 3", "frozen", "seed", "test-time",
                   "spike counts", "post-processing"):
        assert needle in st.text
    if labels == "private":
        assert "DP-SGD" in st.assumptions["labels"] and "PLD refuses" in st.text
        assert "image and label" in st.assumptions["protected"]
    else:
        assert "not protected" in st.assumptions["protected"] and "refuses" not in st.text
    assert st.epsilons["rdp"] == report.epsilon("rdp")


def test_settings_refuse_what_the_guarantee_cannot_state():
    base = {"net": SPEC, "neuraldp.layer": 2, "neuraldp.clip": 1.0, "neuraldp.center_clip": 2.0}
    with pytest.raises(ConfigError, match="exactly one"):
        NeuralDPConfig.from_values("mnist", base)
    with pytest.raises(ConfigError, match="neuraldp.accountant"):  # PLD has no replace-one DP-SGD form
        NeuralDPConfig.from_values("mnist", {**base, "neuraldp.target_epsilon": 1.0, "neuraldp.accountant": "pld"})
    with pytest.raises(ConfigError, match="upper bound"):
        NeuralDPConfig.from_values("mnist", {**base, "neuraldp.target_epsilon": 1.0, "neuraldp.accountant": "clt"})
    with pytest.raises(ConfigError, match="head_sigma"):
        NeuralDPConfig.from_values("mnist", {**base, "neuraldp.sigma": 1.0})
    with pytest.raises(ConfigError, match="center_clip"):
        NeuralDPConfig.from_values("mnist", {**base, "neuraldp.center_clip": None, "neuraldp.target_epsilon": 1.0})
    with pytest.raises(ConfigError, match="neuraldp.lower"):
        NeuralDPConfig.from_values("mnist", {**base, "neuraldp.target_epsilon": 1.0, "neuraldp.lower": "trainable"})
    with pytest.raises(ConfigError, match="dp.sigma"):
        NeuralDPConfig.from_values("mnist", {**base, "neuraldp.target_epsilon": 1.0, "dp.sigma": 1.0})
    cfg = NeuralDPConfig.from_values("mnist", {**base, "neuraldp.target_epsilon": 1.0, "neuraldp.labels": "public",
                                               "neuraldp.accountant": "pld"})
    assert cfg.neuraldp.labels == "public" and not cfg.base.dp.enabled
