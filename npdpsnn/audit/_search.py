"""The largest epsilon a test rejects: doubling, then bisection in float64.

Both one-run tests (:mod:`.one_run`, :mod:`.one_run_fdp`) reject the claim
"the mechanism is (eps, delta)-DP" for every eps up to some value and accept it
beyond.  :func:`largest_rejected` finds that value.  The bisection keeps the
invariant ``rejects(lo)`` and returns ``lo``, so the answer is always an epsilon
at which the test was actually evaluated and rejected -- a valid lower bound
even if the rejection region were not an interval.  (Rejecting (eps, delta)-DP
also rejects (eps', delta)-DP for every eps' < eps, which is a subset.)
"""

from __future__ import annotations

from collections.abc import Callable

# Far beyond any bound m <= 10^9 canaries can give (ln(r) ~ 21); reaching it means
# the test is broken, not that the leak is large.
_EPS_CAP = 1e4


def largest_rejected(rejects: Callable[[float], bool], lo: float = 0.0, xtol: float = 1e-10) -> float:
    """Largest ``eps >= lo`` with ``rejects(eps)``, to ``xtol``; ``lo`` if ``rejects(lo)`` fails.

    ``lo`` must be >= 0.  Returns a value ``e`` with ``rejects(e)`` true (or ``lo``)
    and ``rejects(e + d)`` false for some ``0 < d <= xtol``.
    """
    if not rejects(lo):
        return lo
    hi = max(1.0, 2.0 * lo)
    while rejects(hi):
        lo, hi = hi, 2.0 * hi
        if hi > _EPS_CAP:
            raise RuntimeError(f"the test rejects every epsilon up to {lo:g}; it cannot be right")
    while hi - lo > xtol:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if rejects(mid):
            lo = mid
        else:
            hi = mid
    return lo
