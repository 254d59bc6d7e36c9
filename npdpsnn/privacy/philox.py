"""Philox4x32-10 and Box-Muller written once, as plain Python, for every target.

The math of :class:`npdpsnn.privacy.noise.PhiloxNoise` (see that module's
docstring for the construction and its sources): the round function, the
platform-independent ``ln``/``cos``/``sin``, the Box-Muller pair, and
:func:`compile_family`, which compiles them for the CPU
(:mod:`npdpsnn.privacy.noise`) and for CUDA (:mod:`npdpsnn.privacy.noise_cuda`).
Both modules import this one and not each other.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from npdpsnn.errors import UserError

# ------------------------------------------------------------------ constants
_U = np.uint64
_M32 = _U(0xFFFFFFFF)
_PHILOX_M0, _PHILOX_M1 = _U(0xD2511F53), _U(0xCD9E8D57)
_PHILOX_W0, _PHILOX_W1 = _U(0x9E3779B9), _U(0xBB67AE85)
_S0, _S1, _S2, _S3, _S5, _S6 = _U(0), _U(1), _U(2), _U(3), _U(5), _U(6)
_S26, _S32, _S51 = _U(26), _U(32), _U(51)
_BISECT = np.array([32, 16, 8, 4, 2, 1], np.uint64)  # shifts of the floor(log2) bisection
_TWO50, _LOW51 = _U(1 << 50), _U((1 << 51) - 1)
_SQRT2_MANT = _U(6369051672525772)  # floor(sqrt(2) 2^52): m > sqrt(2) iff mantissa > this
_TWO_M51, _TWO_M52, _TWO_M53 = 2.0**-51, 2.0**-52, 2.0**-53
_TWO51 = 2.0**51

_PI = Fraction("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899863")
_LN2 = Fraction("0.69314718055994530941723212145817656807550013436025525412068000949339362196969471560586")
# ln 2 = _LN2_HI + _LN2_LO with _LN2_HI's low 32 bits zero (fdlibm's split): k * _LN2_HI is exact.
_LN2_HI = float.fromhex("0x1.62e42fee00000p-1")
_LN2_LO = float(_LN2 - Fraction(_LN2_HI))
# Series coefficients, each the correctly rounded float of an exact rational (Fraction -> float):
# the same bits on every platform.
_LOG_SERIES = np.array([1.0 / (2 * k + 3) for k in range(10)])  # atanh: sum t^k / (2k + 3)
_SIN_SERIES = np.array([float((-1) ** k * (_PI / 2) ** (2 * k + 1) / math.factorial(2 * k + 1)) for k in range(9)])
_COS_SERIES = np.array([float((-1) ** k * (_PI / 2) ** (2 * k) / math.factorial(2 * k)) for k in range(10)])


# ------------------------------------------------------------------ the math, once for every target
# Plain Python functions: the interpreter runs them as the reference, and
# :func:`compile_family` compiles them for the CPU (below) and for CUDA
# (:mod:`npdpsnn.privacy.noise_cuda`).  Integers are uint64 throughout (numba
# turns uint64-int64 mixtures into float64, so every constant is a uint64).
def _mul(a, b):
    """``a * b`` rounded once (CUDA: ``__dmul_rn``, never fused into an FMA)."""
    return a * b


def _add(a, b):
    """``a + b`` rounded once (CUDA: ``__dadd_rn``)."""
    return a + b


def _philox_rounds(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter ``(c0..c3)`` under key ``(k0, k1)`` (uint64 holding 32-bit words)."""
    k0 = k0 & _M32  # tells the compiler every word fits 32 bits (32x32-bit vector multiplies)
    k1 = k1 & _M32
    for r in range(10):
        if r > 0:
            k0 = (k0 + _PHILOX_W0) & _M32
            k1 = (k1 + _PHILOX_W1) & _M32
        p0 = _PHILOX_M0 * c0
        p1 = _PHILOX_M1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _M32, (p0 >> _S32) ^ c3 ^ k1, p0 & _M32
    return c0, c1, c2, c3


def _ln_unit(a):
    """``ln(a 2^-53)`` for an integer ``1 <= a <= 2^53`` (uint64).  Branch-free
    (selects only), so the CPU kernel's loop vectorises."""
    e = 0  # e = floor(log2 a), by bisection
    v = a
    for k in range(6):
        shift = _BISECT[k]
        big = v >= (_S1 << shift)
        v = (v >> shift) if big else v
        e += np.int64(shift) if big else 0
    lo = e if e < 52 else 52
    mant = (a << _U(52 - lo)) >> _U(e - lo)  # a 2^(52-e) in [2^52, 2^53): exact
    # m in [sqrt(1/2), sqrt(2)]: mant 2^-52, or mant 2^-53 with the exponent e + 1
    above = mant > _SQRT2_MANT
    m = _mul(np.float64(mant), _TWO_M53 if above else _TWO_M52)
    e += 1 if above else 0
    f = m - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)  # ln m = 2 atanh(s), |s| <= 0.1716
    t = _mul(s, s)
    p = _LOG_SERIES[9]
    for k in range(8, -1, -1):
        p = _add(_LOG_SERIES[k], _mul(t, p))
    s2 = _add(s, s)
    ln_m = _add(s2, _mul(s2, _mul(t, p)))
    k = np.float64(e - 53)
    return _add(_mul(k, _LN2_HI), _add(_mul(k, _LN2_LO), ln_m))


def _cos_sin_turn(b):
    """``(cos, sin)`` of ``2 pi b 2^-53`` for a 53-bit integer ``b`` (uint64); branch-free."""
    r = b & _LOW51
    up = r >= _TWO50  # f in [-1/2, 0) of the next quadrant
    q = ((b >> _S51) + (_S1 if up else _S0)) & _S3  # angle = (pi/2)(q + f)
    f = _mul(np.float64(r) - (_TWO51 if up else 0.0), _TWO_M51)
    t = _mul(f, f)
    ps = _SIN_SERIES[8]
    for k in range(7, -1, -1):
        ps = _add(_SIN_SERIES[k], _mul(t, ps))
    pc = _COS_SERIES[9]
    for k in range(8, -1, -1):
        pc = _add(_COS_SERIES[k], _mul(t, pc))
    s = _mul(f, ps)
    odd = (q & _S1) == _S1  # q = 1: (-s, c); q = 2: (-c, -s); q = 3: (s, -c)
    x = s if odd else pc
    y = pc if odd else s
    return (-x if q == _S1 or q == _S2 else x), (-y if q >= _S2 else y)


def _box_muller(w0, w1, w2, w3):
    """Two independent N(0, 1) from four uniform 32-bit words (uint64), see the module docstring."""
    a = (((w0 >> _S5) << _S26) | (w1 >> _S6)) + _S1
    b = ((w2 >> _S5) << _S26) | (w3 >> _S6)
    r = math.sqrt(_mul(-2.0, _ln_unit(a)))
    c, s = _cos_sin_turn(b)
    return _mul(r, c), _mul(r, s)


def _philox_pair(j, step, k0, k1):
    """Noise elements ``2j`` and ``2j + 1`` of step ``step`` (uint64 each), unscaled."""
    w0, w1, w2, w3 = _philox_rounds(j & _M32, j >> _S32, step & _M32, step >> _S32, k0, k1)
    return _box_muller(w0, w1, w2, w3)


FAMILY: tuple[Callable, ...] = (_mul, _add, _philox_rounds, _ln_unit, _cos_sin_turn, _box_muller, _philox_pair)
"""The plain functions above, callees first: what :func:`compile_family` compiles."""


def compile_family(jit: Callable, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compile :data:`FAMILY` with ``jit`` (``njit(...)`` or ``cuda.jit(device=True)``).

    Each function is compiled from a copy whose global names resolve in a shared
    namespace holding the compiled versions of its callees, so one source serves
    every target; ``overrides`` replaces names first (CUDA: ``_mul``/``_add`` by
    their non-contracting forms).  Returns ``{name: compiled function}``."""
    namespace = dict(_philox_pair.__globals__)
    namespace.update(overrides or {})
    compiled = {}
    for fn in FAMILY:
        if fn.__name__ in (overrides or {}):
            compiled[fn.__name__] = namespace[fn.__name__]
            continue
        clone = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
        compiled[fn.__name__] = namespace[fn.__name__] = jit(clone)
    return compiled



def _check_draw(std: float, n: int) -> tuple[float, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise UserError(f"noise size must be an integer >= 0, got {n!r}")
    if not (isinstance(std, (int, float, np.floating)) and math.isfinite(std) and std >= 0):
        raise UserError(f"noise standard deviation must be finite and >= 0, got {std!r}")
    return float(std), int(n)


def _check_word(value: int, bits: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 1 << bits:
        raise UserError(f"{what} must be an integer in [0, 2^{bits}), got {value!r}")
    return int(value)


def split_key(key: int) -> tuple[np.uint64, np.uint64]:
    """The Philox key words ``(k0, k1)`` of a 64-bit key (low word first)."""
    key = _check_word(key, 64, "the Philox key")
    return _U(key & 0xFFFFFFFF), _U(key >> 32)
