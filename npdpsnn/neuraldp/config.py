"""The configuration of a NeuralDP run: the training settings plus the mechanism's own.

:class:`NeuralDPConfig` nests the usual :class:`~npdpsnn.training.config.TrainConfig`
(``base``: data set, network, model, optimiser of the head, run; its ``dp``
section is unused and kept disabled) and :class:`NeuralDPSettings`
(``neuraldp``: the privatised layer, the row bound, the noise, labels, lower
layers).  Errors are :class:`~npdpsnn.training.config.ConfigError` naming the
field (``neuraldp.clip must be > 0 ...``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.neuraldp.guard import LOWER_SOURCES
from npdpsnn.neuraldp.release import BOUNDS
from npdpsnn.privacy.accountants.analyses import get_analysis
from npdpsnn.training.config import NOISE_SEEDS, ConfigError, TrainConfig

__all__ = ["LABELS", "NeuralDPConfig", "NeuralDPSettings"]

#: Whether the labels are protected (head trained with DP-SGD) or declared public.
LABELS: tuple[str, ...] = ("private", "public")


def _positive(value, name: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(name, f"must be > 0, got {value!r}")


@dataclass(frozen=True)
class NeuralDPSettings:
    """The privatised layer ``layer`` (spec position from 1, or a weight layer's
    name), the row bound ``clip`` (C) and how rows meet it (``bound``), the row
    noise multiplier ``sigma`` or a ``target_epsilon`` to calibrate it (with
    ``accountant``, a bound), ``delta``; the DP centre (``center``, its bound
    ``center_clip`` and noise multiplier ``center_noise_factor * sigma``); the
    ``labels`` mode and, for private labels, the head's DP-SGD noise
    ``head_sigma`` (or the share ``label_budget`` of ``target_epsilon`` it is
    calibrated to) and clipping norm ``head_clip``; the provenance of the
    layers below (``lower``, ``public_source``); and where the noise comes
    from (``noise_seed``)."""

    layer: int | str
    clip: float
    bound: str = "clip"
    sigma: float | None = None
    target_epsilon: float | None = None
    delta: float = 1e-5
    accountant: str = "rdp"
    center: bool = True
    center_clip: float | None = None
    center_noise_factor: float = 8.0
    labels: str = "private"
    head_sigma: float | None = None
    head_clip: float = 1.0
    label_budget: float = 0.5
    lower: str = "init"
    public_source: str | None = None
    noise_seed: str = "derived"
    head: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.layer, bool) or not isinstance(self.layer, (int, str)):
            raise ConfigError("neuraldp.layer", f"must be a layer position or name, got {self.layer!r}")
        _positive(self.clip, "neuraldp.clip")
        if self.bound not in BOUNDS:
            raise ConfigError("neuraldp.bound", f"must be one of {', '.join(BOUNDS)}, got {self.bound!r}")
        if (self.sigma is None) == (self.target_epsilon is None):
            raise ConfigError("neuraldp.sigma", "give exactly one of neuraldp.sigma and neuraldp.target_epsilon")
        _positive(self.sigma, "neuraldp.sigma", allow_none=True)
        _positive(self.target_epsilon, "neuraldp.target_epsilon", allow_none=True)
        if not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
            raise ConfigError("neuraldp.delta", f"must lie in (0, 1), got {self.delta!r}")
        try:
            analysis = get_analysis(self.accountant)
        except UserError:
            raise ConfigError("neuraldp.accountant", f"is not an accountant: {self.accountant!r}") from None
        if not analysis.is_bound:
            raise ConfigError("neuraldp.accountant", f"must give an upper bound (rdp, pld), got {self.accountant!r}")
        if self.delta < analysis.min_delta:
            raise ConfigError("neuraldp.delta", f"must be >= {analysis.min_delta:g} for {analysis.name}")
        if not isinstance(self.center, bool):
            raise ConfigError("neuraldp.center", f"must be true or false, got {self.center!r}")
        if self.center:
            if self.center_clip is None:
                raise ConfigError("neuraldp.center_clip", "is required with centring (or set neuraldp.center false)")
            _positive(self.center_clip, "neuraldp.center_clip")
            _positive(self.center_noise_factor, "neuraldp.center_noise_factor")
        if self.labels not in LABELS:
            raise ConfigError("neuraldp.labels", f"must be one of {', '.join(LABELS)}, got {self.labels!r}")
        _positive(self.head_clip, "neuraldp.head_clip")
        _positive(self.head_sigma, "neuraldp.head_sigma", allow_none=True)
        if not (isinstance(self.label_budget, (int, float)) and 0 < self.label_budget < 1):
            raise ConfigError("neuraldp.label_budget", f"must lie in (0, 1), got {self.label_budget!r}")
        if self.labels == "private":
            if self.sigma is not None and self.head_sigma is None:
                raise ConfigError("neuraldp.head_sigma", "is required with private labels and a fixed "
                                                         "neuraldp.sigma (or give neuraldp.target_epsilon)")
            if not analysis.groups_of_two:
                raise ConfigError("neuraldp.accountant", f"{analysis.name} cannot account the head's DP-SGD steps "
                                                         "under replace-one adjacency; use rdp")
        if self.lower not in LOWER_SOURCES:
            raise ConfigError("neuraldp.lower", f"must be one of {', '.join(LOWER_SOURCES)}, got {self.lower!r}")
        if self.head is not None and (not isinstance(self.head, str) or not self.head.strip()):
            raise ConfigError("neuraldp.head", f"must be a network spec such as '10', got {self.head!r}")
        if self.noise_seed not in NOISE_SEEDS:
            raise ConfigError("neuraldp.noise_seed", f"must be one of {', '.join(NOISE_SEEDS)}, "
                                                     f"got {self.noise_seed!r}")


@dataclass(frozen=True)
class NeuralDPConfig:
    """A whole NeuralDP run: ``base`` (data set, net, model, head optimiser, run)
    and ``neuraldp`` (the mechanism)."""

    base: TrainConfig
    neuraldp: NeuralDPSettings

    def __post_init__(self) -> None:
        if self.base.dp.enabled:
            raise ConfigError("dp.enabled", "is not used by NeuralDP (its noise settings are neuraldp.*)")

    @classmethod
    def from_values(cls, dataset: str, values: dict[str, Any]) -> "NeuralDPConfig":
        """From dotted ``values``: ``neuraldp.*`` keys set the mechanism, the others
        the training settings as in :meth:`TrainConfig.from_values`."""
        mech = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("neuraldp.")}
        rest = {k: v for k, v in values.items() if not k.startswith("neuraldp.")}
        if any(k.startswith("dp.") for k in rest):
            raise ConfigError(next(k for k in rest if k.startswith("dp.")),
                              "is not used by NeuralDP (its noise settings are neuraldp.*)")
        known = {f.name for f in fields(NeuralDPSettings)}
        unknown = sorted(set(mech) - known)
        if unknown:
            raise ConfigError(f"neuraldp.{unknown[0]}", "is not a configuration field")
        for required in ("layer", "clip"):
            if required not in mech:
                raise ConfigError(f"neuraldp.{required}", "is required")
        return cls(TrainConfig.from_values(dataset, {**rest, "dp.enabled": False}), NeuralDPSettings(**mech))

    def with_values(self, values: dict[str, Any]) -> "NeuralDPConfig":
        """A copy with dotted paths replaced (``neuraldp.*`` or training fields)."""
        mech = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("neuraldp.")}
        rest = {k: v for k, v in values.items() if not k.startswith("neuraldp.")}
        return NeuralDPConfig(self.base.with_values(rest) if rest else self.base, replace(self.neuraldp, **mech))

    def to_dict(self) -> dict:
        return {"base": self.base.to_dict(), "neuraldp": asdict(self.neuraldp)}
