"""Noise calibration: the smallest noise multiplier that meets a target epsilon.

Every accountant's epsilon decreases as ``sigma`` grows, so the answer is found
by bracketing and root finding on ``log eps(sigma) - log target`` in
``log sigma``; the upper end of the final bracket is rounded *up* to 4
significant digits and re-checked, so the returned ``sigma`` always satisfies
``eps(sigma) <= target`` exactly as computed, and ``sigma * (1 - 1e-3)`` no
longer does (minimal to 3 significant digits).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants.analyses import DEFAULT_ANALYSIS, get_analysis
from npdpsnn.privacy.accountants.rdp import _check_delta, _check_sample_rate, _check_steps, _real
from npdpsnn.privacy.events import DpEvent, GaussianEvent, PoissonSampledEvent, SelfComposedEvent

__all__ = ["calibrate_noise", "calibrate_sigma"]

_SIGMA_MIN = 0.05
_SIGMA_MAX = 1e4


def calibrate_noise(target_epsilon: float, event_of_sigma: Callable[[float], DpEvent], delta: float,
                    accountant: str = DEFAULT_ANALYSIS) -> float:
    """Smallest sigma (4 significant digits, rounded up) with
    ``eps(event_of_sigma(sigma)) <= target_epsilon`` by the analysis ``accountant``.

    ``event_of_sigma`` builds the whole run's privacy event for a noise
    multiplier (e.g. ``lambda s: scheme.training_event(s, epochs)``).  Raises
    :class:`UserError` for bad arguments, for an event the analysis cannot
    account, and for targets no sigma in ``[0.05, 1e4]`` reaches or that every
    sigma down to 0.05 already meets.
    """
    target = _real(target_epsilon, "target epsilon")
    if not (target > 0.0 and math.isfinite(target)):
        raise UserError(f"target epsilon must be a finite number > 0, got {target_epsilon!r}")
    analysis = get_analysis(accountant)
    d = analysis.check_delta(delta)
    return _calibrate(lambda s: analysis.epsilon(event_of_sigma(s), d), target, analysis.name)


def calibrate_sigma(
    target_epsilon: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = DEFAULT_ANALYSIS,
) -> float:
    """:func:`calibrate_noise` for ``steps`` Poisson-subsampled Gaussian steps at rate ``sample_rate``."""
    q = _check_sample_rate(sample_rate)
    n = _check_steps(steps)
    _check_delta(delta)
    return calibrate_noise(target_epsilon, lambda s: SelfComposedEvent(PoissonSampledEvent(q, GaussianEvent(s)), n),
                           delta, accountant)


def _calibrate(eps_of, target: float, name: str) -> float:
    cache: dict[float, float] = {}

    def eps(sigma: float) -> float:
        if sigma not in cache:
            cache[sigma] = eps_of(sigma)
        return cache[sigma]

    # Bracket: eps(lo) > target >= eps(hi).
    hi = 1.0
    while eps(hi) > target:
        hi *= 4.0
        if hi > _SIGMA_MAX:
            raise UserError(
                f"target epsilon {target:g} is not reachable with the {name} accountant "
                f"(epsilon at sigma={_SIGMA_MAX:g} is {eps_of(_SIGMA_MAX):.4g})"
            )
    lo = hi / 4.0
    while eps(lo) <= target:
        hi = lo
        lo /= 4.0
        if lo < _SIGMA_MIN:
            if eps(_SIGMA_MIN) <= target:
                raise UserError(
                    f"target epsilon {target:g} is met by every sigma >= {_SIGMA_MIN:g} "
                    f"with the {name} accountant; nothing to calibrate"
                )
            lo = _SIGMA_MIN

    # Illinois (modified regula falsi) on g(log sigma) = log eps - log target,
    # keeping the bracket g(lo) > 0 >= g(hi); stop at a relative width of 1e-7.
    def g(sigma: float) -> float:
        e = eps(sigma)
        return (math.log(e) if e > 0 else -745.0) - math.log(target)

    a, b = math.log(lo), math.log(hi)
    ga, gb = g(lo), g(hi)
    side = 0
    for _ in range(200):
        if b - a < 1e-7:
            break
        if math.isfinite(ga) and math.isfinite(gb) and ga != gb:
            c = b - gb * (b - a) / (gb - ga)
        else:
            c = 0.5 * (a + b)
        # keep the new point well inside the bracket
        c = min(max(c, a + 0.01 * (b - a)), b - 0.01 * (b - a))
        gc = g(math.exp(c))
        if gc > 0:
            a, ga = c, gc
            if side == -1:
                gb *= 0.5
            side = -1
        else:
            b, gb = c, gc
            if side == 1:
                ga *= 0.5
            side = 1
    upper = math.exp(b)
    if eps(upper) > target:  # cannot happen for a monotone eps; stay safe
        upper = hi
    return _round_up_checked(upper, eps, target)


def _round_up_checked(sigma: float, eps, target: float) -> float:
    """Round ``sigma`` up to 4 significant digits, bumping it until ``eps <= target``."""
    e = math.floor(math.log10(sigma)) - 3
    m = math.ceil(sigma / 10.0**e - 1e-9)
    while True:
        cand = float(f"{m}e{e}")
        if cand >= sigma and eps(cand) <= target:
            return cand
        m += 1
