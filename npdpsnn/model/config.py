"""Model options that the kernels need, validated once."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Real

from npdpsnn.errors import UserError
from npdpsnn.limits import MAX_T
from npdpsnn.model.neurons import NEURONS
from npdpsnn.model.surrogates import surrogate_code

KINDS: tuple[str, ...] = ("snn", "ann")


@dataclass(frozen=True)
class ModelConfig:
    """``kind`` snn|ann, ``neuron`` if|lif, ``surrogate`` gate|darctanh|normal,
    time window ``T``, threshold ``V_th``, LIF leak ``lambda``, ``detach_reset``."""

    kind: str = "snn"
    neuron: str = "if"
    surrogate: str = "gate"
    T: int = 5
    threshold: float = 0.5
    leak: float = 0.2
    detach_reset: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"unknown model kind {self.kind!r}; choose snn or ann")
        if self.neuron not in NEURONS:
            raise UserError(f"unknown neuron {self.neuron!r}; choose if or lif")
        surrogate_code(self.surrogate)
        if isinstance(self.T, bool) or not isinstance(self.T, int) or self.T < 1:
            raise UserError(f"time window T must be an integer >= 1, got {self.T!r}")
        if self.T > MAX_T:
            raise UserError(f"time window T = {self.T} is above the limit of {MAX_T}")
        if not _is_real(self.threshold) or not math.isfinite(self.threshold):
            raise UserError(f"threshold must be finite, got {self.threshold!r}")
        if not _is_real(self.leak) or not (0.0 <= self.leak <= 1.0):
            raise UserError(f"leak must be in [0, 1], got {self.leak!r}")
        if not isinstance(self.detach_reset, bool):
            raise UserError(f"detach_reset must be true or false, got {self.detach_reset!r}")

    @property
    def steps(self) -> int:
        """Number of simulated time steps: ``T`` for an SNN, 1 for the ANN."""
        return self.T if self.kind == "snn" else 1

    @property
    def effective_leak(self) -> float:
        """``lambda`` in eq. 14; IF neurons do not leak (``lambda = 1``, eq. 2)."""
        return 1.0 if self.neuron == "if" else float(self.leak)

    @property
    def surrogate_id(self) -> int:
        return surrogate_code(self.surrogate)

    def to_dict(self) -> dict:
        return asdict(self)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)
