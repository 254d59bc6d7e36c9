r"""Gaussian-DP accountant via the central limit theorem (CLT).

Bu, Dong, Long & Su 2020, "Deep Learning with Gaussian Differential Privacy"
(Harvard Data Science Review; arXiv:1911.11607): ``T`` steps
of DP-SGD with Poisson sampling rate ``q`` and noise multiplier ``sigma`` are
asymptotically :math:`\mu`-GDP with

.. math::

    \mu = q\sqrt{T\,(e^{1/\sigma^2} - 1)} ,

(the Poisson-sampling version, as ``compute_mu_poisson`` in Opacus /
TF-Privacy).  A :math:`\mu`-GDP mechanism is :math:`(\varepsilon,\delta(\varepsilon))`-DP
for every :math:`\varepsilon \ge 0` with (Dong, Roth & Su 2022, "Gaussian differential privacy")

.. math::

    \delta(\varepsilon) = \Phi\!\left(-\frac{\varepsilon}{\mu} + \frac{\mu}{2}\right)
        - e^{\varepsilon}\,\Phi\!\left(-\frac{\varepsilon}{\mu} - \frac{\mu}{2}\right).

Note the CLT is an asymptotic statement, not a bound: for finite ``T`` it can
under-estimate the true epsilon (see the PLD accountant for a certified upper
bound).  For a history of different ``(sigma, q, T_i)`` the CLT composes the
per-phase parameters as :math:`\mu = \sqrt{\sum_i \mu_i^2}` (composition of
GDP mechanisms, Dong, Roth & Su 2022, applied to the CLT limits; it equals the
CLT of the whole sequence, whose :math:`\mu^2` is the sum of the per-step terms).
"""

from __future__ import annotations

import math

from scipy import special

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants.rdp import (
    _check_delta,
    _check_epsilon,
    _check_history,
    _check_sample_rate,
    _check_sigma,
    _check_steps,
    _real,
)

__all__ = ["clt_mu", "clt_mu_history", "gdp_delta", "gdp_epsilon", "clt_epsilon"]


def clt_mu(sample_rate: float, noise_multiplier: float, steps: int) -> float:
    r"""CLT :math:`\mu = q\sqrt{T(e^{1/\sigma^2}-1)}` (Bu et al. 2020, Poisson sampling).

    Returns ``inf`` when :math:`e^{1/\sigma^2}` overflows.
    """
    q = _check_sample_rate(sample_rate)
    sigma = _check_sigma(noise_multiplier)
    n = _check_steps(steps, allow_zero=True)
    return _mu(q, sigma, n)


def clt_mu_history(history) -> float:
    r""":math:`\sqrt{\sum_i \mu_i^2}` over ``(sigma, sample_rate, steps)`` triples."""
    hist = _check_history(history)
    return math.sqrt(math.fsum(_mu(q, s, n) ** 2 for s, q, n in hist))


def gdp_delta(mu: float, epsilon: float) -> float:
    r""":math:`\delta(\varepsilon)` of a :math:`\mu`-GDP mechanism (see module docstring)."""
    mu = _check_mu(mu)
    eps = _check_epsilon(epsilon)
    return _delta(mu, eps)


def gdp_epsilon(mu: float, delta: float) -> float:
    r"""Smallest :math:`\varepsilon \ge 0` with :math:`\delta_\mu(\varepsilon) \le \delta`.

    Solved by bisection in float64 down to the last few ulps, always keeping
    the upper end where ``gdp_delta(mu, eps) <= delta`` holds as computed, and
    returning that end (so the answer is never below the root).  ``mu = inf``
    gives ``inf``.
    """
    mu = _check_mu(mu)
    d = _check_delta(delta)
    return _epsilon(mu, d)


def clt_epsilon(sample_rate: float, noise_multiplier: float, steps: int, delta: float) -> float:
    """CLT epsilon: :func:`gdp_epsilon` of :func:`clt_mu`."""
    mu = clt_mu(sample_rate, noise_multiplier, _check_steps(steps))
    return gdp_epsilon(mu, _check_delta(delta))


# --------------------------------------------------------------------------


def _check_mu(mu) -> float:
    mu = _real(mu, "mu")
    if not (mu >= 0.0):
        raise UserError(f"mu must be >= 0, got {mu!r}")
    return mu


def _mu(q: float, sigma: float, n: int) -> float:
    s2 = sigma * sigma
    if s2 < 1.0 / 700.0:  # exp(1/sigma^2) overflows (or sigma^2 underflows): no privacy left to report
        return math.inf if n > 0 else 0.0
    x = 1.0 / s2
    if x > 700.0:
        return math.inf if n > 0 else 0.0
    return q * math.sqrt(n * math.expm1(x))


def _delta(mu: float, eps: float) -> float:
    if mu == 0.0:
        return 0.0
    if math.isinf(mu):
        return 1.0
    a = -eps / mu + mu / 2.0
    b = -eps / mu - mu / 2.0
    log_pa = float(special.log_ndtr(a))
    log_pb = float(special.log_ndtr(b))
    # Phi(a) - e^eps Phi(b) = Phi(a) * (1 - exp(eps + log Phi(b) - log Phi(a)))
    r = eps + log_pb - log_pa
    if r >= 0.0:  # only possible through rounding when delta is ~0
        return 0.0
    return math.exp(log_pa) * -math.expm1(r)


def _epsilon(mu: float, delta: float) -> float:
    """Bisection keeping delta(hi) <= delta < delta(lo); returns hi."""
    if math.isinf(mu):
        return math.inf
    if _delta(mu, 0.0) <= delta:
        return 0.0
    lo, hi = 0.0, max(1.0, mu)
    while _delta(mu, hi) > delta:
        lo, hi = hi, 2.0 * hi
        if hi > 1e12:
            return math.inf
    while hi - lo > 4e-16 * hi + 1e-300:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _delta(mu, mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi
