r"""The one-run audit's p-value and epsilon lower bound (Steinke, Nasr & Jagielski 2023).

Source: T. Steinke, M. Nasr, M. Jagielski, "Privacy Auditing with One (1)
Training Run", NeurIPS 2023, arXiv:2305.08846.

Setting.  ``m`` canaries; canary ``i`` is put into the training set when an
independent fair coin ``S_i`` in {-1, +1} says +1.  After one training run the
auditor guesses ``T_i`` in {-1, 0, +1} for every canary (0 = abstain), makes
``r`` non-abstaining guesses and gets ``v`` of them right (``T_i = S_i``).

Null hypothesis: the training algorithm is (eps, delta)-DP.  With

.. math::

    q = \frac{e^\varepsilon}{1 + e^\varepsilon}, \qquad
    \beta = \Pr[\mathrm{Bin}(r, q) \ge v], \qquad
    a = \max_{1 \le i \le v} \frac{\Pr[v - i \le \mathrm{Bin}(r, q) < v]}{i},

the probability of ``v`` or more correct guesses is at most

.. math::

    p(\varepsilon) = \min\{1,\ \beta + 2 m \delta\, a\}

(the paper's main theorem; ``q`` is the accuracy of eps-DP randomized response,
``2 m delta a`` what delta can add).  The audit rejects (eps, delta)-DP at level
``alpha`` when ``p(eps) <= alpha``; the epsilon lower bound at confidence
``1 - alpha`` is the largest eps it rejects (:func:`one_run_epsilon`).

Numerics (float64): ``beta`` from SciPy's binomial survival function
(``special.bdtrc``); ``a`` as the largest running mean of the binomial pmf
(from log-gamma) going down from ``v - 1``,
computed on a window around the mode and widened to the full range whenever the
window could hide the maximum (the pmf is unimodal, so once below the mode and
below the running mean it can never raise the mean again).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from npdpsnn.audit._checks import check_alpha, check_delta, check_int, check_real
from npdpsnn.audit._search import largest_rejected
from npdpsnn.errors import UserError

__all__ = ["one_run_p_value", "one_run_epsilon"]

# Half-width of the pmf window, in standard deviations of Bin(r, q).
_WINDOW_SD = 12.0


def one_run_p_value(m: int, n_guesses: int, n_correct: int, epsilon: float, delta: float = 1e-5) -> float:
    r"""p-value :math:`p(\varepsilon) = \min\{1, \beta + 2m\delta a\}` of ``n_correct`` right
    guesses out of ``n_guesses`` among ``m`` canaries, under (``epsilon``, ``delta``)-DP
    (see the module docstring; Steinke, Nasr & Jagielski 2023)."""
    m, r, v = _check_counts(m, n_guesses, n_correct)
    eps = check_real(epsilon, "epsilon", low=0.0, high=math.inf)
    return _p_value(m, r, v, eps, check_delta(delta))


def one_run_epsilon(m: int, n_guesses: int, n_correct: int, alpha: float = 0.05, delta: float = 1e-5) -> float:
    r"""Epsilon lower bound at confidence ``1 - alpha``: the largest eps with
    :math:`p(\varepsilon) \le \alpha` (0 when even eps = 0 is not rejected).

    Found by doubling then bisection to 1e-10, always returning an epsilon the
    test rejected.  No correction for a choice of guesses made after seeing the
    scores: see :mod:`npdpsnn.audit.canary_audit` for that.
    """
    m, r, v = _check_counts(m, n_guesses, n_correct)
    return _epsilon(m, r, v, check_alpha(alpha), check_delta(delta))


# --------------------------------------------------------------------------


def _check_counts(m, n_guesses, n_correct) -> tuple[int, int, int]:
    m = check_int(m, "m (number of canaries)", minimum=1)
    r = check_int(n_guesses, "n_guesses")
    v = check_int(n_correct, "n_correct")
    if not v <= r <= m:
        raise UserError(f"need n_correct <= n_guesses <= m, got {v}, {r}, {m}")
    return m, r, v


def _p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    if v == 0:
        return 1.0
    q = float(special.expit(eps))
    beta = float(special.bdtrc(v - 1, r, q))  # P[Bin(r, q) > v - 1]
    if delta == 0.0 or beta >= 1.0:
        return min(1.0, beta)
    return min(1.0, beta + 2.0 * m * delta * _max_running_mean(r, v, q))


def _max_running_mean(r: int, v: int, q: float) -> float:
    """``max_{1<=i<=v} (1/i) sum_{l=1..i} pmf(v - l)`` of Bin(r, q)."""
    mode = math.floor((r + 1) * q)
    sd = math.sqrt(r * q * (1.0 - q))
    low = max(0, min(v - 1, mode - math.ceil(_WINDOW_SD * sd) - 1))
    best, last_pmf = _window_max(r, v, q, low)
    if low > 0 and last_pmf > best:  # the window may hide the maximum: use all terms
        best, _ = _window_max(r, v, q, 0)
    return best


def _window_max(r: int, v: int, q: float, low: int) -> tuple[float, float]:
    j = np.arange(v - 1, low - 1, -1, dtype=np.float64)
    log_pmf = (special.gammaln(r + 1.0) - special.gammaln(j + 1.0) - special.gammaln(r - j + 1.0)
               + special.xlogy(j, q) + special.xlog1py(r - j, -q))
    pmf = np.exp(log_pmf)
    means = np.cumsum(pmf) / np.arange(1, pmf.size + 1)
    return float(means.max()), float(pmf[-1])


def _epsilon(m: int, r: int, v: int, alpha: float, delta: float, lo: float = 0.0) -> float:
    return largest_rejected(lambda e: _rejects(m, r, v, e, alpha, delta), lo)


def _rejects(m: int, r: int, v: int, eps: float, alpha: float, delta: float) -> bool:
    # p >= beta = p(delta = 0): when beta alone exceeds alpha, skip the delta term.
    return _p_value(m, r, v, eps, 0.0) <= alpha and (delta == 0.0 or _p_value(m, r, v, eps, delta) <= alpha)
