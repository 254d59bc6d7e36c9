"""Batch sampling schemes for DP-SGD: the single source of ``q`` and steps per epoch.

* :class:`PoissonSampler` (default): at every step each of the ``N`` examples
  joins the batch independently with probability ``q = B / N``; batch sizes vary
  (mean ``qN``, variance ``q(1-q)N``) and may be empty.  This is the sampling
  that the subsampled-Gaussian analyses (RDP, CLT, PLD) assume; an epoch is
  ``ceil(N / B)`` steps.
* :class:`ShuffleSampler`: a random permutation per epoch cut into fixed-size
  batches of ``B`` (the last ``N mod B`` examples of each permutation are
  dropped); an epoch is ``N // B`` steps.  Its steps are recorded as
  :class:`~npdpsnn.privacy.events.ShuffledBatchEvent`, which no analysis covers.

A scheme object is built from ``(N, B)`` alone (``rng`` only for drawing), so
``npdpsnn train`` and ``npdpsnn privacy`` take the rate, the epoch length and
the privacy event of a step from the same place.
"""

from __future__ import annotations

import math

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.privacy.events import GaussianEvent, PoissonSampledEvent, SelfComposedEvent, ShuffledBatchEvent


def _check(n: int, batch_size: int) -> None:
    if n < 1:
        raise UserError(f"dataset size must be >= 1, got {n}")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    if batch_size > n:
        raise UserError(f"batch size {batch_size} is larger than the dataset ({n} examples)")


class _Scheme:
    """Common part: ``n`` examples, expected batch size ``B``, rate ``q = B / N``."""

    name: str
    covered_by_analysis: bool
    event_class: type

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator | None = None):
        _check(n, batch_size)
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.sample_rate = batch_size / n
        self.steps_per_epoch = self._steps_per_epoch(n, batch_size)

    @staticmethod
    def _steps_per_epoch(n: int, batch_size: int) -> int:
        raise NotImplementedError

    def step_event(self, noise_multiplier: float):
        """The privacy event of one step with noise multiplier ``sigma``."""
        return self.event_class(self.sample_rate, GaussianEvent(noise_multiplier))

    def training_event(self, noise_multiplier: float, epochs: int):
        """The privacy event of ``epochs`` epochs."""
        return SelfComposedEvent(self.step_event(noise_multiplier), epochs * self.steps_per_epoch)

    def _rng(self) -> np.random.Generator:
        if self.rng is None:
            raise UserError("this sampling scheme was built without a random generator")
        return self.rng


class PoissonSampler(_Scheme):
    """Independent inclusion of every example with probability ``q = B / N``."""

    name = "poisson"
    covered_by_analysis = True
    event_class = PoissonSampledEvent

    @staticmethod
    def _steps_per_epoch(n: int, batch_size: int) -> int:
        return math.ceil(n / batch_size)

    def batch(self) -> np.ndarray:
        """Indices of one batch (sorted; possibly empty)."""
        return np.flatnonzero(self._rng().random(self.n) < self.sample_rate)

    def epoch(self):
        for _ in range(self.steps_per_epoch):
            yield self.batch()


class ShuffleSampler(_Scheme):
    """One pass per epoch over a random permutation, in batches of exactly ``B``."""

    name = "shuffle"
    covered_by_analysis = False
    event_class = ShuffledBatchEvent

    @staticmethod
    def _steps_per_epoch(n: int, batch_size: int) -> int:
        return n // batch_size

    def epoch(self):
        perm = self._rng().permutation(self.n)
        for i in range(self.steps_per_epoch):
            yield np.sort(perm[i * self.batch_size : (i + 1) * self.batch_size])


#: The scheme the subsampled-Gaussian analyses assume, and the default.
DEFAULT_SAMPLING = PoissonSampler.name

#: Every sampling scheme by name.
SAMPLINGS: dict[str, type[_Scheme]] = {c.name: c for c in (PoissonSampler, ShuffleSampler)}


def get_scheme_class(kind: str) -> type[_Scheme]:
    if kind not in SAMPLINGS:
        raise UserError(f"unknown sampling {kind!r}; choose {' or '.join(SAMPLINGS)}")
    return SAMPLINGS[kind]


def make_sampler(kind: str, n: int, batch_size: int, rng: np.random.Generator | None = None) -> _Scheme:
    """The scheme ``kind`` over ``n`` examples with expected batch size ``batch_size``."""
    return get_scheme_class(kind)(n, batch_size, rng)
