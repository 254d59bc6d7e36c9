"""The registry of privacy analyses: one entry per accounting method.

Each :class:`Analysis` names itself once -- its CLI name, its label, the metric
columns it fills (in ``metrics.csv`` and ``summary.json``), whether its epsilon
is a proven upper bound, the smallest delta it handles -- and declares which
events (:mod:`npdpsnn.privacy.events`) it can account; it refuses the others
with :class:`UnsupportedEventError`.  The CLI choices, the CSV columns and the
summary keys are all derived from :data:`ANALYSES`.

All three analyses here account the Poisson-subsampled Gaussian mechanism
(DP-SGD), composed over steps with possibly different ``(sigma, q)``:

* ``rdp`` -- Rényi DP with the improved conversion (:mod:`.rdp`), the DPSNN
  paper's "MA-epsilon"; an upper bound;
* ``clt`` -- the central-limit Gaussian-DP approximation of Bu et al. 2020
  (:mod:`.gdp`), the paper's "CLT-epsilon" and "CLT-mu"; not a bound;
* ``pld`` -- the numerical privacy-loss distribution (:mod:`.pld`); an upper bound.

A plain :class:`GaussianEvent` counts as sampling rate 1; a
:class:`NonPrivateEvent` gives infinite epsilon, and so does a noise multiplier
below :data:`TINY_SIGMA`; a :class:`NoOpEvent` gives 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import gdp as _gdp
from npdpsnn.privacy.accountants import pld as _pld
from npdpsnn.privacy.accountants import rdp as _rdp
from npdpsnn.privacy.events import (
    DpEvent, GaussianEvent, NonPrivateEvent, PoissonSampledEvent, flatten,
)

__all__ = ["ANALYSES", "Analysis", "UnsupportedEventError", "get_analysis", "metric_columns",
           "sampled_gaussian_phases"]


class UnsupportedEventError(UserError):
    """An analysis was asked to account an event it cannot account."""


Phases = list[tuple[float, float, int]]

#: Below this noise multiplier the numerical analyses leave float64 (sigma^2
#: underflows, 1/sigma^2 overflows); epsilon is reported as infinite, which is
#: safe: the true epsilon of such a step is astronomically large anyway.
TINY_SIGMA = 1e-100


def sampled_gaussian_phases(event: DpEvent, analysis: str = "this analysis") -> Phases | None:
    """``event`` as ``(sigma, q, steps)`` phases of the Poisson-subsampled
    Gaussian, or ``None`` when it contains a non-private phase (infinite
    epsilon); :class:`UnsupportedEventError` for any other event."""
    phases: Phases = []
    for atom, n in flatten(event):
        if isinstance(atom, NonPrivateEvent):
            return None
        if isinstance(atom, GaussianEvent):
            sigma, q = atom.noise_multiplier, 1.0
        elif isinstance(atom, PoissonSampledEvent) and isinstance(atom.event, GaussianEvent):
            sigma, q = atom.event.noise_multiplier, atom.sampling_probability
        else:
            raise UnsupportedEventError(f"{analysis} cannot account the event {type(atom).__name__} "
                                        f"({atom!r}); it handles Poisson-subsampled Gaussian steps only")
        if phases and phases[-1][:2] == (sigma, q):
            phases[-1] = (sigma, q, phases[-1][2] + n)
        else:
            phases.append((sigma, q, n))
    return phases


@dataclass(frozen=True)
class Analysis:
    """One accounting method.

    ``columns`` are the metric names it fills, the first being its epsilon;
    ``compute(phases, delta)`` maps non-empty phases to those values."""

    name: str
    label: str
    columns: tuple[str, ...]
    is_bound: bool
    min_delta: float
    compute: Callable[[Phases, float], dict]
    citation: str

    @property
    def epsilon_column(self) -> str:
        return self.columns[0]

    def supports(self, event: DpEvent) -> bool:
        try:
            sampled_gaussian_phases(event, self.name)
        except UnsupportedEventError:
            return False
        return True

    def check_delta(self, delta: float) -> float:
        d = _rdp._check_delta(delta)
        if d < self.min_delta:
            raise UserError(f"the {self.name} accountant needs delta >= {self.min_delta:g}, got {d!r}")
        return d

    def values(self, event: DpEvent, delta: float) -> dict:
        """``{column: value}`` for ``event`` at ``delta`` (0 for no event, inf for a non-private phase)."""
        d = self.check_delta(delta)
        phases = sampled_gaussian_phases(event, self.name)
        if phases is None:
            return {c: math.inf for c in self.columns}
        if not phases:
            return {c: 0.0 for c in self.columns}
        if any(sigma < TINY_SIGMA for sigma, _, _ in phases):
            return {c: math.inf for c in self.columns}
        return self.compute(phases, d)

    def epsilon(self, event: DpEvent, delta: float) -> float:
        return self.values(event, delta)[self.epsilon_column]


def _rdp_values(phases: Phases, delta: float) -> dict:
    orders = _rdp.DEFAULT_ORDERS
    return {"rdp_epsilon": _rdp.rdp_to_epsilon(orders, _rdp.compute_rdp_history(phases, orders), delta)[0]}


def _clt_values(phases: Phases, delta: float) -> dict:
    mu = _gdp.clt_mu_history(phases)
    return {"clt_epsilon": _gdp.gdp_epsilon(mu, delta), "clt_mu": mu}


def _pld_values(phases: Phases, delta: float) -> dict:
    return {"pld_epsilon": _pld.pld_epsilon_history(phases, delta)}


#: Every accounting method, in report order (the order of the metric columns).
ANALYSES: dict[str, Analysis] = {a.name: a for a in (
    Analysis("rdp", "RDP (moments accountant)", ("rdp_epsilon",), True, 0.0, _rdp_values,
             "Mironov, Talwar & Zhang 2019; conversion of Balle et al. 2020"),
    Analysis("clt", "CLT (Gaussian DP)", ("clt_epsilon", "clt_mu"), False, 0.0, _clt_values,
             "Bu, Dong, Long & Su 2020 (an asymptotic approximation, not a bound)"),
    Analysis("pld", "PLD (numerical upper bound)", ("pld_epsilon",), True, _pld.MIN_DELTA, _pld_values,
             "numerical privacy-loss distribution, pessimistic discretisation"),
)}

#: Older names still accepted on input.
ALIASES: dict[str, str] = {"gdp": "clt"}


def get_analysis(name: str) -> Analysis:
    """The analysis called ``name`` (or one of its :data:`ALIASES`)."""
    key = ALIASES.get(name, name)
    if key not in ANALYSES:
        raise UserError(f"unknown accountant {name!r}; choose one of {', '.join(ANALYSES)}")
    return ANALYSES[key]


def delta_caveat(delta: float, dataset_size: int) -> str | None:
    """A warning when ``delta >= 1 / N``: then a mechanism that publishes a
    random record outright meets the (epsilon, delta) statement, which is
    therefore no meaningful protection (the usual advice is delta << 1/N)."""
    if dataset_size >= 1 and delta >= 1.0 / dataset_size:
        return (f"delta = {delta:g} is not below 1/N = {1.0 / dataset_size:.3g}: an (epsilon, delta) guarantee "
                "with such a delta allows publishing some records outright; choose delta well below 1/N")
    return None


def metric_columns() -> tuple[str, ...]:
    """All analyses' metric columns, in report order."""
    return tuple(c for a in ANALYSES.values() for c in a.columns)
