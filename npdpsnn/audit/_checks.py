"""Argument checks shared by the audit modules (every failure is a UserError)."""

from __future__ import annotations

import numbers

import numpy as np

from npdpsnn.errors import UserError


def check_int(x, name: str, *, minimum: int = 0) -> int:
    """``x`` as an ``int`` >= ``minimum`` (bools and non-integral numbers refused)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise UserError(f"{name} must be an integer, got {x!r}")
    x = int(x)
    if x < minimum:
        raise UserError(f"{name} must be >= {minimum}, got {x}")
    return x


def check_real(x, name: str, *, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    """``x`` as a float in the interval ``[low, high]`` (ends open when asked)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise UserError(f"{name} must be a real number, got {x!r}")
    x = float(x)
    below = x <= low if low_open else x < low
    above = x >= high if high_open else x > high
    if np.isnan(x) or below or above:
        lb = "(" if low_open else "["
        rb = ")" if high_open else "]"
        raise UserError(f"{name} must be in {lb}{low}, {high}{rb}, got {x!r}")
    return x


def check_alpha(alpha) -> float:
    """Significance level in (0, 1)."""
    return check_real(alpha, "alpha (significance level)", low=0.0, high=1.0, low_open=True, high_open=True)


def check_delta(delta) -> float:
    """DP delta in [0, 1]."""
    return check_real(delta, "delta", low=0.0, high=1.0)


def float_array(x, name: str, *, ndim: int | None = None, allow_inf: bool = False) -> np.ndarray:
    """``x`` as a float64 array with no NaN (nor infinity unless ``allow_inf``)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name} must be an array of numbers ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise UserError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        what = "NaN" if allow_inf else "NaN or infinity"
        raise UserError(f"{name} contains {what} ({int(bad.sum())} of {arr.size} entries)")
    return arr


def bool_array(x, name: str, *, ndim: int | None = None) -> np.ndarray:
    """``x`` as a bool array; accepts bools or the integers 0/1 (and ±1 as -1 -> False)."""
    arr = np.asarray(x)
    if ndim is not None and arr.ndim != ndim:
        raise UserError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if not np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.floating):
        raise UserError(f"{name} must hold booleans (or 0/1, or -1/+1), got dtype {arr.dtype}")
    values = set(np.unique(arr).tolist())
    if values <= {0, 1} or values <= {-1, 1}:
        return arr == 1
    raise UserError(f"{name} must hold booleans (or 0/1, or -1/+1), got values {sorted(values)[:5]}")


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise UserError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}")
