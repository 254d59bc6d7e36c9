"""Model options that the kernels need, validated once."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Integral, Real

from npdpsnn.errors import UserError
from npdpsnn.limits import MAX_T
from npdpsnn.model.encoding import ENCODINGS
from npdpsnn.model.neurons import ACTIVATIONS, NEURONS, RESETS, code_of
from npdpsnn.model.surrogates import surrogate_code

KINDS: tuple[str, ...] = ("snn", "ann")


@dataclass(frozen=True)
class ModelConfig:
    """``kind`` snn|ann, ``neuron`` if|lif, ``surrogate`` gate|darctanh|normal,
    time window ``T``, threshold ``V_th``, LIF leak ``lambda``, ``detach_reset``;
    and the conversion options (defaults = the DPSNN paper):

    * ``activation`` tanh|relu: the ANN's activation (``kind="ann"`` only);
    * ``reset`` zero|subtract: reset to zero (eq. 2) or by subtraction
      ``V <- V - V_th o`` (:mod:`npdpsnn.model.neurons`);
    * ``thresholds``: one threshold per hidden weight layer (conv/fc below the
      output), or None for ``threshold`` everywhere;
    * ``bias``: False builds weight layers without bias parameters (``W a``
      instead of ``W a + b``; the network has no ``*.bias`` entries);
    * ``encoding`` direct|poisson and ``encoding_seed``: how the image enters
      at each step (:mod:`npdpsnn.model.encoding`; Poisson only for the SNN).
    """

    kind: str = "snn"
    neuron: str = "if"
    surrogate: str = "gate"
    T: int = 5
    threshold: float = 0.5
    leak: float = 0.2
    detach_reset: bool = False
    activation: str = "tanh"
    reset: str = "zero"
    thresholds: tuple[float, ...] | None = None
    bias: bool = True
    encoding: str = "direct"
    encoding_seed: int = 0

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
        code_of(self.activation, ACTIVATIONS, "activation")
        code_of(self.reset, RESETS, "reset")
        code_of(self.encoding, ENCODINGS, "input encoding")
        if self.thresholds is not None:
            if isinstance(self.thresholds, (str, bytes)) or not hasattr(self.thresholds, "__iter__"):
                raise UserError(f"thresholds must be a list of numbers, got {self.thresholds!r}")
            ths = tuple(self.thresholds)
            if not ths or not all(_is_real(v) and math.isfinite(v) for v in ths):
                raise UserError(f"thresholds must be a non-empty list of finite numbers, got {self.thresholds!r}")
            object.__setattr__(self, "thresholds", tuple(float(v) for v in ths))  # JSON lists -> tuple
        if not isinstance(self.bias, bool):
            raise UserError(f"bias must be true or false, got {self.bias!r}")
        if (isinstance(self.encoding_seed, bool) or not isinstance(self.encoding_seed, Integral)
                or not 0 <= self.encoding_seed < 2**32):
            raise UserError(f"encoding_seed must be an integer in [0, 2**32), got {self.encoding_seed!r}")
        if self.kind == "ann" and self.encoding != "direct":
            raise UserError("the ANN takes the analog image (encoding direct); Poisson input is for the SNN")

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

    @property
    def activation_id(self) -> int:
        return code_of(self.activation, ACTIVATIONS, "activation")

    @property
    def reset_id(self) -> int:
        return code_of(self.reset, RESETS, "reset")

    @property
    def encoding_id(self) -> int:
        return code_of(self.encoding, ENCODINGS, "input encoding")

    @property
    def is_paper_default(self) -> bool:
        """Only the DPSNN paper's options: tanh ANN, reset to zero, one threshold,
        biases, direct input."""
        return (self.activation == "tanh" and self.reset == "zero" and self.thresholds is None and self.bias
                and self.encoding == "direct")

    def layer_thresholds(self, n_hidden: int) -> tuple[float, ...]:
        """The threshold of each of the ``n_hidden`` hidden weight layers."""
        if self.thresholds is None:
            return (float(self.threshold),) * n_hidden
        if len(self.thresholds) != n_hidden:
            raise UserError(f"thresholds has {len(self.thresholds)} values, the network has {n_hidden} hidden "
                            f"weight layers (conv/fc below the output)")
        return self.thresholds

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["thresholds"] is not None:
            d["thresholds"] = list(d["thresholds"])
        return d


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)
