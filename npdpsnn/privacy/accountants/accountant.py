"""The privacy ledger: the events of a run, and epsilon from any analysis.

The state is only the list of recorded events (consecutive equal events merged
into counts); every epsilon is computed on demand by an analysis of
:mod:`.analyses` (the split of Opacus and dp_accounting: state vs. analysis).

Sampling.  :meth:`PrivacyAccountant.step` records one DP-SGD step of the
ledger's sampling scheme: a :class:`~npdpsnn.privacy.events.PoissonSampledEvent`
(covered by every analysis) or a :class:`~npdpsnn.privacy.events.ShuffledBatchEvent`
(covered by none).  For a ledger with shuffled steps the reported numbers are
those of Poisson sampling at the same rate and :attr:`covered_by_analysis` is
False, so callers label them as not a guarantee.
"""

from __future__ import annotations

import numbers
import logging
import math
from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants.analyses import ANALYSES, DEFAULT_ANALYSIS, get_analysis, sampled_gaussian_phases
from npdpsnn.privacy.accountants.rdp import _check_delta, _check_sample_rate, _check_sigma, _check_steps
from npdpsnn.privacy.events import (
    DpEvent, GaussianEvent, PoissonSampledEvent, SelfComposedEvent, ShuffledBatchEvent, compose, event_from_dict,
    event_to_dict, flatten, poisson_equivalent,
)
from npdpsnn.privacy.sampling import DEFAULT_SAMPLING, SAMPLINGS, get_scheme_class

__all__ = ["PrivacyAccountant", "STATE_FORMAT_VERSION"]

log = logging.getLogger(__name__)

STATE_FORMAT_VERSION = 2
_STATE_KIND = "npdpsnn.privacy_accountant"


class PrivacyAccountant:
    """The events of a run.

    >>> acc = PrivacyAccountant()
    >>> acc.step(1.0, 250 / 60000, n=14400)
    >>> round(acc.epsilon(1e-5, method="clt"), 2)
    2.7
    """

    def __init__(self, sampling: str = DEFAULT_SAMPLING) -> None:
        self._step_event_class = get_scheme_class(sampling).event_class
        self.sampling = sampling
        self._runs: list[tuple[DpEvent, int]] = []

    # -- recording -------------------------------------------------------------

    def record(self, event: DpEvent, count: int = 1) -> None:
        """Record ``count`` repetitions of ``event``."""
        n = _check_steps(count, allow_zero=True)
        for atom, m in flatten(event):
            if self._runs and self._runs[-1][0] == atom:
                self._runs[-1] = (atom, self._runs[-1][1] + m * n)
            elif m * n:
                self._runs.append((atom, m * n))

    def step(self, noise_multiplier: float, sample_rate: float, n: int = 1) -> None:
        """Record ``n`` DP-SGD steps (noise multiplier ``sigma``, sampling rate ``q``)."""
        sigma = _check_sigma(noise_multiplier)
        q = _check_sample_rate(sample_rate)
        self.record(self._step_event_class(q, GaussianEvent(sigma)), _check_steps(n, allow_zero=True))

    # -- views -----------------------------------------------------------------

    @property
    def event(self) -> DpEvent:
        """Everything recorded, as one event."""
        return compose([SelfComposedEvent(e, n) for e, n in self._runs])

    @property
    def history(self) -> list[tuple[float, float, int]]:
        """The sampled Gaussian steps as ``(sigma, q, steps)`` phases."""
        return sampled_gaussian_phases(poisson_equivalent(self.event)) or []

    @property
    def steps(self) -> int:
        """Number of recorded DP-SGD (sampled Gaussian) steps."""
        return sum(n for e, n in self._runs if isinstance(e, (PoissonSampledEvent, ShuffledBatchEvent)))

    @property
    def covered_by_analysis(self) -> bool:
        """True when every analysis accounts what was recorded (no shuffled batches)."""
        return all(a.supports(self.event) for a in ANALYSES.values())

    def analysed_event(self) -> DpEvent:
        """The event the reported numbers are for: the recorded one, or its
        Poisson equivalent when it is not covered."""
        return self.event if self.covered_by_analysis else poisson_equivalent(self.event)

    # -- analyses ----------------------------------------------------------------

    def epsilon(self, delta: float, method: str = DEFAULT_ANALYSIS) -> float:
        """Epsilon at ``delta`` by ``method`` (a name in :data:`ANALYSES`)."""
        d = _check_delta(delta)
        return get_analysis(method).epsilon(self.analysed_event(), d)

    def mu(self) -> float:
        """CLT mu of the whole ledger."""
        return ANALYSES["clt"].values(self.analysed_event(), 0.5)["clt_mu"]

    def all_epsilons(self, delta: float) -> dict[str, float | None]:
        """Every analysis' columns at ``delta``; ``None`` for an analysis whose
        delta range excludes ``delta``."""
        d = _check_delta(delta)
        event = self.analysed_event()
        out: dict[str, float | None] = {}
        for a in ANALYSES.values():
            out.update(a.values(event, d) if d >= a.min_delta else dict.fromkeys(a.columns))
        rdp, pld = out.get("rdp_epsilon"), out.get("pld_epsilon")
        if rdp is not None and pld is not None and math.isfinite(rdp) and not pld <= 1.01 * rdp:
            log.info("the numerical PLD bound (%.4g) is above the RDP bound (%.4g) here: both are valid upper "
                     "bounds and the smaller one holds; the PLD accountant is at its numerical limits", pld, rdp)
        return out

    # -- serialisation -------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: the recorded events and their counts."""
        return {
            "kind": _STATE_KIND,
            "format_version": STATE_FORMAT_VERSION,
            "sampling": self.sampling,
            "events": [{"event": event_to_dict(e), "count": int(n)} for e, n in self._runs],
        }

    @classmethod
    def from_state_dict(cls, state: Any) -> "PrivacyAccountant":
        """Rebuild a ledger from :meth:`state_dict`; UserError on anything malformed."""
        if not isinstance(state, dict):
            raise UserError("privacy accountant state must be a dict")
        if state.get("kind") != _STATE_KIND:
            raise UserError(f"privacy accountant state has kind {state.get('kind')!r}, expected {_STATE_KIND!r}")
        version = state.get("format_version")
        if isinstance(version, bool) or not isinstance(version, numbers.Integral) or version != STATE_FORMAT_VERSION:
            raise UserError(
                f"privacy accountant state format_version {version!r} is not supported (expected {STATE_FORMAT_VERSION})"
            )
        extra = set(state) - {"kind", "format_version", "sampling", "events"}
        if extra:
            raise UserError(f"privacy accountant state has unknown keys: {', '.join(sorted(map(str, extra)))}")
        if state.get("sampling") not in SAMPLINGS:
            raise UserError(f"privacy accountant state has an unknown sampling {state.get('sampling')!r}")
        acc = cls(sampling=state["sampling"])
        events = state.get("events")
        if not isinstance(events, list):
            raise UserError("privacy accountant state 'events' must be a list")
        for i, entry in enumerate(events):
            if not isinstance(entry, dict) or set(entry) != {"event", "count"}:
                raise UserError(f"privacy accountant entry {i} must be {{'event': ..., 'count': n}}")
            n = entry["count"]
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
                raise UserError(f"privacy accountant entry {i}: count must be an integer >= 1, got {n!r}")
            try:
                acc.record(event_from_dict(entry["event"]), n)
            except UserError as exc:
                raise UserError(f"privacy accountant entry {i}: {exc}") from None
        return acc

    def __repr__(self) -> str:
        return f"PrivacyAccountant(sampling={self.sampling!r}, events={self._runs!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivacyAccountant):
            return NotImplemented
        return self.sampling == other.sampling and self._runs == other._runs

