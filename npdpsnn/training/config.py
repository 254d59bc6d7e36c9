"""The configuration of a training run: model / DP / optimiser / run settings.

One frozen dataclass per concern, nested in :class:`TrainConfig`, each
validated in one place.  Errors are :class:`ConfigError` naming the *field*
(``dp.sigma``, ``optim.lr`` ...); the CLI maps field names to its flags.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.kernels.backend import DEVICES
from npdpsnn.model.config import ModelConfig
from npdpsnn.privacy.accountants import ANALYSES
from npdpsnn.privacy.accountants.analyses import DEFAULT_ANALYSIS, get_analysis
from npdpsnn.privacy.mechanism import CLIPPINGS
from npdpsnn.privacy.noise import NOISE_SOURCES
from npdpsnn.privacy.sampling import DEFAULT_SAMPLING, SAMPLINGS

NOISE_SEEDS: tuple[str, ...] = ("derived", "os")
#: Names of the training recipes (``preset``); their values are in :mod:`npdpsnn.training.presets`.
PRESETS: tuple[str, ...] = ("paper", "tuned")

# The paper's settings (DPSNN, section 4): batch 250, lr 0.25, R = 1.5, delta 1e-5,
# 60 epochs on MNIST and 80 on Fashion-MNIST; Extended Yale B (4.3): batch 256,
# R = 2.0, 80 epochs and the face network.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "mnist": {"optim.epochs": 60, "optim.batch_size": 250, "dp.clip": 1.5, "net": "net2"},
    "fashion-mnist": {"optim.epochs": 80, "optim.batch_size": 250, "dp.clip": 1.5, "net": "net2"},
    "yaleb": {"optim.epochs": 80, "optim.batch_size": 256, "dp.clip": 2.0, "net": "face"},
}


def default_physical_batch(batch_size: int) -> int:
    """Micro-batch size when none is given: ``2 B`` -- a Poisson batch exceeds
    twice its expectation with negligible probability, so a logical batch is
    almost always one micro-batch (the result does not depend on this)."""
    return 2 * batch_size


class ConfigError(UserError):
    """A configuration value is invalid; ``field`` is its dotted name."""

    def __init__(self, field_name: str, problem: str):
        self.field = field_name
        self.problem = problem
        super().__init__(f"{field_name} {problem}")


def _positive_finite(value, name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(name, f"must be > 0, got {value!r}")


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD: ``enabled``, noise multiplier ``sigma`` (or ``target_epsilon`` to
    calibrate it), clipping norm ``clip`` and kind, ``delta``, batch ``sampling``,
    where noise and sampling randomness come from (``noise_seed``), the
    analyses reported per epoch (``accountant``: a name in ANALYSES or "all"),
    and the Gaussian sampler (``noise``: ``numpy``, the reference; ``philox``,
    counter-based Numba kernels; ``secure``, OS entropy hardened against
    floating-point attacks -- see :mod:`npdpsnn.privacy.noise`); and
    ``augment_mult`` K: each example's gradient averaged over K shifted copies
    before clipping (the sensitivity is unchanged; :mod:`npdpsnn.training.augment`)."""

    enabled: bool = True
    sigma: float | None = None
    target_epsilon: float | None = None
    clip: float = 1.5
    clipping: str = "flat"
    delta: float = 1e-5
    sampling: str = DEFAULT_SAMPLING
    noise_seed: str = "derived"
    accountant: str = "all"
    noise: str = "numpy"
    augment_mult: int = 1

    def __post_init__(self) -> None:
        if self.enabled:
            if self.sigma is None and self.target_epsilon is None:
                raise ConfigError("dp.sigma", "is required for DP training (or give dp.target_epsilon, or "
                                              "disable DP)")
            if self.sigma is not None:
                _positive_finite(self.sigma, "dp.sigma")
            if self.target_epsilon is not None:
                _positive_finite(self.target_epsilon, "dp.target_epsilon")
        _positive_finite(self.clip, "dp.clip")
        if self.clipping not in CLIPPINGS:
            raise ConfigError("dp.clipping", f"must be one of {', '.join(CLIPPINGS)}, got {self.clipping!r}")
        if not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
            raise ConfigError("dp.delta", f"must lie in (0, 1), got {self.delta!r}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError("dp.sampling", f"must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.noise_seed not in NOISE_SEEDS:
            raise ConfigError("dp.noise_seed", f"must be one of {', '.join(NOISE_SEEDS)}, got {self.noise_seed!r}")
        if self.noise not in NOISE_SOURCES:
            raise ConfigError("dp.noise", f"must be one of {', '.join(NOISE_SOURCES)}, got {self.noise!r}")
        _integer_at_least(self.augment_mult, "dp.augment_mult", 1)
        if self.noise == "secure" and self.noise_seed != "os":
            raise ConfigError("dp.noise", "secure needs dp.noise_seed os: a secret sampler with a reproducible "
                                          "batch selection protects nothing more")
        if self.accountant != "all":
            try:
                analysis = get_analysis(self.accountant)
            except UserError:
                raise ConfigError("dp.accountant", f"must be one of {', '.join([*ANALYSES, 'all'])}, "
                                                   f"got {self.accountant!r}") from None
            if self.enabled and self.delta < analysis.min_delta:
                raise ConfigError("dp.delta", f"must be >= {analysis.min_delta:g} for the {analysis.name} "
                                              f"accountant, got {self.delta:g}")

    @property
    def calibration_analysis(self) -> str:
        """The analysis that calibrates sigma for ``target_epsilon`` ("all" -> rdp)."""
        return DEFAULT_ANALYSIS if self.accountant == "all" else get_analysis(self.accountant).name


LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")


@dataclass(frozen=True)
class OptimConfig:
    """SGD: learning rate and its schedule (``constant``, or ``cosine`` decay to 0
    over the whole run), momentum, expected (logical) batch size, epochs, and
    ``ema``: the decay of an exponential moving average of the weights that is
    evaluated and saved beside them (``None``: off).  Schedules and averaging
    use no data: they are post-processing and cost no privacy.  ``init_gain``
    scales the initial weights and biases (``U(-g/sqrt(fan_in), g/sqrt(fan_in))``,
    1 = PyTorch's default; :func:`npdpsnn.model.params.kaiming_uniform_init`)."""

    lr: float = 0.25
    momentum: float = 0.0
    batch_size: int = 250
    epochs: int = 60
    lr_schedule: str = "constant"
    ema: float | None = None
    init_gain: float = 1.0

    def __post_init__(self) -> None:
        _positive_finite(self.lr, "optim.lr")
        _positive_finite(self.init_gain, "optim.init_gain")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ConfigError("optim.momentum", f"must lie in [0, 1), got {self.momentum!r}")
        for name in ("batch_size", "epochs"):
            _integer_at_least(getattr(self, name), f"optim.{name}", 1)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError("optim.lr_schedule", f"must be one of {', '.join(LR_SCHEDULES)}, "
                                                   f"got {self.lr_schedule!r}")
        if self.ema is not None and not (isinstance(self.ema, (int, float)) and 0 < self.ema < 1):
            raise ConfigError("optim.ema", f"must lie in (0, 1), got {self.ema!r}")

    def learning_rate(self, step: int, total_steps: int) -> float:
        """The learning rate of step ``step`` (0-based) of ``total_steps``:
        ``lr`` or ``lr (1 + cos(pi step / total)) / 2``."""
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
        return self.lr


@dataclass(frozen=True)
class RunConfig:
    """Seeds, compute placement and data subset: ``seed`` (initialisation and,
    with ``dp.noise_seed="derived"``, noise and sampling), kernel ``threads``
    (0 = all cores), ``device``, ``physical_batch`` (micro-batch size; the same
    result), ``limit_train`` (first N training examples), ``validation`` (that
    many of them held out, drawn with ``split_seed``, for model selection --
    never the test set), ``split_seed``."""

    seed: int = 0
    threads: int = 0
    device: str = "cpu"
    physical_batch: int = 500
    limit_train: int | None = None
    split_seed: int = 0
    validation: int = 0

    def __post_init__(self) -> None:
        _integer_at_least(self.seed, "run.seed", 0)
        _integer_at_least(self.threads, "run.threads", 0)
        if self.device not in DEVICES:
            raise ConfigError("run.device", f"must be one of {', '.join(DEVICES)}, got {self.device!r}")
        _integer_at_least(self.physical_batch, "run.physical_batch", 1)
        if self.limit_train is not None:
            _integer_at_least(self.limit_train, "run.limit_train", 1)
        _integer_at_least(self.split_seed, "run.split_seed", 0)
        _integer_at_least(self.validation, "run.validation", 0)


def _integer_at_least(value, name: str, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(name, f"must be an integer >= {lo}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """A whole run: ``dataset``, the DP settings ``dp`` (required: DP is never
    switched off by omission), the network (``net`` as given, ``spec`` once
    resolved), the nested ``model`` / ``optim`` / ``run`` settings, and the name
    of the recipe the values came from (``preset``, see
    :mod:`npdpsnn.training.presets`; a record only -- the front ends expand it)."""

    dataset: str
    dp: DPConfig
    net: str = "net2"
    spec: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError("preset", f"must be one of {', '.join(PRESETS)}, got {self.preset!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown or missing keys are a :class:`ConfigError`."""
        if not isinstance(d, dict):
            raise ConfigError("config", "must be a mapping")
        top = {f.name: f for f in fields(cls)}
        _check_keys(d, set(top), "config", required={"dataset", "dp"})
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            sub = _SECTIONS.get(key)
            if sub is None:
                kwargs[key] = value
                continue
            if not isinstance(value, dict):
                raise ConfigError(key, "must be a mapping")
            _check_keys(value, {f.name for f in fields(sub)}, key)
            kwargs[key] = sub(**value)
        return cls(**kwargs)

    @classmethod
    def from_values(cls, dataset: str, values: dict[str, Any]) -> "TrainConfig":
        """A configuration from dotted ``values`` such as ``{"dp.sigma": 1.0,
        "model.T": 5}``; fields not named keep their defaults."""
        nested: dict[str, Any] = {"dataset": dataset, "dp": {}}
        for path, value in values.items():
            head, _, rest = path.partition(".")
            if rest:
                if head not in _SECTIONS:
                    raise ConfigError(path, "is not a configuration field")
                nested.setdefault(head, {})[rest] = value
            else:
                nested[head] = value
        return cls.from_dict(nested)

    def get(self, path: str):
        """The value at a dotted ``path`` such as ``"dp.sigma"``."""
        obj: Any = self
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    def with_values(self, values: dict[str, Any]) -> "TrainConfig":
        """A copy with the dotted paths in ``values`` replaced (validated again)."""
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for path, value in values.items():
            head, _, rest = path.partition(".")
            if rest:
                if head not in _SECTIONS or rest not in {f.name for f in fields(_SECTIONS[head])}:
                    raise ConfigError(path, "is not a configuration field")
                nested.setdefault(head, {})[rest] = value
            else:
                if head not in {f.name for f in fields(TrainConfig)} or head in _SECTIONS:
                    raise ConfigError(path, "is not a configuration field")
                top[head] = value
        for head, vals in nested.items():
            top[head] = replace(getattr(self, head), **vals)
        return replace(self, **top)

    def differences(self, other: "TrainConfig") -> list[str]:
        """Dotted names of the fields whose values differ."""
        return [p for p in field_paths() if self.get(p) != other.get(p)]


_SECTIONS: dict[str, type] = {"model": ModelConfig, "dp": DPConfig, "optim": OptimConfig, "run": RunConfig}


def field_paths() -> list[str]:
    """Every leaf field as a dotted path (``dataset``, ``model.T``, ``dp.sigma``, ...)."""
    out = []
    for f in fields(TrainConfig):
        sub = _SECTIONS.get(f.name)
        out.extend([f"{f.name}.{g.name}" for g in fields(sub)] if sub else [f.name])
    return out


def _check_keys(d: dict, allowed: set[str], where: str, required: set[str] = frozenset()) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise ConfigError(where, f"has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    missing = set(required) - set(d)
    if missing:
        raise ConfigError(where, f"lacks the keys: {', '.join(sorted(missing))}")
