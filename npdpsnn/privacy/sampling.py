"""Batch sampling for DP-SGD.

* :class:`PoissonSampler` (default): at every step each of the ``N`` examples
  joins the batch independently with probability ``q = B / N``; batch sizes vary
  (mean ``qN``, variance ``q(1-q)N``) and may be empty.  This is the sampling
  that the subsampled-Gaussian analyses (RDP, CLT, PLD) assume.
* :class:`ShuffleSampler`: a random permutation per epoch cut into fixed-size
  batches of ``B`` (the last ``N mod B`` examples of each permutation are
  dropped).  The accountants still report the Poisson numbers for it, labelled
  as *not covered* by the analysis.

An epoch is ``ceil(N / B)`` steps for Poisson sampling and ``N // B`` for
shuffling.
"""

from __future__ import annotations

import math

import numpy as np

from npdpsnn.errors import UserError

SAMPLINGS: tuple[str, ...] = ("poisson", "shuffle")


def _check(n: int, batch_size: int) -> None:
    if n < 1:
        raise UserError(f"dataset size must be >= 1, got {n}")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    if batch_size > n:
        raise UserError(f"batch size {batch_size} is larger than the dataset ({n} examples)")


class PoissonSampler:
    """Independent inclusion of every example with probability ``q = B / N``."""

    covered_by_analysis = True

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator):
        _check(n, batch_size)
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.sample_rate = batch_size / n
        self.steps_per_epoch = math.ceil(n / batch_size)

    def batch(self) -> np.ndarray:
        """Indices of one batch (sorted; possibly empty)."""
        return np.flatnonzero(self.rng.random(self.n) < self.sample_rate)

    def epoch(self):
        for _ in range(self.steps_per_epoch):
            yield self.batch()


class ShuffleSampler:
    """One pass per epoch over a random permutation, in batches of exactly ``B``."""

    covered_by_analysis = False

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator):
        _check(n, batch_size)
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.sample_rate = batch_size / n
        self.steps_per_epoch = n // batch_size

    def epoch(self):
        perm = self.rng.permutation(self.n)
        for i in range(self.steps_per_epoch):
            yield np.sort(perm[i * self.batch_size : (i + 1) * self.batch_size])


def make_sampler(kind: str, n: int, batch_size: int, rng: np.random.Generator):
    if kind == "poisson":
        return PoissonSampler(n, batch_size, rng)
    if kind == "shuffle":
        return ShuffleSampler(n, batch_size, rng)
    raise UserError(f"unknown sampling {kind!r}; choose poisson or shuffle")
