r"""The mu-GDP trade-off curve: membership-inference ceilings and mu(eps, delta).

Source: J. Dong, A. Roth, W. J. Su, "Gaussian Differential Privacy", JRSS-B 2022
(arXiv:1905.02383).  A mechanism is mu-GDP when telling any two neighbouring
data sets apart is no easier than telling N(0, 1) from N(mu, 1): every test
(membership attack) with false-positive rate ``FPR`` has

.. math::

    \mathrm{TPR} \le \Phi\big(\Phi^{-1}(\mathrm{FPR}) + \mu\big)
    \qquad \text{(trade-off } f_\mu(x) = \Phi(\Phi^{-1}(1 - x) - \mu)\text{)}.

Integrating that ROC gives the AUC ceiling, and maximising
:math:`(\mathrm{TPR} + 1 - \mathrm{FPR})/2` over the curve (the optimum is at
:math:`\Phi^{-1}(\mathrm{FPR}) = -\mu/2`) the balanced-accuracy ceiling:

.. math::

    \mathrm{AUC} \le \Phi(\mu/\sqrt{2}), \qquad
    \mathrm{balanced\ accuracy} \le \Phi(\mu/2).

(The AUC of N(mu, 1) against N(0, 1) is :math:`\Pr[X - Y > 0]` with
:math:`X - Y \sim N(\mu, 2)`.)  Ceilings are for the attack's *expected* TPR at a
fixed threshold; an empirical ROC on finitely many examples scatters around them.

:func:`gdp_mu` inverts the (eps, delta) profile of mu-GDP,
:math:`\delta_\mu(\varepsilon) = \Phi(-\varepsilon/\mu + \mu/2) - e^\varepsilon\Phi(-\varepsilon/\mu - \mu/2)`
(:func:`npdpsnn.privacy.accountants.gdp_delta`, its only home), in mu: it is the
largest mu with :math:`\delta_\mu(\varepsilon) \le \delta`, i.e. the Gaussian
mechanism of noise 1/mu that is exactly (eps, delta)-DP (Balle & Wang 2018,
"analytic Gaussian mechanism").
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np
from scipy import special

from npdpsnn.audit._checks import check_delta, check_real, float_array
from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants.gdp import gdp_delta

__all__ = ["gdp_auc_ceiling", "gdp_balanced_accuracy_ceiling", "gdp_tpr_ceiling", "gdp_mu"]

_STD_NORMAL = NormalDist()
_SQRT2 = math.sqrt(2.0)


def gdp_tpr_ceiling(mu: float, fpr) -> np.ndarray | float:
    r"""Largest TPR at false-positive rate ``fpr`` under mu-GDP: :math:`\Phi(\Phi^{-1}(\mathrm{FPR}) + \mu)`.

    ``fpr`` may be a scalar (a float is returned) or an array of values in [0, 1].
    """
    mu = _check_mu(mu)
    arr = float_array(fpr, "fpr")
    if ((arr < 0.0) | (arr > 1.0)).any():
        raise UserError("fpr must be in [0, 1]")
    out = _shift(arr, mu)
    return float(out) if out.ndim == 0 else out


def gdp_auc_ceiling(mu: float) -> float:
    r"""Largest AUC of any membership attack under mu-GDP: :math:`\Phi(\mu/\sqrt{2})`."""
    return float(special.ndtr(_check_mu(mu) / _SQRT2))


def gdp_balanced_accuracy_ceiling(mu: float) -> float:
    r"""Largest balanced accuracy :math:`(\mathrm{TPR} + 1 - \mathrm{FPR})/2` under mu-GDP: :math:`\Phi(\mu/2)`."""
    return float(special.ndtr(_check_mu(mu) / 2.0))


def gdp_mu(epsilon: float, delta: float) -> float:
    r"""Largest mu with :math:`\delta_\mu(\varepsilon) \le \delta` (0 when delta = 0, inf when delta = 1).

    Bisection in float64 down to the last ulps, keeping the lower end feasible.
    """
    eps = check_real(epsilon, "epsilon", low=0.0, high=math.inf, high_open=True)
    return _gdp_mu(eps, check_delta(delta))


# --------------------------------------------------------------------------


def _check_mu(mu) -> float:
    return check_real(mu, "mu", low=0.0, high=math.inf)


def _shift(x: np.ndarray, s: float) -> np.ndarray:
    """Phi(Phi^{-1}(x) + s), elementwise, with x in [0, 1]."""
    if math.isinf(s):
        return np.where(x > 0.0, 1.0, 0.0) if s > 0 else np.where(x < 1.0, 0.0, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        return special.ndtr(special.ndtri(x) + s)


def _shift_scalar(x: float, s: float) -> float:
    """Phi(Phi^{-1}(x) + s) for one float in [0, 1] (fast path for sequential loops)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if math.isinf(s):
        return 1.0 if s > 0 else 0.0
    return 0.5 * math.erfc(-(_STD_NORMAL.inv_cdf(x) + s) / _SQRT2)


@functools.lru_cache(maxsize=4096)
def _gdp_mu(eps: float, delta: float) -> float:
    if delta >= 1.0:
        return math.inf
    if delta <= 0.0:
        return 0.0
    lo, hi = 0.0, 1.0
    while gdp_delta(hi, eps) <= delta:
        lo, hi = hi, 2.0 * hi
        if hi > 1e8:
            return math.inf
    while True:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            return lo
        if gdp_delta(mid, eps) <= delta:
            lo = mid
        else:
            hi = mid
