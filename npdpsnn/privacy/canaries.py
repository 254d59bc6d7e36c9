"""White-box gradient canaries for auditing DP-SGD through its real mechanism.

A Dirac canary ``k`` is a record whose clipped gradient is ``C e_k`` on an
audit-only coordinate ``P + k`` that no model parameter uses (the construction
of the "Dirac canary" audits; Nasr et al. 2023, Steinke, Nasr & Jagielski
2023).  Each canary is included in the training set with probability 1/2
(independently; :func:`draw_inclusion`); included canaries are records like any
other: the sampling scheme draws them (the dataset has ``N + m_in`` records,
so ``q = B / (N + m_in)``), their gradient is added to the clipped sum, and the
Gaussian noise and the division by ``B`` act on the ``P + m`` coordinates
together -- the same call that privatises the model's gradient.  What the
mechanism releases on the audit coordinates is recorded every step; the
canary's score is its coordinate summed over steps (the statistic of the
one-run audit).  ``C`` defaults to the clipping norm ``R``: the largest
gradient a record may contribute.
"""

from __future__ import annotations

import math

import numpy as np

from npdpsnn.errors import UserError


def draw_inclusion(m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` independent fair coin flips: which canaries join the training set."""
    if m < 1:
        raise UserError(f"the number of canaries must be >= 1, got {m}")
    return rng.random(m) < 0.5


class DiracCanaries:
    """``m`` Dirac gradient canaries, ``included[k]`` saying which are in the data."""

    def __init__(self, included: np.ndarray, norm: float | None = None):
        included = np.asarray(included)
        if included.ndim != 1 or included.dtype != bool or included.size < 1:
            raise UserError("canary inclusion must be a non-empty 1-d boolean array")
        if norm is not None and not (math.isfinite(norm) and norm > 0):
            raise UserError(f"canary gradient norm must be > 0, got {norm}")
        self.included = included
        self.norm = norm
        self._ids = np.flatnonzero(included)  # record n_train + j is canary _ids[j]
        self._released: list[np.ndarray] = []

    @property
    def m(self) -> int:
        return int(self.included.size)

    @property
    def n_included(self) -> int:
        return int(self._ids.size)

    def gradient_sum(self, canary_records: np.ndarray, clip: float) -> np.ndarray:
        """The canaries' summed gradients on the ``m`` audit coordinates for the
        sampled canary records ``0 .. n_included - 1``."""
        out = np.zeros(self.m, np.float64)
        out[self._ids[canary_records]] = clip if self.norm is None else min(self.norm, clip)
        return out

    def record(self, released: np.ndarray) -> None:
        """Keep the released (noisy, scaled) audit coordinates of one step."""
        self._released.append(np.array(released, dtype=np.float64))

    @property
    def steps(self) -> int:
        return len(self._released)

    def scores(self) -> np.ndarray:
        """Each canary's released coordinate summed over the steps."""
        if not self._released:
            return np.zeros(self.m)
        return np.sum(self._released, axis=0)
