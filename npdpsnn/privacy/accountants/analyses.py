r"""The registry of privacy analyses: one entry per accounting method.

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

Replace-one ledgers (NeuralDP, :mod:`npdpsnn.neuraldp`).  A ledger holding an
:class:`~npdpsnn.privacy.events.ActivationReleaseEvent` or a
:class:`~npdpsnn.privacy.events.ReplaceOneEvent` is stated for replace-one
neighbours (``D'`` swaps one record of ``D``; ``N`` is public); see
:func:`replace_one_parts`.  Its epsilon is computed as follows, never below
the truth:

* ``ActivationReleaseEvent(sigma)``: per-record rows bounded to norm ``C`` plus
  :math:`N(0,\sigma^2C^2I)`; swapping one record moves one row (or a sum of
  rows) by at most ``2C``, so this is the Gaussian mechanism with noise
  multiplier :math:`s=\sigma/2` (Dwork & Roth 2014, Thm. A.1; RDP
  :math:`\alpha/(2s^2)`, Mironov 2017, Prop. 7; exactly :math:`(1/s)`-GDP,
  Dong, Roth & Su 2022, Thm. 2.7).  Every row is released, so there is no
  sampling and no amplification by subsampling.  ``k`` releases (fresh noise
  each epoch) compose to the Gaussian mechanism with :math:`s/\sqrt{k}`
  (RDP and GDP composition are exact for Gaussians); reusing one release for
  every epoch is post-processing and costs nothing more.
* ``ReplaceOneEvent(e)``: ``e`` is analysed for add/remove neighbours (e.g.
  Poisson-sampled DP-SGD steps).  The subsampled-Gaussian analyses here do not
  hold for replace-one neighbours as they stand (Google's ``dp_accounting``
  refuses ``PoissonSampledDpEvent`` under ``REPLACE_ONE`` in its RDP and PLD
  accountants; Lebeda, Regehr, Kamath & Steinke 2024 show how such shortcuts
  go wrong), so a replacement is taken as two add/remove steps,
  :math:`D \to D_{-i} \to D'`, and group privacy for two is applied:

  - ``rdp``: Mironov 2017 (Prop. 11, the weak triangle inequality, with
    :math:`p=q=2`): :math:`D_\alpha(P\|R) \le \frac{\alpha-1/2}{\alpha-1}
    D_{2\alpha}(P\|Q) + D_{2\alpha-1}(Q\|R)`, where both divergences are
    bounded by the add/remove RDP of ``e`` at those orders (the sampled
    Gaussian's RDP bounds both directions, Mironov, Talwar & Zhang 2019,
    Sec. 3.3); the bound is linear in the RDP curve, so it holds for any
    composition of such events and adds to the releases' RDP;
  - ``clt``: group privacy of Gaussian DP, :math:`\mu \to 2\mu` (Dong, Roth &
    Su 2022, Thm. 2.14), applied to the CLT :math:`\mu` (still an
    approximation, not a bound);
  - ``pld``: no replace-one form of the subsampled loss is implemented, so the
    PLD analysis refuses ``ReplaceOneEvent`` (:class:`UnsupportedEventError`)
    and accounts replace-one ledgers made of releases only.

  A replace-one ledger that also holds bare add/remove events (a
  :class:`PoissonSampledEvent` not wrapped in ``ReplaceOneEvent``) mixes two
  adjacencies and is refused by every analysis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import gdp as _gdp
from npdpsnn.privacy.accountants import pld as _pld
from npdpsnn.privacy.accountants import rdp as _rdp
from npdpsnn.privacy.events import (
    ActivationReleaseEvent, DpEvent, GaussianEvent, NonPrivateEvent, PoissonSampledEvent, ReplaceOneEvent,
    SelfComposedEvent, compose, flatten,
)

__all__ = ["ANALYSES", "Analysis", "ReplaceOneParts", "UnsupportedEventError", "get_analysis", "metric_columns",
           "replace_one_parts", "sampled_gaussian_phases"]


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
class ReplaceOneParts:
    """A replace-one ledger split for the analyses: ``releases`` are the
    :class:`ActivationReleaseEvent` s as Gaussian phases ``(sigma / 2, 1.0, n)``
    (noise multiplier for sensitivity ``2C``), ``group`` the add/remove events
    wrapped in :class:`ReplaceOneEvent` (composed), ``non_private`` whether a
    non-private phase occurs."""

    releases: Phases
    group: DpEvent
    non_private: bool


def replace_one_parts(event: DpEvent, analysis: str = "this analysis") -> ReplaceOneParts | None:
    """``event`` split into its replace-one parts, or ``None`` when it holds no
    replace-one event (an add/remove ledger); :class:`UnsupportedEventError`
    when it mixes bare add/remove events with replace-one ones."""
    atoms = flatten(event)
    if not any(isinstance(a, (ActivationReleaseEvent, ReplaceOneEvent)) for a, _ in atoms):
        return None
    releases: Phases = []
    group: list[DpEvent] = []
    non_private = False
    for atom, n in atoms:
        if isinstance(atom, ActivationReleaseEvent):
            releases.append((atom.noise_multiplier / 2.0, 1.0, n))
        elif isinstance(atom, ReplaceOneEvent):
            group.append(SelfComposedEvent(atom.event, n))
        elif isinstance(atom, NonPrivateEvent):
            non_private = True
        else:
            raise UnsupportedEventError(
                f"{analysis} cannot account {type(atom).__name__} ({atom!r}) in a replace-one ledger: add/remove "
                "events there must be wrapped in ReplaceOneEvent (a ledger may not mix adjacencies)")
    return ReplaceOneParts(releases, compose(group), non_private)


@dataclass(frozen=True)
class Analysis:
    """One accounting method.

    ``columns`` are the metric names it fills, the first being its epsilon;
    ``compute(phases, delta)`` maps non-empty phases to those values.
    ``compute_replace_one(releases, group, delta)`` does the same for a
    replace-one ledger (module docstring): ``releases`` as Gaussian phases for
    sensitivity ``2C``, ``group`` the add/remove phases stated for replace-one
    neighbours (empty unless ``groups_of_two``); ``None``: replace-one ledgers
    are refused."""

    name: str
    label: str
    columns: tuple[str, ...]
    is_bound: bool
    min_delta: float
    compute: Callable[[Phases, float], dict]
    citation: str
    compute_replace_one: Callable[[Phases, Phases, float], dict] | None = None
    groups_of_two: bool = False

    @property
    def epsilon_column(self) -> str:
        return self.columns[0]

    def supports(self, event: DpEvent) -> bool:
        try:
            parts = replace_one_parts(event, self.name)
            if parts is None:
                sampled_gaussian_phases(event, self.name)
            else:
                self._replace_one_phases(parts)
        except UnsupportedEventError:
            return False
        return True

    def _replace_one_phases(self, parts: ReplaceOneParts) -> tuple[Phases, Phases | None]:
        """``(releases, group phases or None for a non-private phase)``; refuses what this analysis cannot do."""
        if self.compute_replace_one is None:
            raise UnsupportedEventError(f"{self.name} cannot account replace-one ledgers (ActivationReleaseEvent, "
                                        "ReplaceOneEvent)")
        group = sampled_gaussian_phases(parts.group, self.name)
        if group and not self.groups_of_two:
            raise UnsupportedEventError(
                f"{self.name} cannot account ReplaceOneEvent (add/remove steps stated for replace-one neighbours): "
                "it has no replace-one form of the subsampled Gaussian; use rdp")
        return parts.releases, group

    def _replace_one_values(self, parts: ReplaceOneParts, delta: float) -> dict:
        releases, group = self._replace_one_phases(parts)
        if parts.non_private or group is None:
            return {c: math.inf for c in self.columns}
        if not releases and not group:
            return {c: 0.0 for c in self.columns}
        if any(sigma < TINY_SIGMA for sigma, _, _ in releases + group):
            return {c: math.inf for c in self.columns}
        return self.compute_replace_one(releases, group, delta)

    def check_delta(self, delta: float) -> float:
        d = _rdp._check_delta(delta)
        if d < self.min_delta:
            raise UserError(f"the {self.name} accountant needs delta >= {self.min_delta:g}, got {d!r}")
        return d

    def values(self, event: DpEvent, delta: float) -> dict:
        """``{column: value}`` for ``event`` at ``delta`` (0 for no event, inf for a non-private phase)."""
        d = self.check_delta(delta)
        parts = replace_one_parts(event, self.name)
        if parts is not None:
            return self._replace_one_values(parts, d)
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


def _rdp_replace_one(releases: Phases, group: Phases, delta: float) -> dict:
    """Releases' RDP plus the weak-triangle bound of the group phases (module docstring)."""
    orders = np.asarray(_rdp.DEFAULT_ORDERS)
    rdp = _rdp.compute_rdp_history(releases, orders)
    if group:
        rdp = rdp + ((orders - 0.5) / (orders - 1.0) * _rdp.compute_rdp_history(group, 2.0 * orders)
                     + _rdp.compute_rdp_history(group, 2.0 * orders - 1.0))
    return {"rdp_epsilon": _rdp.rdp_to_epsilon(orders, rdp, delta)[0]}


def _clt_replace_one(releases: Phases, group: Phases, delta: float) -> dict:
    """Exact GDP of the releases (mu = sqrt(n) / s each) composed with twice the CLT mu of the group."""
    mu = math.sqrt(math.fsum(n / (s * s) for s, _, n in releases)
                   + (4.0 * _gdp.clt_mu_history(group) ** 2 if group else 0.0))
    return {"clt_epsilon": _gdp.gdp_epsilon(mu, delta), "clt_mu": mu}


def _pld_replace_one(releases: Phases, group: Phases, delta: float) -> dict:
    """Releases only (``groups_of_two`` is False): the Gaussian's PLD at sampling rate 1."""
    return {"pld_epsilon": _pld.pld_epsilon_history(releases, delta)}


#: Every accounting method, in report order (the order of the metric columns).
ANALYSES: dict[str, Analysis] = {a.name: a for a in (
    Analysis("rdp", "RDP (moments accountant)", ("rdp_epsilon",), True, 0.0, _rdp_values,
             "Mironov, Talwar & Zhang 2019; conversion of Balle et al. 2020",
             compute_replace_one=_rdp_replace_one, groups_of_two=True),
    Analysis("clt", "CLT (Gaussian DP)", ("clt_epsilon", "clt_mu"), False, 0.0, _clt_values,
             "Bu, Dong, Long & Su 2020 (an asymptotic approximation, not a bound)",
             compute_replace_one=_clt_replace_one, groups_of_two=True),
    Analysis("pld", "PLD (numerical upper bound)", ("pld_epsilon",), True, _pld.MIN_DELTA, _pld_values,
             "numerical privacy-loss distribution, pessimistic discretisation",
             compute_replace_one=_pld_replace_one),
)}

#: The analysis used when none is named (calibration, single-analysis reports).
DEFAULT_ANALYSIS = "rdp"

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
