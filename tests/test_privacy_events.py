"""Privacy events as data, the analyses registry, and sampling schemes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import (
    ANALYSES, PrivacyAccountant, UnsupportedEventError, calibrate_noise, calibrate_sigma, get_analysis,
)
from npdpsnn.privacy.accountants.analyses import metric_columns
from npdpsnn.privacy.accountants.rdp import rdp_epsilon
from npdpsnn.privacy.events import (
    ComposedEvent, GaussianEvent, NonPrivateEvent, NoOpEvent, PoissonSampledEvent, SelfComposedEvent,
    ShuffledBatchEvent, compose, event_from_dict, event_to_dict, flatten,
)
from npdpsnn.privacy.sampling import SAMPLINGS, make_sampler

STEP = PoissonSampledEvent(0.01, GaussianEvent(1.1))


def test_event_round_trip_through_json():
    ev = ComposedEvent((SelfComposedEvent(STEP, 30), ShuffledBatchEvent(0.5, GaussianEvent(2.0)), NonPrivateEvent(),
                        NoOpEvent()))
    back = event_from_dict(json.loads(json.dumps(event_to_dict(ev))))
    assert back == ev


def test_compose_merges_runs_and_flatten_unrolls():
    ev = compose([STEP, STEP, SelfComposedEvent(STEP, 3), GaussianEvent(2.0), NoOpEvent()])
    assert ev == ComposedEvent((SelfComposedEvent(STEP, 5), GaussianEvent(2.0)))
    assert flatten(SelfComposedEvent(ev, 2)) == [(STEP, 10), (GaussianEvent(2.0), 2)]
    assert compose([]) == NoOpEvent()


@pytest.mark.parametrize("name", list(ANALYSES))
def test_each_analysis_refuses_what_it_cannot_account(name):
    a = ANALYSES[name]
    shuffled = SelfComposedEvent(ShuffledBatchEvent(0.01, GaussianEvent(1.0)), 10)
    assert not a.supports(shuffled)
    with pytest.raises(UnsupportedEventError, match="ShuffledBatchEvent"):
        a.epsilon(shuffled, 1e-5)

    @dataclass(frozen=True)
    class LaplaceEvent:  # a mechanism no analysis here knows
        scale: float

    with pytest.raises(UnsupportedEventError):
        a.epsilon(ComposedEvent((STEP, LaplaceEvent(1.0))), 1e-5)
    assert a.supports(SelfComposedEvent(STEP, 10))
    assert a.epsilon(NoOpEvent(), 1e-5) == 0.0
    assert a.epsilon(ComposedEvent((STEP, NonPrivateEvent())), 1e-5) == math.inf


def test_registry_is_the_one_list_of_methods_and_columns():
    from npdpsnn.training.records import METRIC_FIELDS

    assert metric_columns() == ("rdp_epsilon", "clt_epsilon", "clt_mu", "pld_epsilon")
    assert all(c in METRIC_FIELDS for c in metric_columns())
    assert get_analysis("gdp") is ANALYSES["clt"]  # the older name still works
    assert ANALYSES["rdp"].is_bound and ANALYSES["pld"].is_bound and not ANALYSES["clt"].is_bound
    with pytest.raises(UserError, match="unknown accountant"):
        get_analysis("moments")
    with pytest.raises(UserError, match="delta"):
        ANALYSES["pld"].epsilon(STEP, 1e-10)


def test_gaussian_without_sampling_is_rate_one():
    a = ANALYSES["rdp"]
    assert a.epsilon(SelfComposedEvent(GaussianEvent(3.0), 4), 1e-5) == \
        a.epsilon(SelfComposedEvent(PoissonSampledEvent(1.0, GaussianEvent(3.0)), 4), 1e-5)


def test_ledger_records_events_and_non_private_phases():
    acc = PrivacyAccountant()
    acc.step(1.0, 0.01, n=20)
    assert acc.event == SelfComposedEvent(PoissonSampledEvent(0.01, GaussianEvent(1.0)), 20)
    assert acc.epsilon(1e-5) == rdp_epsilon(0.01, 1.0, 20, 1e-5)
    acc.record(NonPrivateEvent())
    assert acc.epsilon(1e-5) == math.inf and acc.steps == 20
    back = PrivacyAccountant.from_state_dict(json.loads(json.dumps(acc.state_dict())))
    assert back == acc


def test_calibration_from_an_event_factory():
    sched = make_sampler("poisson", 60000, 250)
    sigma = calibrate_noise(2.0, lambda s: sched.training_event(s, 5), 1e-5, "rdp")
    assert sigma == calibrate_sigma(2.0, 250 / 60000, 5 * 240, 1e-5, "rdp")
    with pytest.raises(UnsupportedEventError):
        calibrate_noise(2.0, lambda s: make_sampler("shuffle", 60000, 250).training_event(s, 5), 1e-5)


@pytest.mark.parametrize("kind,steps", [("poisson", 11), ("shuffle", 10)])
def test_scheme_is_the_source_of_rate_and_epoch_length(kind, steps):
    s = make_sampler(kind, 103, 10)
    assert s.sample_rate == 10 / 103 and s.steps_per_epoch == steps
    assert s.training_event(1.0, 3) == SelfComposedEvent(s.event_class(10 / 103, GaussianEvent(1.0)), 3 * steps)
    assert set(SAMPLINGS) == {"poisson", "shuffle"}
    with pytest.raises(UserError, match="random generator"):
        next(iter(s.epoch()))
