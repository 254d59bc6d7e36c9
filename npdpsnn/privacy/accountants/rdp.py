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
:math:`D_\alpha(\mu_0\|\mu)` (shown in the same paper; checked numerically in
``tests/test_accountants.py``).  ``T`` steps compose additively:
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
_SERIES_CHUNK = 64
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
    if q == 1.0:
        return alphas / (2.0 * sigma * sigma)
    out = np.empty_like(alphas)
    is_int = np.array([float(a).is_integer() for a in alphas], dtype=bool)
    ints = np.flatnonzero(is_int)
    if ints.size:
        out[ints] = _log_a_int(q, sigma, alphas[ints]) / (alphas[ints] - 1.0)
    frac = np.flatnonzero(~is_int)
    if frac.size:
        log_a = _log_a_frac(q, sigma, alphas[frac])
        for pos, idx in enumerate(frac):
            a = float(alphas[idx])
            if np.isnan(log_a[pos]):  # series did not converge: bound by the next integer order
                c = math.ceil(a)  # D_a <= D_c (Rényi divergence is non-decreasing in the order)
                out[idx] = float(_log_a_int(q, sigma, np.array([float(c)]))[0]) / (c - 1.0)
            else:
                out[idx] = max(0.0, float(log_a[pos])) / (a - 1.0)
    return out


def _log_expm1(x: np.ndarray) -> np.ndarray:
    """log(exp(x) - 1) for x > 0 without overflow."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        small = np.log(np.expm1(np.minimum(x, 50.0)))
    large = x + np.log1p(-np.exp(-np.maximum(x, 50.0)))
    return np.where(x > 50.0, large, small)


def _log_a_int(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """log A_alpha for integer orders >= 2 and 0 < q < 1 (exact binomial sum, vectorised)."""
    a = np.asarray(alphas, dtype=np.float64)[:, None]
    k = np.arange(2, int(a.max()) + 1, dtype=np.float64)[None, :]
    valid = k <= a
    kk = np.where(valid, k, 2.0)
    log_binom = special.gammaln(a + 1.0) - special.gammaln(kk + 1.0) - special.gammaln(a - kk + 1.0)
    log_terms = (
        log_binom
        + (a - kk) * math.log1p(-q)
        + kk * math.log(q)
        + _log_expm1((kk * kk - kk) / (2.0 * sigma * sigma))
    )
    log_terms = np.where(valid, log_terms, -np.inf)
    log_a_minus_1 = special.logsumexp(log_terms, axis=1)
    return np.logaddexp(0.0, log_a_minus_1)


def _log_a_frac(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """log A_alpha for fractional orders > 1 and 0 < q < 1 (two-series formula).

    Vectorised over the orders; NaN where the series has not converged within
    the term budget.
    """
    log_q = math.log(q)
    log_1mq = math.log1p(-q)
    z0 = sigma * sigma * (log_1mq - log_q) + 0.5
    two_s2 = 2.0 * sigma * sigma
    a = np.asarray(alphas, dtype=np.float64)[:, None]
    lg_a1 = special.gammaln(a + 1.0)

    n_ord = a.shape[0]
    peak = np.full(n_ord, -np.inf)  # running max of the log terms (for scaling)
    total = np.zeros(n_ord)  # signed sum, scaled by exp(-peak)
    mag = np.zeros(n_ord)  # sum of magnitudes, same scale
    count = np.zeros(n_ord)
    tail = np.zeros(n_ord)  # log of the last term of either series
    active = np.ones(n_ord, dtype=bool)
    start = 0
    chunk = _SERIES_CHUNK
    while start < _SERIES_MAX_TERMS and active.any():
        rows = np.flatnonzero(active)
        i = np.arange(start, start + chunk, dtype=np.float64)[None, :]
        ar = a[rows]
        j = ar - i
        log_binom = lg_a1[rows] - special.gammaln(i + 1.0) - special.gammaln(j + 1.0)
        sign = special.gammasgn(j + 1.0)
        s0 = log_binom + i * log_q + j * log_1mq + (i * i - i) / two_s2 + special.log_ndtr((z0 - i) / sigma)
        s1 = log_binom + j * log_q + i * log_1mq + (j * j - j) / two_s2 + special.log_ndtr((j - z0) / sigma)
        chunk_max = np.maximum(s0.max(axis=1), s1.max(axis=1))
        new_peak = np.maximum(peak[rows], chunk_max)
        rescale = np.exp(peak[rows] - new_peak)
        e0 = np.exp(s0 - new_peak[:, None])
        e1 = np.exp(s1 - new_peak[:, None])
        total[rows] = total[rows] * rescale + np.sum(sign * (e0 + e1), axis=1)
        mag[rows] = mag[rows] * rescale + np.sum(e0 + e1, axis=1)
        peak[rows] = new_peak
        count[rows] += 2 * chunk
        # For i > alpha both series alternate in sign with magnitudes that
        # decrease in i, so each remainder is below its last term; stop once
        # that is negligible: below exp(cutoff) (A_alpha >= 1) or below 1e-8
        # of the current log A_alpha (the remainder is added as slack below).
        last = np.maximum(s0[:, -1], s1[:, -1])
        tail[rows] = last
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a_now = new_peak + np.log(np.maximum(total[rows], 1e-300))
        rel = np.log(1e-8 * np.abs(log_a_now) + 1e-300)
        done = (i[0, -1] > ar[:, 0] + 1) & (last < np.maximum(_SERIES_CUTOFF, rel))
        active[rows[done]] = False
        start += chunk
        chunk = min(2 * chunk, 1 << 14)  # slowly converging series get longer chunks
    # Round upwards: floating-point error of the signed sum (a few ulp of the
    # sum of magnitudes per term) plus the two truncated tails (each below its
    # last term).
    slack = 4.0 * np.finfo(np.float64).eps * mag * np.sqrt(np.maximum(count, 1.0))
    slack += 2.0 * np.exp(tail - peak)
    upper = total + slack
    with np.errstate(divide="ignore", invalid="ignore"):
        out = peak + np.log(upper)
    out[active | ~(upper > 0)] = np.nan
    return out
