"""Stateful privacy accountant: a history of DP-SGD phases plus the pure analyses.

The state is only the list of phases ``(sigma, sample_rate, steps)`` (consecutive
identical phases are merged) and the sampling scheme; every epsilon is computed
on demand by the pure functions in :mod:`.rdp`, :mod:`.gdp` and :mod:`.pld`
(same split as Opacus: analysis vs. state).

Sampling.  All analyses are for Poisson sampling (each record joins a batch
independently with probability ``q``).  A run that shuffles and takes
fixed-size batches can record ``sampling="shuffle"``: the numbers are still the
Poisson ones, but :attr:`PrivacyAccountant.covered_by_analysis` is False so the
caller can label them as not covered by the analysis.

GDP for a heterogeneous history: the CLT parameters compose as
``mu = sqrt(sum_i mu_i^2)`` with ``mu_i = q_i sqrt(T_i (exp(1/sigma_i^2) - 1))``.
"""

from __future__ import annotations

import numbers
from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import gdp as _gdp
from npdpsnn.privacy.accountants import pld as _pld
from npdpsnn.privacy.accountants import rdp as _rdp
from npdpsnn.privacy.accountants.rdp import (
    _check_delta,
    _check_sample_rate,
    _check_sigma,
    _check_steps,
)

__all__ = ["PrivacyAccountant", "METHODS", "SAMPLING_SCHEMES", "STATE_FORMAT_VERSION"]

METHODS = ("rdp", "gdp", "pld")
SAMPLING_SCHEMES = ("poisson", "shuffle")
STATE_FORMAT_VERSION = 1
_STATE_KIND = "npdpsnn.privacy_accountant"


class PrivacyAccountant:
    """History of ``(sigma, sample_rate, steps)`` phases of DP-SGD.

    >>> acc = PrivacyAccountant()
    >>> acc.step(1.0, 250 / 60000, n=14400)
    >>> round(acc.epsilon(1e-5, method="gdp"), 2)
    2.7
    """

    def __init__(self, sampling: str = "poisson") -> None:
        if sampling not in SAMPLING_SCHEMES:
            raise UserError(f"sampling must be one of {', '.join(SAMPLING_SCHEMES)}, got {sampling!r}")
        self.sampling = sampling
        self.history: list[tuple[float, float, int]] = []

    # -- state ---------------------------------------------------------------

    @property
    def covered_by_analysis(self) -> bool:
        """True only for Poisson sampling, the scheme all three analyses assume."""
        return self.sampling == "poisson"

    @property
    def steps(self) -> int:
        """Total number of recorded steps."""
        return sum(n for _, _, n in self.history)

    def step(self, noise_multiplier: float, sample_rate: float, n: int = 1) -> None:
        """Record ``n`` steps with noise multiplier ``sigma`` and sampling rate ``q``."""
        sigma = _check_sigma(noise_multiplier)
        q = _check_sample_rate(sample_rate)
        n = _check_steps(n, allow_zero=True)
        if n == 0:
            return
        if self.history and self.history[-1][0] == sigma and self.history[-1][1] == q:
            s, r, m = self.history[-1]
            self.history[-1] = (s, r, m + n)
        else:
            self.history.append((sigma, q, n))

    # -- analyses ------------------------------------------------------------

    def epsilon(self, delta: float, method: str = "rdp") -> float:
        """Epsilon at ``delta`` by ``method`` ("rdp", "gdp" = CLT, or "pld")."""
        d = _check_delta(delta)
        if method not in METHODS:
            raise UserError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not self.history:
            return 0.0
        if method == "rdp":
            orders = _rdp.DEFAULT_ORDERS
            return _rdp.rdp_to_epsilon(orders, _rdp.compute_rdp_history(self.history, orders), d)[0]
        if method == "gdp":
            return _gdp.gdp_epsilon(self.mu(), d)
        return _pld.pld_epsilon_history(self.history, d)

    def mu(self) -> float:
        """CLT mu of the whole history, ``sqrt(sum_i mu_i^2)``."""
        return _gdp.clt_mu_history(self.history)

    def all_epsilons(self, delta: float) -> dict[str, float | None]:
        """``{"rdp_epsilon", "clt_epsilon", "clt_mu", "pld_epsilon"}`` at ``delta``.

        ``pld_epsilon`` is None when ``delta`` is below the PLD accountant's
        minimum (:data:`pld.MIN_DELTA`).
        """
        d = _check_delta(delta)
        return {
            "rdp_epsilon": self.epsilon(d, "rdp"),
            "clt_epsilon": self.epsilon(d, "gdp"),
            "clt_mu": self.mu(),
            "pld_epsilon": self.epsilon(d, "pld") if d >= _pld.MIN_DELTA else None,
        }

    # -- serialisation ---------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (plain lists, floats, ints, strings)."""
        return {
            "kind": _STATE_KIND,
            "format_version": STATE_FORMAT_VERSION,
            "sampling": self.sampling,
            "history": [[float(s), float(q), int(n)] for s, q, n in self.history],
        }

    @classmethod
    def from_state_dict(cls, state: Any) -> "PrivacyAccountant":
        """Rebuild an accountant from :meth:`state_dict`; UserError on anything malformed."""
        if not isinstance(state, dict):
            raise UserError("privacy accountant state must be a dict")
        if state.get("kind") != _STATE_KIND:
            raise UserError(f"privacy accountant state has kind {state.get('kind')!r}, expected {_STATE_KIND!r}")
        version = state.get("format_version")
        if isinstance(version, bool) or not isinstance(version, numbers.Integral) or version != STATE_FORMAT_VERSION:
            raise UserError(
                f"privacy accountant state format_version {version!r} is not supported (expected {STATE_FORMAT_VERSION})"
            )
        extra = set(state) - {"kind", "format_version", "sampling", "history"}
        if extra:
            raise UserError(f"privacy accountant state has unknown keys: {', '.join(sorted(map(str, extra)))}")
        acc = cls(sampling=state.get("sampling"))
        history = state.get("history")
        if not isinstance(history, list):
            raise UserError("privacy accountant state 'history' must be a list")
        for i, entry in enumerate(history):
            if not isinstance(entry, (list, tuple)) or len(entry) != 3:
                raise UserError(f"privacy accountant history entry {i} must be [sigma, sample_rate, steps]")
            sigma, q, n = entry
            try:
                if not isinstance(n, numbers.Integral) or isinstance(n, bool):
                    raise UserError(f"steps must be an integer, got {n!r}")
                acc.step(sigma, q, _check_steps(n))
            except UserError as exc:
                raise UserError(f"privacy accountant history entry {i}: {exc}") from None
        return acc

    def __repr__(self) -> str:
        return f"PrivacyAccountant(sampling={self.sampling!r}, history={self.history!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivacyAccountant):
            return NotImplemented
        return self.sampling == other.sampling and self.history == other.history
