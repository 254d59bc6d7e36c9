"""Surrogate gradients of the spike function (DPSNN paper, eqs. 4-6).

The forward pass spikes with the Heaviside step ``o = 1{V >= V_th}``; the
backward pass replaces its derivative by a surrogate ``dg/dV`` evaluated at
``x = V - V_th``:

* gate     (eq. 4): ``1{|x| < 1/2}``
* darctanh (eq. 5): ``4 / (exp(-2x) + exp(2x) + 2)`` (= ``sech(x)**2``)
* normal   (eq. 6): ``exp(-2 x**2)`` -- the paper prints ``e^{2x^2}``, a typo:
  that would grow without bound away from the threshold.

Each surrogate is a pair, as in SpikingJelly's ``surrogate.py``: the derivative
``g'`` used by BPTT and a smooth primitive ``g`` with ``dg/dx = g'``.  The
primitive is used only by the gradient-check tests (a network whose spike
function is ``g`` has exactly the BPTT gradient as its true gradient).

This module is the one home of the surrogate math: the NumPy reference, the
Numba CPU kernels and the CUDA kernels all call :func:`surrogate_grad` (compiled
for their target), selecting the function by its integer code.
"""

from __future__ import annotations

import math

import numpy as np

SURROGATES: tuple[str, ...] = ("gate", "darctanh", "normal")
GATE, DARCTANH, NORMAL = 0, 1, 2


def surrogate_code(name: str) -> int:
    """Integer code of a surrogate name (the kernels take codes, not strings)."""
    from npdpsnn.errors import UserError

    try:
        return SURROGATES.index(name)
    except ValueError:
        raise UserError(f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATES)}") from None


def surrogate_grad(code: int, x: float) -> float:
    """``dg/dV`` at ``x = V - V_th`` for surrogate ``code`` (eqs. 4-6)."""
    if code == 0:
        return 1.0 if abs(x) < 0.5 else 0.0
    if code == 1:
        if abs(x) > 40.0:  # exp overflow guard; the value is < 1e-34 there
            return 0.0
        return 4.0 / (math.exp(-2.0 * x) + math.exp(2.0 * x) + 2.0)
    return math.exp(-2.0 * x * x)


def surrogate_primitive(code: int, x: float) -> float:
    """A smooth primitive ``g`` with ``g'(x) = surrogate_grad(code, x)``.

    gate: ``clip(x + 1/2, 0, 1)``; darctanh: ``1/2 + tanh(x)``;
    normal: ``1/2 + sqrt(pi/8) erf(sqrt(2) x)``.  All equal 1/2 at the threshold.
    """
    if code == 0:
        return min(1.0, max(0.0, x + 0.5))
    if code == 1:
        return 0.5 + math.tanh(x)
    return 0.5 + math.sqrt(math.pi / 8.0) * math.erf(math.sqrt(2.0) * x)


surrogate_grad_vec = np.vectorize(surrogate_grad, otypes=[np.float64])
surrogate_primitive_vec = np.vectorize(surrogate_primitive, otypes=[np.float64])
