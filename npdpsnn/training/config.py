"""The resolved configuration of a training run, validated in one place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from npdpsnn.errors import UserError
from npdpsnn.model.config import ModelConfig
from npdpsnn.privacy.mechanism import CLIPPINGS
from npdpsnn.privacy.sampling import SAMPLINGS

DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")

# The paper's settings (DPSNN, section 4): batch 250, lr 0.25, R = 1.5, delta 1e-5,
# 60 epochs on MNIST and 80 on Fashion-MNIST; Extended Yale B (4.3): batch 256,
# R = 2.0, 80 epochs and the face network.
DATASET_DEFAULTS = {
    "mnist": dict(epochs=60, batch_size=250, clip=1.5, net="net2"),
    "fashion-mnist": dict(epochs=80, batch_size=250, clip=1.5, net="net2"),
    "yaleb": dict(epochs=80, batch_size=256, clip=2.0, net="face"),
}

# Options that may differ between a run and its resumption.
RESUMABLE_CHANGES = ("epochs", "threads", "device")


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    model: str = "snn"
    net: str = "net2"
    spec: str = ""  # resolved spec string (filled by the trainer)
    neuron: str = "if"
    surrogate: str = "gate"
    T: int = 5
    threshold: float = 0.5
    leak: float = 0.2
    detach_reset: bool = False
    dp: bool = True
    sigma: float | None = None
    target_epsilon: float | None = None
    clip: float = 1.5
    clipping: str = "flat"
    delta: float = 1e-5
    batch_size: int = 250
    physical_batch: int = 500
    lr: float = 0.25
    momentum: float = 0.0
    epochs: int = 60
    sampling: str = "poisson"
    seed: int = 0
    noise_seed: str = "derived"  # noise and batch sampling "derived" from --seed, or "os" (secret OS entropy)
    threads: int = 0  # 0 = all cores
    device: str = "cpu"
    limit_train: int | None = None
    accountant: str = "all"
    split_seed: int = 0

    def __post_init__(self) -> None:
        ModelConfig(kind=self.model, neuron=self.neuron, surrogate=self.surrogate, T=self.T,
                    threshold=self.threshold, leak=self.leak, detach_reset=self.detach_reset)
        if self.dp:
            if self.sigma is None and self.target_epsilon is None:
                raise UserError("give one of --sigma and --target-epsilon (or --no-dp)")
            if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
                raise UserError(f"--sigma must be > 0 for DP training (use --no-dp for none), got {self.sigma}")
            if self.target_epsilon is not None and not (math.isfinite(self.target_epsilon)
                                                        and self.target_epsilon > 0):
                raise UserError(f"--target-epsilon must be > 0, got {self.target_epsilon}")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise UserError(f"--clip R must be > 0, got {self.clip}")
        if self.clipping not in CLIPPINGS:
            raise UserError(f"unknown clipping {self.clipping!r}; choose flat or per-layer")
        if not 0 < self.delta < 1:
            raise UserError(f"--delta must lie in (0, 1), got {self.delta}")
        for name in ("batch_size", "physical_batch", "epochs"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"--momentum must lie in [0, 1), got {self.momentum}")
        if self.sampling not in SAMPLINGS:
            raise UserError(f"unknown sampling {self.sampling!r}; choose poisson or shuffle")
        if self.noise_seed not in ("derived", "os"):
            raise UserError(f"noise seed must be 'derived' or 'os', got {self.noise_seed!r}")
        if self.threads < 0:
            raise UserError(f"--threads must be >= 0, got {self.threads}")
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; choose cpu, cuda or auto")
        if self.limit_train is not None and self.limit_train < 1:
            raise UserError(f"--limit-train must be >= 1, got {self.limit_train}")
        if self.accountant not in ("rdp", "gdp", "pld", "all"):
            raise UserError(f"unknown accountant {self.accountant!r}; choose rdp, gdp, pld or all")
        from npdpsnn.privacy.accountants import PLD_MIN_DELTA

        if self.dp and self.accountant == "pld" and self.delta < PLD_MIN_DELTA:
            raise UserError(f"--accountant pld needs --delta >= {PLD_MIN_DELTA:g}, got {self.delta:g}")
        if self.seed < 0:
            raise UserError(f"--seed must be >= 0, got {self.seed}")

    def model_config(self) -> ModelConfig:
        return ModelConfig(kind=self.model, neuron=self.neuron, surrogate=self.surrogate, T=self.T,
                           threshold=self.threshold, leak=self.leak, detach_reset=self.detach_reset)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def conflicts(self, other: "TrainConfig") -> list[str]:
        """Names of options whose values differ (except those a resume may change)."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k not in RESUMABLE_CHANGES and a[k] != b[k]]
