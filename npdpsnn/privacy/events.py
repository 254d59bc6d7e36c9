"""Privacy events: what a mechanism did, as data (the manner of Google's dp_accounting).

An event describes a mechanism, not its privacy: the analyses in
:mod:`npdpsnn.privacy.accountants.analyses` turn events into epsilon, and each
declares which events it can account (and refuses the rest).  The ledger
(:class:`~npdpsnn.privacy.accountants.accountant.PrivacyAccountant`) stores
events; checkpoints store them as JSON through :func:`event_to_dict` /
:func:`event_from_dict`.

Events (all L2 sensitivities are normalised to 1, i.e. noise multipliers):

* :class:`GaussianEvent` -- ``f(D) + N(0, sigma^2 I)`` for ``f`` of sensitivity 1;
* :class:`PoissonSampledEvent` -- the inner event applied to a Poisson subsample
  (every record joins independently with probability ``q``): one DP-SGD step;
* :class:`ShuffledBatchEvent` -- the inner event on a fixed-size batch cut from a
  per-epoch shuffle at rate ``q = B / N``: what most code does, *not covered* by
  the subsampled-Gaussian analyses (they refuse it);
* :class:`SelfComposedEvent` -- ``count`` repetitions of one event;
* :class:`ComposedEvent` -- a sequence of events;
* :class:`NonPrivateEvent` -- a phase without privacy (every analysis: infinite epsilon);
* :class:`NoOpEvent` -- touches no private data (epsilon 0);
* :class:`ActivationReleaseEvent` -- NeuralDP: Gaussian noise on per-record
  activation rows bounded to norm ``C`` (or on a sum of such rows), meaningful
  under replace-one adjacency only (sensitivity ``2C``);
* :class:`ReplaceOneEvent` -- add/remove events (e.g. DP-SGD steps) stated for
  replace-one neighbours, as a group of two (removal then addition).

Adjacency.  Every event above :class:`ActivationReleaseEvent` is analysed for
add/remove neighbours (one record more or less).  A ledger that holds an
:class:`ActivationReleaseEvent` or a :class:`ReplaceOneEvent` is a replace-one
ledger (neighbours swap one record, ``N`` is public): there, add/remove events
must be wrapped in :class:`ReplaceOneEvent`, and the analyses refuse a ledger
that mixes the two (see :mod:`npdpsnn.privacy.accountants.analyses`).

New mechanisms (e.g. noise on activations) add an event class here and teach
the analyses that can account it; everything else derives from :data:`EVENT_TYPES`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Union

from npdpsnn.errors import UserError


@dataclass(frozen=True)
class GaussianEvent:
    """Gaussian mechanism with noise multiplier ``noise_multiplier`` (std / sensitivity)."""

    noise_multiplier: float

    def __post_init__(self) -> None:
        _positive_finite(self.noise_multiplier, "noise multiplier (sigma)")


@dataclass(frozen=True)
class _SampledEvent:
    """``event`` applied to a subsample drawn at rate ``sampling_probability``."""

    sampling_probability: float
    event: "DpEvent"

    def __post_init__(self) -> None:
        _probability(self.sampling_probability)


@dataclass(frozen=True)
class PoissonSampledEvent(_SampledEvent):
    """``event`` on a Poisson subsample with inclusion probability ``sampling_probability``."""


@dataclass(frozen=True)
class ShuffledBatchEvent(_SampledEvent):
    """``event`` on a fixed-size batch of a per-epoch shuffle (rate ``B / N``).

    Not covered by the Poisson-subsampling analyses; recorded so that the
    ledger says what really happened."""


@dataclass(frozen=True)
class SelfComposedEvent:
    """``count`` repetitions of ``event``."""

    event: "DpEvent"
    count: int

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, numbers.Integral) or self.count < 0:
            raise UserError(f"an event's count must be an integer >= 0, got {self.count!r}")


@dataclass(frozen=True)
class ComposedEvent:
    """The events in order."""

    events: tuple["DpEvent", ...]


@dataclass(frozen=True)
class NonPrivateEvent:
    """A phase without privacy protection."""


@dataclass(frozen=True)
class NoOpEvent:
    """No access to private data."""


@dataclass(frozen=True)
class ActivationReleaseEvent:
    r"""Gaussian noise :math:`N(0, \sigma^2 C^2 I)` on a function of the data in
    which every record enters through one vector of L2 norm at most ``C``: its
    own released activation row (NeuralDP, :mod:`npdpsnn.neuraldp`), or a sum of
    such vectors.  ``noise_multiplier`` is :math:`\sigma` = noise std / ``C``.

    Replace-one adjacency only: swapping one record moves the function by at
    most ``2C`` in L2 norm, so this is the Gaussian mechanism with noise
    multiplier :math:`\sigma / 2`.  Under add/remove adjacency a release of
    per-record rows is no DP mechanism at all (the extra row is itself the
    difference), so the analyses never read it that way."""

    noise_multiplier: float

    def __post_init__(self) -> None:
        _positive_finite(self.noise_multiplier, "noise multiplier (sigma)")


@dataclass(frozen=True)
class ReplaceOneEvent:
    """``event``, an add/remove event (e.g. the DP-SGD steps of a ledger),
    stated for replace-one neighbours: a replacement is a removal followed by
    an addition, so the analyses apply group privacy for groups of two."""

    event: "DpEvent"


DpEvent = Union[GaussianEvent, PoissonSampledEvent, ShuffledBatchEvent, SelfComposedEvent, ComposedEvent,
                NonPrivateEvent, NoOpEvent, ActivationReleaseEvent, ReplaceOneEvent]

#: Every event type by its serialised name (the single list of event kinds).
EVENT_TYPES: dict[str, type] = {
    "gaussian": GaussianEvent,
    "poisson_sampled": PoissonSampledEvent,
    "shuffled_batch": ShuffledBatchEvent,
    "self_composed": SelfComposedEvent,
    "composed": ComposedEvent,
    "non_private": NonPrivateEvent,
    "no_op": NoOpEvent,
    "activation_release": ActivationReleaseEvent,
    "replace_one": ReplaceOneEvent,
}
_NAME_OF = {cls: name for name, cls in EVENT_TYPES.items()}


def _positive_finite(x, name: str) -> None:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not (math.isfinite(x) and x > 0):
        raise UserError(f"{name} must be a finite number > 0, got {x!r}")


def _probability(q) -> None:
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not (0.0 < q <= 1.0):
        raise UserError(f"sampling probability must be in (0, 1], got {q!r}")


def compose(events: list) -> "DpEvent":
    """The composition of ``events`` with consecutive equal events merged into
    :class:`SelfComposedEvent` counts (one event stays itself)."""
    runs: list[list] = []
    for e in events:
        inner, n = (e.event, e.count) if isinstance(e, SelfComposedEvent) else (e, 1)
        if n == 0 or isinstance(inner, NoOpEvent):
            continue
        if runs and runs[-1][0] == inner:
            runs[-1][1] += n
        else:
            runs.append([inner, n])
    parts = tuple(e if n == 1 else SelfComposedEvent(e, n) for e, n in runs)
    if not parts:
        return NoOpEvent()
    return parts[0] if len(parts) == 1 else ComposedEvent(parts)


def flatten(event: "DpEvent") -> list[tuple["DpEvent", int]]:
    """``event`` as ``(atomic event, repetitions)`` runs, composition unrolled.

    A repeated composition multiplies its parts' counts instead of repeating
    the sequence (composition is commutative for every analysis here)."""
    if isinstance(event, SelfComposedEvent):
        return [(e, n * event.count) for e, n in flatten(event.event)] if event.count else []
    if isinstance(event, ComposedEvent):
        return [run for e in event.events for run in flatten(e)]
    if isinstance(event, NoOpEvent):
        return []
    return [(event, 1)]


def event_to_dict(event: "DpEvent") -> dict[str, Any]:
    """JSON-ready form: ``{"type": name, **fields}`` with nested events."""
    name = _NAME_OF.get(type(event))
    if name is None:
        raise UserError(f"not a privacy event: {event!r}")
    out: dict[str, Any] = {"type": name}
    for key, value in vars(event).items():
        if key == "event":
            out[key] = event_to_dict(value)
        elif key == "events":
            out[key] = [event_to_dict(e) for e in value]
        else:
            out[key] = value
    return out


def event_from_dict(d: Any, _depth: int = 0) -> "DpEvent":
    """Inverse of :func:`event_to_dict`; :class:`UserError` on anything malformed."""
    if _depth > 16:
        raise UserError("privacy event nested too deeply")
    if not isinstance(d, dict) or d.get("type") not in EVENT_TYPES:
        raise UserError(f"not a privacy event: {str(d)[:80]}")
    cls = EVENT_TYPES[d["type"]]
    fields = {k: v for k, v in d.items() if k != "type"}
    expected = set(cls.__dataclass_fields__)
    if set(fields) != expected:
        raise UserError(f"privacy event {d['type']!r} needs the fields {sorted(expected)}, got {sorted(fields)}")
    if "event" in fields:
        fields["event"] = event_from_dict(fields["event"], _depth + 1)
    if "events" in fields:
        if not isinstance(fields["events"], list):
            raise UserError("a composed privacy event needs a list of events")
        fields["events"] = tuple(event_from_dict(e, _depth + 1) for e in fields["events"])
    for key in ("noise_multiplier", "sampling_probability"):
        if key in fields and isinstance(fields[key], numbers.Real) and not isinstance(fields[key], bool):
            fields[key] = float(fields[key])
    return cls(**fields)


def poisson_equivalent(event: "DpEvent") -> "DpEvent":
    """``event`` with every :class:`ShuffledBatchEvent` replaced by the
    :class:`PoissonSampledEvent` at the same rate: the numbers Poisson sampling
    would give, which are *not* a guarantee for shuffled batches."""
    if isinstance(event, ShuffledBatchEvent):
        return PoissonSampledEvent(event.sampling_probability, poisson_equivalent(event.event))
    if isinstance(event, PoissonSampledEvent):
        return PoissonSampledEvent(event.sampling_probability, poisson_equivalent(event.event))
    if isinstance(event, SelfComposedEvent):
        return SelfComposedEvent(poisson_equivalent(event.event), event.count)
    if isinstance(event, ComposedEvent):
        return ComposedEvent(tuple(poisson_equivalent(e) for e in event.events))
    if isinstance(event, ReplaceOneEvent):
        return ReplaceOneEvent(poisson_equivalent(event.event))
    return event
