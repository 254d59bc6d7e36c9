"""Scalar neuron dynamics: one home for the IF/LIF update and its BPTT step.

Forward (DPSNN paper eq. 2 for IF, eq. 14 for LIF; ``leak = 1`` gives IF)::

    V[t] = leak * V[t-1] * (1 - o[t-1]) + I[t],     o[t] = 1{V[t] >= V_th}

Backward (eqs. 9-10), with ``gV[t] = dL/dV[t]`` and ``dA[t]`` the gradient that
reaches ``o[t]`` from the layer above::

    dL/do[t] = dA[t] - leak * V[t] * gV[t+1]            (reset path; 0 if detach_reset)
    gV[t]    = dL/do[t] * g'(V[t] - V_th) + leak * (1 - o[t]) * gV[t+1]

``dL/dI[t] = gV[t]`` because ``I[t]`` enters ``V[t]`` additively.  The functions
here are plain Python so every backend compiles the same definition.
"""

from __future__ import annotations

NEURONS: tuple[str, ...] = ("if", "lif")


def membrane_update(v_prev: float, o_prev: float, current: float, leak: float) -> float:
    """``V[t] = leak * V[t-1] * (1 - o[t-1]) + I[t]``."""
    return leak * v_prev * (1.0 - o_prev) + current


def spike(v: float, threshold: float) -> float:
    """Heaviside spike ``o = 1{V >= V_th}`` (eq. 3)."""
    return 1.0 if v >= threshold else 0.0


def bptt_step(d_above: float, v: float, o: float, g_next: float, sg: float, leak: float, detach_reset: bool) -> float:
    """One backward-in-time step: returns ``gV[t]`` given ``gV[t+1] = g_next``.

    ``sg`` is the surrogate ``g'(V[t] - V_th)``; ``d_above`` the gradient reaching
    ``o[t]`` from the next layer.
    """
    d_o = d_above if detach_reset else d_above - leak * v * g_next
    return d_o * sg + leak * (1.0 - o) * g_next
