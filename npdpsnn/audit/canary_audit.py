r"""One-run canary audits from scores: guesses, counts, and the choice of ``k``.

Input: one score per canary (higher = "more likely trained on") and its true
inclusion bit ``S_i`` (True = +1 = included).  The auditor guesses +1 for the
``k_pos`` highest scores, -1 for the ``k_neg`` lowest and abstains on the rest
(Steinke, Nasr & Jagielski 2023); ties in the score are broken by canary index,
which is independent of the coins, so the tests stay valid.  The counts
``(m, r = k_pos + k_neg, v = #right)`` then go to the one-run test
(:mod:`.one_run`, ``method="one-run"``) or its f-DP refinement
(:mod:`.one_run_fdp`, ``method="fdp"``).

**Choosing k after seeing the scores costs a union bound.**  Three entry points:

* :func:`audit_canaries` -- one ``(k_pos, k_neg)`` fixed before the scores are
  seen: level ``alpha``, no correction.
* :func:`audit_canaries_best_k` -- the best of a grid of ``(k_pos, k_neg)`` that
  depends on ``m`` only (default: :func:`default_k_grid`): every candidate is
  tested at ``alpha / len(grid)`` (Bonferroni), so with probability at least
  ``1 - alpha`` *no* candidate rejects a true hypothesis, and the reported
  maximum is a valid lower bound.
* :func:`audit_canaries_roc_hull` -- the convention of google-deepmind/jax_privacy
  (``CanaryScoreAuditor.epsilon_one_run[_fdp]`` with its default ``Bonferroni()``
  strategy), kept to reproduce published numbers: guesses are "score >= t"
  (``k_neg = 0``) for every threshold ``t`` on a vertex of the empirical ROC's
  upper convex hull, each tested at ``alpha / H`` with ``H`` the number of those
  vertices (the end points included).  ``H`` and the candidates depend on the
  scores, so this is *not* a union bound over a set fixed in advance; a strict
  one would divide by the ``m + 1`` possible thresholds, which with
  ``2 m delta >~ alpha`` drives the one-run bound to 0.  Use it to compare with
  published values, :func:`audit_canaries_best_k` to claim a bound.

Two-sided guesses (``k_neg > 0``) feed both tests through the same counts
``(r, v)``; jax_privacy exposes only ``k_neg = 0``.

All three return a :class:`CanaryAudit`; each candidate's bound is searched only
if it beats the best so far (one test at that epsilon), so the result is the
exact maximum over the candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from npdpsnn.audit import one_run, one_run_fdp
from npdpsnn.audit._checks import bool_array, check_alpha, check_delta, check_int, float_array, same_shape
from npdpsnn.audit.gdp_tradeoff import _gdp_mu
from npdpsnn.audit.roc import _roc_counts
from npdpsnn.errors import UserError

__all__ = [
    "CanaryAudit",
    "METHODS",
    "audit_canaries",
    "audit_canaries_best_k",
    "audit_canaries_roc_hull",
    "canary_guesses",
    "default_k_grid",
]

log = logging.getLogger(__name__)

METHODS = ("one-run", "fdp")


@dataclass(frozen=True)
class CanaryAudit:
    """An epsilon lower bound from one training run with canaries.

    ``epsilon`` holds at confidence ``1 - alpha`` (for ``method="fdp"`` in the sense
    of :mod:`.one_run_fdp`: the run is not ``mu``-GDP for any mu <= ``mu``).
    ``k_pos``/``k_neg``/``n_guesses``/``n_correct`` describe the guesses that gave
    it; ``n_hypotheses`` is the Bonferroni factor applied to ``alpha``.
    """

    method: str
    epsilon: float
    mu: float | None
    m: int
    k_pos: int
    k_neg: int
    n_guesses: int
    n_correct: int
    alpha: float
    delta: float
    n_hypotheses: int


def canary_guesses(scores, k_pos: int, k_neg: int = 0) -> np.ndarray:
    """Guesses in {-1, 0, +1} (int8): +1 on the ``k_pos`` highest scores, -1 on the
    ``k_neg`` lowest, 0 elsewhere; ties broken by index (lower index first)."""
    s = float_array(scores, "scores", ndim=1, allow_inf=True)
    k_pos, k_neg = _check_k(k_pos, k_neg, s.size)
    return _guesses(s, k_pos, k_neg)


def audit_canaries(
    scores, included, k_pos: int, k_neg: int = 0, *, alpha: float = 0.05, delta: float = 1e-5, method: str = "one-run"
) -> CanaryAudit:
    """Epsilon lower bound for one ``(k_pos, k_neg)`` fixed before seeing the scores."""
    s, inc, a, d, method = _check_inputs(scores, included, alpha, delta, method)
    k_pos, k_neg = _check_k(k_pos, k_neg, s.size)
    return _best_over(s, inc, [(k_pos, k_neg)], a, d, method, n_hypotheses=1)


def audit_canaries_best_k(
    scores, included, *, alpha: float = 0.05, delta: float = 1e-5, method: str = "one-run",
    k_grid: Sequence[int | tuple[int, int]] | None = None,
) -> CanaryAudit:
    """Best bound over a grid of ``k_pos`` (or ``(k_pos, k_neg)`` pairs), Bonferroni-corrected.

    Every grid entry is tested at ``alpha / len(k_grid)``; valid when the grid does
    not depend on the scores (the default depends on ``m`` only).
    """
    s, inc, a, d, method = _check_inputs(scores, included, alpha, delta, method)
    grid = default_k_grid(s.size) if k_grid is None else k_grid
    pairs = sorted({_check_k(*(g if isinstance(g, tuple) else (g, 0)), s.size) for g in grid})
    if not pairs:
        raise UserError("k_grid is empty")
    return _best_over(s, inc, pairs, a / len(pairs), d, method, n_hypotheses=len(pairs), alpha_reported=a)


def audit_canaries_roc_hull(
    scores, included, *, alpha: float = 0.05, delta: float = 1e-5, method: str = "one-run"
) -> CanaryAudit:
    """jax_privacy's convention: top-k at every ROC-hull vertex, ``alpha / H`` (see module docstring)."""
    s, inc, a, d, method = _check_inputs(scores, included, alpha, delta, method)
    if inc.all() or not inc.any():
        raise UserError("the ROC-hull audit needs both included and excluded canaries")
    tp, fp = _roc_counts(s, inc)
    keep = _upper_hull(fp, tp)
    pairs = [(int(t + f), 0) for t, f in zip(tp[keep], fp[keep])]
    return _best_over(s, inc, pairs, a / len(pairs), d, method, n_hypotheses=len(pairs), alpha_reported=a)


def default_k_grid(m: int) -> list[int]:
    """``k_pos`` in {16, 32, 64, ...} below ``m``, and ``m`` itself (``k_neg = 0``): about log2(m) - 3 entries."""
    m = check_int(m, "m", minimum=1)
    grid = [k for k in (2**j for j in range(4, 64)) if k < m]
    return grid + [m]


# --------------------------------------------------------------------------


def _check_inputs(scores, included, alpha, delta, method) -> tuple[np.ndarray, np.ndarray, float, float, str]:
    s = float_array(scores, "scores", ndim=1, allow_inf=True)
    inc = bool_array(included, "included", ndim=1)
    same_shape(s, inc, "scores", "included")
    if s.size == 0:
        raise UserError("no canaries: scores is empty")
    if method not in METHODS:
        raise UserError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    d = check_delta(delta)
    if method == "fdp" and d == 0.0:
        raise UserError("the f-DP audit needs delta > 0")
    return s, inc, check_alpha(alpha), d, method


def _check_k(k_pos, k_neg, m: int) -> tuple[int, int]:
    k_pos = check_int(k_pos, "k_pos")
    k_neg = check_int(k_neg, "k_neg")
    if k_pos + k_neg > m:
        raise UserError(f"k_pos + k_neg = {k_pos + k_neg} exceeds the {m} canaries")
    return k_pos, k_neg


def _guesses(s: np.ndarray, k_pos: int, k_neg: int) -> np.ndarray:
    order = _rank(s)
    g = np.zeros(s.size, np.int8)
    g[order[:k_pos]] = 1
    g[order[s.size - k_neg :]] = -1
    return g


def _rank(s: np.ndarray) -> np.ndarray:
    """Canary indices from the highest score down, ties by index (the bottom
    guesses come from the end of this order, so top and bottom never overlap)."""
    return np.argsort(-s, kind="stable")


def _count_table(s: np.ndarray, inc: np.ndarray, pairs) -> list[tuple[int, int, int, int]]:
    """``(k_pos, k_neg, guesses, right guesses)`` for each pair, from one sort."""
    m = s.size
    cum_in = np.concatenate(([0], np.cumsum(inc[_rank(s)])))  # included among the first j
    rows = []
    for kp, kn in pairs:
        right_top = int(cum_in[kp])
        right_bottom = kn - int(cum_in[m] - cum_in[m - kn])
        rows.append((kp, kn, kp + kn, right_top + right_bottom))
    return rows


def _best_over(s, inc, pairs, alpha_test: float, delta: float, method: str, *, n_hypotheses: int,
               alpha_reported: float | None = None) -> CanaryAudit:
    m = s.size
    cands = _count_table(s, inc, pairs)
    # Visit the most precise guesses first so the best bound is found early; the
    # order does not change the result, only how many searches are cut short.
    cands.sort(key=lambda c: -(c[3] + 1) / (c[2] + 2))
    best = (0.0, *cands[0])
    for kp, kn, r, v in cands:
        if r == 0 or v == 0:
            continue
        eps = _search(method, m, r, v, alpha_test, delta, best[0])
        if eps > best[0]:
            best = (eps, kp, kn, r, v)
    eps, kp, kn, r, v = best
    mu = _gdp_mu(eps, delta) if method == "fdp" else None
    log.debug("%s audit: eps_lb %.6g from %d right of %d guesses (k+ %d, k- %d), %d hypotheses",
              method, eps, v, r, kp, kn, n_hypotheses)
    return CanaryAudit(method=method, epsilon=eps, mu=mu, m=m, k_pos=kp, k_neg=kn, n_guesses=r, n_correct=v,
                       alpha=alpha_test if alpha_reported is None else alpha_reported, delta=delta,
                       n_hypotheses=n_hypotheses)


def _search(method: str, m: int, r: int, v: int, alpha: float, delta: float, lo: float) -> float:
    if method == "one-run":
        return one_run._epsilon(m, r, v, alpha, delta, lo)
    return one_run_fdp._epsilon(m, r, v, alpha, delta, lo)


def _upper_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the strict vertices of the upper convex hull of points sorted by
    ``x`` (non-decreasing); collinear points are dropped, both ends kept."""
    keep: list[int] = []
    for i in range(x.size):
        while len(keep) >= 2:
            a, b = keep[-2], keep[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if cross >= 0:  # b lies on or below the chord a -> i
                keep.pop()
            else:
                break
        keep.append(i)
    return np.asarray(keep, dtype=np.int64)
