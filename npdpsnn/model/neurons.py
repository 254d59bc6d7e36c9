"""Scalar neuron dynamics: one home for the IF/LIF update, its BPTT step and the
ANN activations.

Forward (DPSNN paper eq. 2 for IF, eq. 14 for LIF; ``leak = 1`` gives IF), with
the reset ``reset``:

* ``zero`` (the paper's hard reset)::

      V[t] = leak * V[t-1] * (1 - o[t-1]) + I[t]

* ``subtract`` (reset by subtraction, "soft reset", the ANN-to-SNN conversion
  rule of Rueckauer et al. 2017 and Han et al. 2020, used by PrivateSNN)::

      V[t] = leak * (V[t-1] - V_th * o[t-1]) + I[t]

and ``o[t] = 1{V[t] >= V_th}`` in both.

Backward (eqs. 9-10), with ``gV[t] = dL/dV[t]`` and ``dA[t]`` the gradient that
reaches ``o[t]`` from the layer above::

    zero:      dL/do[t] = dA[t] - leak * V[t] * gV[t+1]
               gV[t]    = dL/do[t] * g'(V[t] - V_th) + leak * (1 - o[t]) * gV[t+1]
    subtract:  dL/do[t] = dA[t] - leak * V_th * gV[t+1]
               gV[t]    = dL/do[t] * g'(V[t] - V_th) + leak * gV[t+1]

(the reset term of ``dL/do`` is dropped with ``detach_reset``).  ``dL/dI[t] =
gV[t]`` because ``I[t]`` enters ``V[t]`` additively.

ANN activations ``a = f(I)`` (one step): ``tanh`` (the DPSNN baseline) or
``relu`` (the conversion-friendly form), with ``f'`` written in terms of the
output ``a``: ``1 - a^2`` and ``1{a > 0}``.

The functions here are plain Python arithmetic so every backend compiles the
same definition; they also take NumPy arrays element-wise (the reference).
:func:`membrane_update` and :func:`bptt_step` are the zero-reset special cases
that the compiled kernels call for the default reset; for reset by subtraction
they call :func:`membrane` and :func:`bptt` with the constant code
``RESET_SUBTRACT`` (the compiler folds the code's branch).
"""

from __future__ import annotations

import math

NEURONS: tuple[str, ...] = ("if", "lif")
RESETS: tuple[str, ...] = ("zero", "subtract")
RESET_ZERO, RESET_SUBTRACT = 0, 1
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")
TANH, RELU = 0, 1


def membrane_update(v_prev: float, o_prev: float, current: float, leak: float) -> float:
    """``V[t] = leak * V[t-1] * (1 - o[t-1]) + I[t]`` (reset to zero)."""
    return leak * v_prev * (1.0 - o_prev) + current


def membrane(v_prev, o_prev, current, leak, threshold, reset: int):
    """``V[t]`` for reset code ``reset`` (module docstring)."""
    if reset == RESET_SUBTRACT:
        return leak * (v_prev - threshold * o_prev) + current
    return leak * v_prev * (1.0 - o_prev) + current


def spike(v: float, threshold: float) -> float:
    """Heaviside spike ``o = 1{V >= V_th}`` (eq. 3)."""
    return 1.0 if v >= threshold else 0.0


def bptt_step(d_above: float, v: float, o: float, g_next: float, sg: float, leak: float, detach_reset: bool) -> float:
    """One backward-in-time step of the zero reset: returns ``gV[t]`` given
    ``gV[t+1] = g_next``; ``sg`` is the surrogate ``g'(V[t] - V_th)``,
    ``d_above`` the gradient reaching ``o[t]`` from the next layer."""
    d_o = d_above if detach_reset else d_above - leak * v * g_next
    return d_o * sg + leak * (1.0 - o) * g_next


def bptt(d_above, v, o, g_next, sg, leak, detach_reset: bool, threshold, reset: int):
    """One backward-in-time step, ``gV[t]``, for reset code ``reset``."""
    if reset == RESET_SUBTRACT:
        d_o = d_above if detach_reset else d_above - leak * threshold * g_next
        return d_o * sg + leak * g_next
    d_o = d_above if detach_reset else d_above - leak * v * g_next
    return d_o * sg + leak * (1.0 - o) * g_next


def activation(code: int, x):
    """ANN activation: ``tanh(x)`` or ``relu(x) = max(x, 0)`` (``x * 1{x > 0}``,
    which also runs element-wise on arrays)."""
    if code == RELU:
        return x * (x > 0.0)
    if isinstance(x, float):
        return math.tanh(x)
    import numpy as np

    return np.tanh(x)


def activation_grad(code: int, a):
    """``f'(I)`` from the output ``a = f(I)``: ``1 - a^2`` (tanh), ``1{a > 0}`` (relu)."""
    if code == RELU:
        return (a > 0.0) * 1.0
    return 1.0 - a * a


def code_of(name: str, choices: tuple[str, ...], what: str) -> int:
    """Integer code of an option name (the kernels take codes, not strings)."""
    from npdpsnn.errors import UserError

    try:
        return choices.index(name)
    except (ValueError, TypeError):
        raise UserError(f"unknown {what} {name!r}; choose one of {', '.join(choices)}") from None
