r"""Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism.

Mechanism: each step includes every record independently with probability
``q`` (Poisson sampling), sums the clipped per-example gradients (L2
sensitivity 1 after dividing by the clipping norm) and adds ``N(0, sigma^2)``
noise.  With :math:`\mu_0 = N(0,\sigma^2)`, :math:`\mu_1 = N(1,\sigma^2)` and
:math:`\mu = (1-q)\mu_0 + q\mu_1`, the RDP of order :math:`\alpha` of one step is
(Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled
Gaussian Mechanism", arXiv:1908.10530, Sec. 3.3)

.. math::

    \varepsilon_{RDP}(\alpha) = \frac{\log A_\alpha}{\alpha - 1},\qquad
    A_\alpha = \mathbb{E}_{z\sim\mu_0}\left[\left(\frac{\mu(z)}{\mu_0(z)}\right)^\alpha\right]
             = D\text{-moment of } \mu \text{ w.r.t. } \mu_0 ,

which is the larger of the two directions :math:`D_\alpha(\mu\|\mu_0)` and
:math:`D_\alpha(\mu_0\|\mu)` (Mironov et al. 2019, Thm. 5; checked numerically
in ``tests/test_accountants.py``).  ``T`` steps compose additively:
:math:`T\,\varepsilon_{RDP}(\alpha)`.

The conversion to :math:`(\varepsilon,\delta)`-DP uses the improved bound of
Balle et al. 2020 (Thm. 21) / Canonne, Kamath & Steinke 2020 (Prop. 12)

.. math::

    \varepsilon = \min_\alpha\; T\varepsilon_{RDP}(\alpha)
        + \log\frac{\alpha-1}{\alpha} - \frac{\log\delta + \log\alpha}{\alpha-1}.

All arithmetic is float64 in log space; nothing here is JIT compiled.

This module also holds the small argument checks shared by the other
accountant modules (``_check_*``).
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable, Sequence

import numpy as np
from scipy import special

from npdpsnn.errors import UserError

__all__ = [
    "DEFAULT_ORDERS",
    "compute_rdp",
    "compute_rdp_history",
    "rdp_to_epsilon",
    "rdp_epsilon",
]

#: Rényi orders searched by default (those of Opacus plus a few large ones
#: that matter for tiny epsilon / delta).
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [1.0 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(12, 64)] + [128.0, 256.0]
)

# Terms of the fractional-order series below exp(_SERIES_CUTOFF) (relative to
# A_alpha >= 1) are dropped; the tail of the alternating series is bounded by
# its first omitted term.
_SERIES_CUTOFF = -40.0
_SERIES_CHUNK = 512
_SERIES_MAX_TERMS = 400_000


# --------------------------------------------------------------------------
# Argument checks shared by rdp / gdp / pld / accountant / calibration.
# --------------------------------------------------------------------------


def _real(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise UserError(f"{name} must be a real number, got {x!r}")
    x = float(x)
    if math.isnan(x):
        raise UserError(f"{name} must not be NaN")
    return x


def _check_sample_rate(q) -> float:
    q = _real(q, "sample rate")
    if not (0.0 < q <= 1.0):
        raise UserError(f"sample rate must be in (0, 1], got {q!r}")
    return q


def _check_sigma(sigma) -> float:
    sigma = _real(sigma, "noise multiplier (sigma)")
    if not (sigma > 0.0 and math.isfinite(sigma)):
        raise UserError(f"noise multiplier (sigma) must be a finite number > 0, got {sigma!r}")
    return sigma


def _check_steps(steps, *, allow_zero: bool = False) -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Real):
        raise UserError(f"steps must be an integer, got {steps!r}")
    if isinstance(steps, numbers.Integral):
        n = int(steps)
    else:
        f = float(steps)
        if not (math.isfinite(f) and f.is_integer()):
            raise UserError(f"steps must be an integer, got {steps!r}")
        n = int(f)
    lo = 0 if allow_zero else 1
    if n < lo:
        raise UserError(f"steps must be an integer >= {lo}, got {steps!r}")
    return n


def _check_delta(delta) -> float:
    delta = _real(delta, "delta")
    if not (0.0 < delta < 1.0):
        raise UserError(f"delta must be in (0, 1), got {delta!r}")
    return delta


def _check_epsilon(eps, name: str = "epsilon") -> float:
    eps = _real(eps, name)
    if not (eps >= 0.0 and math.isfinite(eps)):
        raise UserError(f"{name} must be a finite number >= 0, got {eps!r}")
    return eps


def _check_orders(orders) -> np.ndarray:
    try:
        arr = np.asarray(orders, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError("orders must be a sequence of numbers > 1") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 1.0):
        raise UserError("orders must be a non-empty sequence of finite numbers > 1")
    return arr


def _check_history(history) -> list[tuple[float, float, int]]:
    """A history is an iterable of ``(sigma, sample_rate, steps)`` triples."""
    out = []
    try:
        items = list(history)
    except TypeError:
        raise UserError("history must be a list of (sigma, sample_rate, steps) triples") from None
    for item in items:
        try:
            sigma, q, steps = item
        except (TypeError, ValueError):
            raise UserError(
                f"history entries must be (sigma, sample_rate, steps) triples, got {item!r}"
            ) from None
        out.append((_check_sigma(sigma), _check_sample_rate(q), _check_steps(steps, allow_zero=True)))
    return out


# --------------------------------------------------------------------------
# Public analysis functions.
# --------------------------------------------------------------------------


def compute_rdp(
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    orders: Iterable[float] = DEFAULT_ORDERS,
) -> np.ndarray:
    r"""RDP :math:`T\,\varepsilon_{RDP}(\alpha)` of ``steps`` Poisson-subsampled Gaussian steps.

    Integer orders use the exact binomial expansion (Mironov et al. 2019, Sec. 3.3)

    .. math::

        A_\alpha = \sum_{k=0}^{\alpha}\binom{\alpha}{k}(1-q)^{\alpha-k}q^k
                   e^{(k^2-k)/(2\sigma^2)}
                 = 1 + \sum_{k=2}^{\alpha}\binom{\alpha}{k}(1-q)^{\alpha-k}q^k
                   \left(e^{(k^2-k)/(2\sigma^2)}-1\right),

    evaluated in log space with positive terms only (so :math:`\log A_\alpha` is
    accurate even when it is tiny).  Fractional orders use the two-series
    formula of the same section, with :math:`z_0=\sigma^2\log(1/q-1)+1/2`,

    .. math::

        A_\alpha = \sum_{i\ge 0}\binom{\alpha}{i}\Big[(1-q)^{\alpha-i}q^i
                   e^{(i^2-i)/(2\sigma^2)}\,\Phi\!\big(\tfrac{z_0-i}{\sigma}\big)
                 + q^{\alpha-i}(1-q)^i e^{(j^2-j)/(2\sigma^2)}\,
                   \Phi\!\big(\tfrac{j-z_0}{\sigma}\big)\Big],\quad j=\alpha-i.

    Should the series not converge within its term budget, the value of the
    next integer order is used, which is an upper bound because Rényi
    divergences are non-decreasing in the order.  ``q = 1`` is the plain
    Gaussian mechanism, :math:`\alpha/(2\sigma^2)`.

    Returns a float64 array of the same length as ``orders``.
    """
    q = _check_sample_rate(sample_rate)
    sigma = _check_sigma(noise_multiplier)
    n = _check_steps(steps, allow_zero=True)
    alphas = _check_orders(orders)
    return n * _rdp_single(q, sigma, alphas)


def compute_rdp_history(history, orders: Iterable[float] = DEFAULT_ORDERS) -> np.ndarray:
    """Sum of :func:`compute_rdp` over ``(sigma, sample_rate, steps)`` triples (RDP composes additively)."""
    hist = _check_history(history)
    alphas = _check_orders(orders)
    total = np.zeros_like(alphas)
    for sigma, q, n in hist:
        if n:
            total = total + n * _rdp_single(q, sigma, alphas)
    return total


def rdp_to_epsilon(orders: Sequence[float], rdp: Sequence[float], delta: float) -> tuple[float, float]:
    r"""Convert an RDP curve to :math:`(\varepsilon, \delta)`-DP; returns ``(epsilon, best_order)``.

    Uses :math:`\varepsilon(\alpha) = \rho_\alpha + \log\frac{\alpha-1}{\alpha}
    - \frac{\log\delta+\log\alpha}{\alpha-1}` (Balle et al. 2020, "Hypothesis
    testing interpretations and Rényi differential privacy", Thm. 21;
    Canonne, Kamath & Steinke 2020, Prop. 12) minimised over the orders.  A
    negative minimum means the guarantee holds at epsilon 0 and is reported as
    0.  An infinite (or NaN) RDP value never wins; if every order is infinite
    the result is ``(inf, nan)``.
    """
    alphas = _check_orders(orders)
    try:
        rho = np.asarray(rdp, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError("rdp must be a sequence of numbers") from None
    if rho.shape != alphas.shape:
        raise UserError(f"orders and rdp must have the same length ({alphas.size} != {rho.size})")
    if np.any(rho < 0):
        raise UserError("rdp values must be >= 0")
    d = _check_delta(delta)
    return _rdp_to_epsilon(alphas, rho, d)


def rdp_epsilon(
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    orders: Iterable[float] = DEFAULT_ORDERS,
) -> float:
    """Epsilon of ``steps`` Poisson-subsampled Gaussian steps via RDP (see :func:`compute_rdp`)."""
    alphas = _check_orders(orders)
    rdp = compute_rdp(sample_rate, noise_multiplier, _check_steps(steps), alphas)
    return rdp_to_epsilon(alphas, rdp, delta)[0]


# --------------------------------------------------------------------------
# Private helpers (arguments already validated).
# --------------------------------------------------------------------------


def _rdp_to_epsilon(alphas: np.ndarray, rho: np.ndarray, delta: float) -> tuple[float, float]:
    with np.errstate(invalid="ignore", over="ignore"):
        eps = rho + np.log1p(-1.0 / alphas) - (math.log(delta) + np.log(alphas)) / (alphas - 1.0)
    eps = np.where(np.isfinite(eps), eps, np.inf)
    i = int(np.argmin(eps))
    if not np.isfinite(eps[i]):
        return math.inf, math.nan
    return max(0.0, float(eps[i])), float(alphas[i])


def _rdp_single(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """RDP of one step at each order (float64 array)."""
    out = np.empty_like(alphas)
    for idx, a in enumerate(alphas):
        if q == 1.0:
            out[idx] = a / (2.0 * sigma * sigma)
        elif float(a).is_integer():
            out[idx] = _log_a_int(q, sigma, int(a)) / (a - 1.0)
        else:
            log_a = _log_a_frac(q, sigma, float(a))
            if log_a is None:  # series did not converge: bound by the next integer order
                log_a = _log_a_int(q, sigma, math.ceil(a)) * (a - 1.0) / (math.ceil(a) - 1.0)
                # D_a <= D_ceil(a)  <=>  log A_a/(a-1) <= log A_c/(c-1)
            out[idx] = max(0.0, log_a) / (a - 1.0)
    return out


def _log_expm1(x: np.ndarray) -> np.ndarray:
    """log(exp(x) - 1) for x > 0 without overflow."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        small = np.log(np.expm1(np.minimum(x, 50.0)))
    large = x + np.log1p(-np.exp(-np.maximum(x, 50.0)))
    return np.where(x > 50.0, large, small)


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    """log A_alpha for an integer order >= 2 and 0 < q < 1 (exact binomial sum)."""
    k = np.arange(2, alpha + 1, dtype=np.float64)
    log_binom = special.gammaln(alpha + 1.0) - special.gammaln(k + 1.0) - special.gammaln(alpha - k + 1.0)
    log_terms = (
        log_binom
        + (alpha - k) * math.log1p(-q)
        + k * math.log(q)
        + _log_expm1((k * k - k) / (2.0 * sigma * sigma))
    )
    log_a_minus_1 = special.logsumexp(log_terms)
    return float(np.logaddexp(0.0, log_a_minus_1))


def _log_a_frac(q: float, sigma: float, alpha: float) -> float | None:
    """log A_alpha for a fractional order > 1 and 0 < q < 1 (two-series formula).

    Returns None if the series has not converged within the term budget.
    """
    log_q = math.log(q)
    log_1mq = math.log1p(-q)
    z0 = sigma * sigma * (log_1mq - log_q) + 0.5
    two_s2 = 2.0 * sigma * sigma
    lg_a1 = special.gammaln(alpha + 1.0)

    logs: list[np.ndarray] = []
    signs: list[np.ndarray] = []
    start = 0
    converged = False
    while start < _SERIES_MAX_TERMS:
        i = np.arange(start, start + _SERIES_CHUNK, dtype=np.float64)
        j = alpha - i
        log_binom = lg_a1 - special.gammaln(i + 1.0) - special.gammaln(j + 1.0)
        sign = special.gammasgn(j + 1.0)
        s0 = log_binom + i * log_q + j * log_1mq + (i * i - i) / two_s2 + special.log_ndtr((z0 - i) / sigma)
        s1 = log_binom + j * log_q + i * log_1mq + (j * j - j) / two_s2 + special.log_ndtr((j - z0) / sigma)
        logs.extend((s0, s1))
        signs.extend((sign, sign))
        start += _SERIES_CHUNK
        # For i > alpha both series alternate in sign with magnitudes that
        # decrease in i, so the remainder is below the last term; stop once it
        # is negligible relative to A_alpha >= 1.
        if i[-1] > alpha + 1 and max(s0[-1], s1[-1]) < _SERIES_CUTOFF:
            converged = True
            break
    if not converged:
        return None
    all_logs = np.concatenate(logs)
    all_signs = np.concatenate(signs)
    m = float(np.max(all_logs))
    scaled = np.exp(all_logs - m)
    total = float(np.sum(all_signs * scaled))
    # Round upwards: floating-point error of the signed sum (a few ulp of the
    # sum of magnitudes per term) plus the truncated tail (< exp(cutoff)).
    slack = 4.0 * np.finfo(np.float64).eps * float(np.sum(scaled)) * math.sqrt(all_logs.size)
    slack += math.exp(_SERIES_CUTOFF - m)
    total += slack
    if total <= 0.0:
        return None
    return m + math.log(total)
