r"""The f-DP refinement of the one-run audit (Mahloujifar, Melis & Chaudhuri, ICML 2025).

Source: S. Mahloujifar, L. Melis, K. Chaudhuri, "Auditing f-Differential Privacy
in One Run", ICML 2025, arXiv:2410.22235; the Gaussian case as in
google-deepmind/jax_privacy ``auditing.py`` (read, not copied).

Same game as :mod:`.one_run` (``m`` canaries, fair inclusion coins, ``k``
non-abstaining guesses of which ``v`` are right), but the null hypothesis is a
whole trade-off curve: training is :math:`f_\mu`-DP for the Gaussian curve
:math:`f_\mu(x) = \Phi(\Phi^{-1}(1 - x) - \mu)` (mu-GDP).  Its inverse "blow-up"
:math:`g_\mu(x) = \Phi(\Phi^{-1}(x) - \mu)` is the least probability an event can
have on one side when it has probability ``x`` on the other.

The test at level ``alpha`` (the paper's recursive bound with a cap at 1):

.. math::

    r \leftarrow \alpha v / m, \quad h \leftarrow \alpha (k - v) / m; \qquad
    \text{for } i = v-1, \dots, 0:\
    h' = \max(h, g_\mu(r)),\ \text{stop if } h' = h,\
    r \leftarrow \min\!\big(1,\ r + \tfrac{i}{k - i}(h' - h)\big),\ h \leftarrow h'

and reject when :math:`r + h > k/m`.  Informally, ``r`` and ``h`` accumulate the
least "right guess" and "wrong guess" probability mass per canary that an event
of probability ``alpha`` with ``v`` right guesses forces under
:math:`f_\mu`-DP; if that already exceeds the ``k/m`` guesses actually made, the
hypothesis is rejected.

To report an epsilon, mu is tied to (eps, delta) by the Gaussian mechanism that
is exactly (eps, delta)-DP, :math:`\mu(\varepsilon, \delta)` of
:func:`npdpsnn.audit.gdp_tradeoff.gdp_mu`, and the bound is the largest eps whose
:math:`\mu(\varepsilon,\delta)`-GDP is rejected.  **What this guarantees**: with
probability ``>= 1 - alpha`` the training algorithm is not mu-GDP for any
:math:`\mu \le \mu(\varepsilon_{lb}, \delta)`.  It is a lower bound on epsilon
*for mechanisms whose privacy curve is Gaussian* (the Gaussian mechanism; DP-SGD
is close to it by the CLT of Bu et al.); for an arbitrary (eps, delta)-DP
mechanism only the bound of :mod:`.one_run` is a lower bound on epsilon.
"""

from __future__ import annotations

from npdpsnn.audit._checks import check_alpha, check_delta
from npdpsnn.audit._search import largest_rejected
from npdpsnn.audit.gdp_tradeoff import _check_mu, _gdp_mu, _shift_scalar
from npdpsnn.audit.one_run import _check_counts
from npdpsnn.errors import UserError

__all__ = ["fdp_epsilon", "fdp_rejects"]


def fdp_rejects(m: int, n_guesses: int, n_correct: int, mu: float, alpha: float = 0.05) -> bool:
    r"""Whether ``n_correct`` right of ``n_guesses`` among ``m`` canaries rejects mu-GDP at level ``alpha``."""
    m, k, v = _check_counts(m, n_guesses, n_correct)
    return _rejects(m, k, v, _check_mu(mu), check_alpha(alpha))


def fdp_epsilon(m: int, n_guesses: int, n_correct: int, alpha: float = 0.05, delta: float = 1e-5) -> float:
    r"""Largest eps whose :math:`\mu(\varepsilon, \delta)`-GDP the f-DP test rejects at level ``alpha``.

    Doubling then bisection to 1e-10, always returning a rejected epsilon (0 when
    none is).  ``delta`` must be > 0 (with delta = 0, mu(eps, 0) = 0 for every eps).
    See the module docstring for what the bound means.
    """
    m, k, v = _check_counts(m, n_guesses, n_correct)
    d = check_delta(delta)
    if d == 0.0:
        raise UserError("the f-DP audit needs delta > 0 (mu(eps, 0) = 0 for every eps)")
    return _epsilon(m, k, v, check_alpha(alpha), d)


# --------------------------------------------------------------------------


def _rejects(m: int, k: int, v: int, mu: float, alpha: float) -> bool:
    r = alpha * v / m
    h = alpha * (k - v) / m
    for i in range(v - 1, -1, -1):
        h_new = _shift_scalar(r, -mu)
        if h_new <= h:
            break
        r = min(1.0, r + i / (k - i) * (h_new - h))
        h = h_new
    return r + h > k / m


def _epsilon(m: int, k: int, v: int, alpha: float, delta: float, lo: float = 0.0) -> float:
    return largest_rejected(lambda e: _rejects(m, k, v, _gdp_mu(e, delta), alpha), lo)

