r"""Numerical privacy-loss-distribution (PLD) accountant with a certified upper bound.

Mechanism: Poisson-subsampled Gaussian, sensitivity 1, noise multiplier
``sigma``, sampling rate ``q``.  With :math:`M = (1-q)N(0,\sigma^2) + qN(1,\sigma^2)`
and :math:`N_0 = N(0,\sigma^2)` the two neighbouring directions are the pairs

* remove: :math:`(P, Q) = (M, N_0)`, loss :math:`L(x)=\log\big(1-q+q\,e^{(2x-1)/(2\sigma^2)}\big)`;
* add:    :math:`(P, Q) = (N_0, M)`, loss :math:`-L(x)`,

and a mechanism is :math:`(\varepsilon,\delta)`-DP when both hockey-stick
divergences :math:`\delta_{P\|Q}(\varepsilon) = \mathbb{E}_{P}\big[(1-e^{\varepsilon-L})_+\big]
+ P(L=\infty)` are at most :math:`\delta`; the reported epsilon is the larger
of the two directions.  ``T`` compositions add independent losses, so the
privacy-loss distribution (PLD) of the composition is the ``T``-fold
convolution (Koskela, Jälkö & Honkela 2020; Gopi, Lee & Wutschitz 2021;
Google ``dp_accounting`` PLD).

Upper bound.  Every approximation below replaces a PLD by one whose
:math:`(P,Q)` pair *dominates* the exact one (its :math:`\delta(\varepsilon)`
is at least as large for every real :math:`\varepsilon`), and domination is
preserved under composition (Zhu, Dathathri & Kairouz 2022, "Optimal
accounting of differential privacy via characteristic function"):

1. Discretisation on the grid :math:`l_k = k h` by "connecting the dots"
   (Doroshenko, Ghazi, Kamath, Kumar & Manurangsi 2022): the loss mass of each
   bin :math:`(l_k, l_{k+1}]` is split between its two end points so that its
   :math:`P`- and :math:`Q`-masses are kept, which replaces the convex curve
   :math:`\delta(e^\varepsilon)` by its chords.  The split is computed from
   exact Gaussian interval probabilities in log space and rounded towards the
   upper end point.
2. Loss mass below the lowest grid point is moved *up* (to the mode); mass above the
   highest one is moved to :math:`+\infty` (it then counts fully in
   :math:`\delta`).  The same two moves truncate the tails after every FFT
   convolution: at most ``tau`` mass each, with ``tau`` proportional to the
   number of steps the PLD stands for (a cut is repeated ``T/m`` times in the
   final result), and tails below the FFT round-off floor.  Moving loss mass upwards never decreases
   :math:`\delta(\varepsilon)`.
3. The final :math:`\varepsilon` solves :math:`\delta(\varepsilon) \le
   \delta - \text{slack}` exactly on the piecewise form of the discrete PLD;
   the slack (``1e-6 * delta`` plus ``1e-14`` per convolution) covers
   floating-point error of the FFTs, whose negative round-off is clipped to 0.

Compositions of a history of different ``(sigma, q)`` use one common grid
step: each distinct pair is raised to its number of steps by repeated
FFT squaring, then the results are convolved together.

The grid step ``h`` is chosen so that the variance added by the chord
splitting (at most :math:`h^2/4` per step) is ``1e-5`` of the variance of
the composed loss, bounded so that no array exceeds ``2**21`` points.  A
coarser grid only loosens the bound; it never makes it invalid.

Supported ``delta`` is at least ``1e-8``: FFT round-off (about ``1e-17`` of
the largest probability per entry) forces tail cuts at that level, and the
mass they move to :math:`+\infty` adds up to about ``1e-10``-``1e-9`` of
:math:`\delta` in long compositions, which stays valid but would dominate a
smaller :math:`\delta`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import special

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import gdp as _gdp
from npdpsnn.privacy.accountants.rdp import (
    _check_delta,
    _check_epsilon,
    _check_history,
    _check_sample_rate,
    _check_sigma,
    _check_steps,
)

__all__ = ["pld_epsilon", "pld_epsilon_history", "pld_delta_history", "MIN_DELTA"]

#: Smallest delta the PLD accountant accepts.
MIN_DELTA = 1e-8

_REL_ADDED_VAR = 1e-5  # chord-splitting variance budget, relative to the composed variance
_MAX_POINTS = 1 << 21  # largest grid array
_TAIL_BUDGET = 1e-4  # total truncated mass, relative to delta (moved pessimistically)
_SLACK_REL = 1e-6
_SLACK_PER_CONV = 1e-14
_NOISE_FLOOR = 1e-15  # FFT round-off level, relative to the largest probability


@dataclass
class _PMF:
    """Discrete PLD: ``probs[i]`` is the P-mass at loss ``(offset + i) * h``; ``inf`` at +infinity."""

    offset: int
    probs: np.ndarray
    inf: float
    steps: int = 1  # number of composed steps this PLD stands for


def pld_epsilon(sample_rate: float, noise_multiplier: float, steps: int, delta: float) -> float:
    """Upper bound on epsilon of ``steps`` Poisson-subsampled Gaussian steps (see module docstring)."""
    q = _check_sample_rate(sample_rate)
    sigma = _check_sigma(noise_multiplier)
    n = _check_steps(steps)
    return pld_epsilon_history([(sigma, q, n)], delta)


def pld_epsilon_history(history, delta: float) -> float:
    """Upper bound on epsilon of a history of ``(sigma, sample_rate, steps)`` phases
    (``inf`` where the loss distribution overflows float64: tiny sigma)."""
    hist = _check_history(history)
    if any(sigma < 1e-100 for sigma, _, n in hist if n):  # sigma^2 underflows: no finite answer
        return math.inf
    try:
        eps = _pld_epsilon_history(hist, delta)
    except OverflowError:
        eps = math.inf
    if eps == 0.0:
        # epsilon 0 is right when delta covers the total variation distance, which
        # composes at most additively: TV <= sum_i n_i q_i (2 Phi(1 / (2 sigma_i)) - 1).
        tv = sum(n * q * (2.0 * special.ndtr(0.5 / sigma) - 1.0) for sigma, q, n in hist)
        if tv <= delta:
            return 0.0
    if eps == 0.0 or math.isinf(eps):
        # Otherwise the discretisation degenerated (very large or tiny sigma).  Without
        # subsampling the composition is exactly a Gaussian mechanism with
        # mu = sqrt(sum n / sigma^2) (Dong, Roth & Su 2022), and subsampling can
        # only help: its exact epsilon is a certified upper bound.
        mu = math.sqrt(sum(n / (sigma * sigma) for sigma, _, n in hist))
        return _gdp.gdp_epsilon(mu, delta) if mu > 0 else 0.0
    return eps


def _pld_epsilon_history(history, delta: float) -> float:
    hist = _check_history(history)
    d = _check_delta(delta)
    if d < MIN_DELTA:
        raise UserError(f"the PLD accountant needs delta >= {MIN_DELTA:g}, got {d!r}")
    phases = _merge(hist)
    if not phases:
        return 0.0
    h = _grid_step(phases)
    tau_total = _TAIL_BUDGET * d
    eps = 0.0
    for direction in ("remove", "add"):
        pmf, n_conv = _compose(phases, h, direction, tau_total)
        slack = _SLACK_REL * d + _SLACK_PER_CONV * max(n_conv, 1)
        eps = max(eps, _epsilon_from_pmf(pmf, h, d - slack))
    return eps


def pld_delta_history(history, epsilon: float, delta_hint: float = 1e-5) -> float:
    """Upper bound on delta at ``epsilon`` (max over directions, without the slack).

    ``delta_hint`` only sets the truncation budget (``1e-4 * delta_hint``).
    """
    hist = _check_history(history)
    eps = _check_epsilon(epsilon)
    hint = _check_delta(delta_hint)
    phases = _merge(hist)
    if not phases:
        return 0.0
    h = _grid_step(phases)
    out = 0.0
    for direction in ("remove", "add"):
        pmf, _ = _compose(phases, h, direction, _TAIL_BUDGET * hint)
        out = max(out, _delta_from_pmf(pmf, h, eps))
    return out


# --------------------------------------------------------------------------
# Grid step.
# --------------------------------------------------------------------------


def _merge(hist: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Sum the steps of identical (sigma, q) pairs (composition commutes); drop empty ones."""
    acc: dict[tuple[float, float], int] = {}
    for sigma, q, n in hist:
        if n > 0:
            acc[(sigma, q)] = acc.get((sigma, q), 0) + n
    return [(s, q, n) for (s, q), n in acc.items()]


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(160)
_GH_W = _GH_W / _GH_W.sum()


def _loss_moments(q: float, sigma: float) -> tuple[float, float]:
    """Mean and variance of the remove-direction loss under P (Gauss-Hermite)."""
    xs = np.concatenate([sigma * _GH_X, 1.0 + sigma * _GH_X])
    ws = np.concatenate([(1.0 - q) * _GH_W, q * _GH_W])
    loss = _loss_remove(q, sigma, xs)
    m = float(np.dot(ws, loss))
    v = float(np.dot(ws, (loss - m) ** 2))
    return m, max(v, 0.0)


def _grid_step(phases: list[tuple[float, float, int]]) -> float:
    total_steps = sum(n for _, _, n in phases)
    mean = 0.0
    var = 0.0
    single_range = 0.0
    z = -special.ndtri(1e-24)
    for sigma, q, n in phases:
        m, v = _loss_moments(q, sigma)
        mean += n * m
        var += n * v
        lo = float(_loss_remove(q, sigma, np.array([-sigma * z]))[0])
        hi = float(_loss_remove(q, sigma, np.array([1.0 + sigma * z]))[0])
        single_range = max(single_range, hi - lo)
    h = math.sqrt(4.0 * _REL_ADDED_VAR * var / total_steps) if var > 0 else 1e-3
    composed_range = 2.0 * (abs(mean) + 40.0 * math.sqrt(var)) + 2.0 * single_range
    h = max(h, composed_range / _MAX_POINTS, single_range / (_MAX_POINTS // 2), 1e-12)
    return h


# --------------------------------------------------------------------------
# Single-step discretisation.
# --------------------------------------------------------------------------


def _loss_remove(q: float, sigma: float, x: np.ndarray) -> np.ndarray:
    """L(x) = log(1 - q + q exp((2x - 1) / (2 sigma^2))) (increasing in x)."""
    u = (2.0 * x - 1.0) / (2.0 * sigma * sigma)
    log_1mq = math.log1p(-q) if q < 1.0 else -math.inf
    return np.logaddexp(log_1mq, math.log(q) + u)


def _x_of_loss_remove(q: float, sigma: float, l: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_loss_remove`; -inf where l <= log(1 - q)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # overflow: x = +inf, the right limit
        arg = np.expm1(l) + q
        x = sigma * sigma * (np.log(np.where(arg > 0, arg, 1.0)) - math.log(q)) + 0.5
    return np.where(arg > 0, x, -np.inf)


def _log_interval(lcdf_a, lsf_a, lcdf_b, lsf_b) -> np.ndarray:
    """log P(a < Z <= b) for a <= b given log Phi and log(1 - Phi) at both ends."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # upper side: a >= 0 -> sf(a) - sf(b); lower side: b <= 0 -> cdf(b) - cdf(a)
        upper = lsf_a + np.log(-np.expm1(lsf_b - lsf_a))
        lower = lcdf_b + np.log(-np.expm1(lcdf_a - lcdf_b))
        middle = np.log1p(-(np.exp(lcdf_a) + np.exp(lsf_b)))
    a_nonneg = lcdf_a >= math.log(0.5)
    b_nonpos = lcdf_b <= math.log(0.5)
    out = np.where(a_nonneg, upper, np.where(b_nonpos, lower, middle))
    return np.where(np.isnan(out), -np.inf, out)


def _single_step(q: float, sigma: float, h: float, direction: str, tail: float) -> _PMF:
    """Dominating discrete PLD of one step on the grid ``k * h``."""
    z = -float(special.ndtri(tail))
    x_lo, x_hi = -sigma * z, 1.0 + sigma * z  # P-mass outside [x_lo, x_hi] <= 2 * tail
    l_lo = float(_loss_remove(q, sigma, np.array([x_lo]))[0])
    l_hi = float(_loss_remove(q, sigma, np.array([x_hi]))[0])
    if direction == "add":
        l_lo, l_hi = -l_hi, -l_lo
    k_lo = math.floor(l_lo / h)
    k_hi = max(math.ceil(l_hi / h), k_lo + 1)
    grid = np.arange(k_lo, k_hi + 1, dtype=np.float64) * h
    if direction == "remove":
        edges = _x_of_loss_remove(q, sigma, grid)  # increasing
    else:
        edges = _x_of_loss_remove(q, sigma, -grid)  # decreasing
    log_1mq = math.log1p(-q) if q < 1.0 else -math.inf
    log_q = math.log(q)

    def comp(shift: float):
        zz = (edges - shift) / sigma
        return special.log_ndtr(zz), special.log_ndtr(-zz)

    c0, s0 = comp(0.0)
    c1, s1 = comp(1.0)

    def interval(c, s, i_a, i_b):
        return _log_interval(c[i_a], s[i_a], c[i_b], s[i_b])

    n_bins = grid.size - 1
    if direction == "remove":
        ia, ib = np.arange(n_bins), np.arange(1, n_bins + 1)  # bin k <-> (edges[k], edges[k+1]]
    else:
        ia, ib = np.arange(1, n_bins + 1), np.arange(n_bins)  # bin k <-> [edges[k+1], edges[k])
    log_n0 = interval(c0, s0, ia, ib)
    log_n1 = interval(c1, s1, ia, ib)
    log_mix = np.logaddexp(log_1mq + log_n0, log_q + log_n1)
    log_p, log_q_bin = (log_mix, log_n0) if direction == "remove" else (log_n0, log_mix)

    # Split each bin's P-mass between its end points keeping its Q-mass:
    # lower share w = (e^{l_{k+1} - t} - 1) / (e^h - 1), t = log(P_bin / Q_bin).
    with np.errstate(invalid="ignore"):
        t = log_p - log_q_bin
        t = t + 4e-15 * (1.0 + np.abs(log_p) + np.abs(log_q_bin))  # round towards the upper point
        gap = np.clip(grid[1:] - t, 0.0, h)
    gap = np.where(np.isfinite(gap), gap, 0.0)
    w = np.expm1(gap) / math.expm1(h)
    p_bin = np.exp(log_p)
    probs = np.zeros(grid.size)
    probs[:-1] += p_bin * w
    probs[1:] += p_bin * (1.0 - w)

    # Mass beyond the grid: below -> up to the mode, above -> +infinity.
    if direction == "remove":
        log_below = np.logaddexp(log_1mq + c0[0], log_q + c1[0])  # x <= edges[0]
        log_above = np.logaddexp(log_1mq + s0[-1], log_q + s1[-1])  # x > edges[-1]
    else:
        log_below = s0[0]  # L <= grid[0]  <->  x >= edges[0]
        log_above = c0[-1]  # L > grid[-1]  <->  x < edges[-1]
    probs[int(np.argmax(probs))] += math.exp(log_below)  # rounded up (see _truncate)
    return _trim(_PMF(k_lo, probs, math.exp(log_above)))


# --------------------------------------------------------------------------
# Composition.
# --------------------------------------------------------------------------


def _trim(p: _PMF) -> _PMF:
    nz = np.flatnonzero(p.probs > 0)
    if nz.size == 0:
        return _PMF(0, np.zeros(1), p.inf, p.steps)
    return _PMF(p.offset + int(nz[0]), p.probs[nz[0] : nz[-1] + 1].copy(), p.inf, p.steps)


def _truncate(p: _PMF, tau: float) -> _PMF:
    """Cut both tails pessimistically: the bottom is moved up to the mode, the top to +infinity.

    A tail is cut while its mass is at most ``tau`` and, beyond that, while its
    entries stay below the FFT noise floor (``_NOISE_FLOOR`` times the largest
    entry; the total moved that way is at most ``size * floor``).  Without the
    second rule accumulated round-off would keep the tails, and the arrays,
    growing with every squaring.
    """
    probs = p.probs
    floor = _NOISE_FLOOR * float(probs.max()) if probs.size else 0.0
    lo_cum = np.cumsum(probs)
    n_lo = int(np.searchsorted(lo_cum, tau, side="right"))  # probs[:n_lo] sums to <= tau
    above = np.flatnonzero(probs >= floor)
    if above.size:
        n_lo = max(n_lo, int(above[0]))
    hi_cum = np.cumsum(probs[::-1])
    n_hi = int(np.searchsorted(hi_cum, tau, side="right"))
    if above.size:
        n_hi = max(n_hi, probs.size - 1 - int(above[-1]))
    n_lo = min(n_lo, probs.size - 1)
    n_hi = min(n_hi, probs.size - 1 - n_lo)
    inf = p.inf
    if n_hi > 0:
        inf = inf + float(hi_cum[n_hi - 1])
    kept = probs[n_lo : probs.size - n_hi].copy()
    if kept.size > 4 * _MAX_POINTS:
        raise UserError(
            "the PLD accountant cannot resolve this privacy-loss distribution on its grid; "
            "use the rdp accountant for these parameters"
        )
    if n_lo > 0:
        # Rounded up to the mode rather than to the lowest kept point: an atom
        # left at the bottom would be smeared further down by every later
        # convolution, while any upward move keeps the bound valid.
        kept[int(np.argmax(kept))] += float(lo_cum[n_lo - 1])
    return _trim(_PMF(p.offset + n_lo, kept, min(inf, 1.0), p.steps))


def _convolve(a: _PMF, b: _PMF, tau_unit: float) -> _PMF:
    """Composition of two PLDs, tails cut with ``tau = tau_unit * steps``.

    A cut made on a PLD standing for ``m`` steps is repeated at most ``T / m``
    times in the final ``T``-step composition, so scaling ``tau`` with ``m``
    keeps each cut's share of the final delta at ``tau_unit * T``.
    """
    n = a.probs.size + b.probs.size - 1
    nfft = sp_fft.next_fast_len(n, real=True)
    if a is b:
        fa = sp_fft.rfft(a.probs, nfft)
        out = sp_fft.irfft(fa * fa, nfft)[:n]
    else:
        out = sp_fft.irfft(sp_fft.rfft(a.probs, nfft) * sp_fft.rfft(b.probs, nfft), nfft)[:n]
    np.maximum(out, 0.0, out=out)
    inf = a.inf + b.inf - a.inf * b.inf
    steps = a.steps + b.steps
    return _truncate(_PMF(a.offset + b.offset, out, inf, steps), tau_unit * steps)


def _power(p: _PMF, n: int, tau_unit: float) -> tuple[_PMF, int]:
    """``p`` composed with itself ``n >= 1`` times by repeated squaring."""
    result = None
    base = p
    n_conv = 0
    while True:
        if n & 1:
            if result is None:
                result = base
            else:
                result = _convolve(result, base, tau_unit)
                n_conv += 1
        n >>= 1
        if not n:
            break
        base = _convolve(base, base, tau_unit)
        n_conv += 1
    return result, n_conv


def _compose(phases, h: float, direction: str, tau_total: float) -> tuple[_PMF, int]:
    total_steps = sum(n for _, _, n in phases)
    max_conv = sum(2 * max(1, n.bit_length()) for _, _, n in phases) + len(phases)
    tail = max(tau_total / (4.0 * total_steps), 1e-300)  # per step, beyond the single-step grid
    tau_unit = tau_total / (4.0 * max_conv * total_steps)  # per cut and composed step
    out = None
    n_conv = 0
    for sigma, q, n in phases:
        single = _single_step(q, sigma, h, direction, tail)
        powered, c = _power(single, n, tau_unit)
        n_conv += c
        if out is None:
            out = powered
        else:
            out = _convolve(out, powered, tau_unit)
            n_conv += 1
    return out, n_conv


# --------------------------------------------------------------------------
# From the PLD to (epsilon, delta).
# --------------------------------------------------------------------------


def _discounted_tail(p: np.ndarray, h: float) -> np.ndarray:
    """V_k = sum_{j>k} p_j exp(-(j-k) h), in blocks short enough not to overflow."""
    x = p[::-1]  # x[n] = p_{K-1-n};  y[n] = V_{K-1-n} = sum_{m<n} x[m] e^{-(n-m) h}
    y = np.empty_like(x)
    block = max(1, min(x.size, int(500.0 / h)))
    carry = 0.0  # y at the start of the block
    for b in range(0, x.size, block):
        xb = x[b : b + block]
        i = np.arange(xb.size, dtype=np.float64)
        c = np.cumsum(xb * np.exp(i * h))  # sum_{m<=i} x[b+m] e^{m h}
        yb = np.exp(-i * h) * (carry + np.concatenate(([0.0], c[:-1])))
        y[b : b + block] = yb
        carry = math.exp(-xb.size * h) * (carry + float(c[-1]))
    return y[::-1]


def _delta_from_pmf(p: _PMF, h: float, eps: float) -> float:
    losses = (p.offset + np.arange(p.probs.size)) * h
    m = losses > eps
    return float(p.inf + np.sum(p.probs[m] * -np.expm1(eps - losses[m])))


def _epsilon_from_pmf(p: _PMF, h: float, delta: float) -> float:
    """Smallest eps >= 0 with delta(eps) <= delta for the discrete PLD ``p``.

    With the positive grid losses l_k (contiguous, step h), S_k = sum_{j>=k} p_j
    and V_k = sum_{j>k} p_j e^{l_k - l_j} (computed by the stable recurrence
    V_k = e^{-h} (p_{k+1} + V_{k+1})), delta is
    inf + S_k - e^{eps - l_k} (p_k + V_k) on [l_{k-1}, l_k).
    """
    if delta <= p.inf:
        return math.inf
    losses = (p.offset + np.arange(p.probs.size)) * h
    pos = losses > 0
    if not pos.any():
        return 0.0
    l_pos = losses[pos]
    p_pos = p.probs[pos]
    s = np.cumsum(p_pos[::-1])[::-1]
    v = _discounted_tail(p_pos, h)
    s_next = np.append(s[1:], 0.0)
    d_grid = p.inf + s_next - v  # delta at the grid points l_k
    # on [0, l_0): delta(0) = inf + S_0 - e^{-l_0} (p_0 + V_0)
    d0 = p.inf + s[0] - math.exp(-float(l_pos[0])) * (p_pos[0] + v[0])
    if d0 <= delta:
        return 0.0
    k = int(np.argmax(d_grid <= delta))  # first grid point meeting delta (the last one does: inf < delta)
    num = p.inf + s[k] - delta
    den = p_pos[k] + v[k]
    eps = float(l_pos[k]) + math.log(num / den) if num > 0 and den > 0 else float(l_pos[k])
    lo = float(l_pos[k - 1]) if k > 0 else 0.0
    eps = min(max(eps, lo), float(l_pos[k]))
    return float(np.nextafter(eps, math.inf)) if eps > 0 else eps
