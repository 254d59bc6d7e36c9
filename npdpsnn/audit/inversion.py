r"""Analytic input recovery from the gradient of a fully connected layer with bias.

For a fully connected layer :math:`u = W x + b` and any loss ``L``,

.. math::

    \frac{\partial L}{\partial W_{ij}} = \frac{\partial L}{\partial u_i}\, x_j, \qquad
    \frac{\partial L}{\partial b_i} = \frac{\partial L}{\partial u_i}
    \quad\Longrightarrow\quad
    x_j = \frac{\partial L / \partial W_{ij}}{\partial L / \partial b_i}
    \ \text{ for every row } i \text{ with } \partial L/\partial b_i \ne 0

(L. T. Phong, Y. Aono, T. Hayashi, L. Wang, S. Moriai, "Privacy-Preserving Deep
Learning via Additively Homomorphic Encryption", IEEE TIFS 2018; also J. Geiping
et al., "Inverting Gradients", NeurIPS 2020).  In a spiking network with direct
encoding the first layer receives the same image at every time step, so
:math:`\partial L/\partial W = (\sum_t \delta_t) x^\top` and
:math:`\partial L/\partial b = \sum_t \delta_t`: the ratio is exact whatever the
neuron, surrogate or time window.  It is exact only for the *first* layer when
that layer is fully connected (spec such as ``"32-10"``) and for one example's
gradient; on a later layer of an SNN it returns a time average of the spikes
weighted by :math:`\delta_t`, and on a gradient summed over a batch a mixture
of the inputs.

With ``n_rows > 1`` the rows with the largest :math:`|\partial L/\partial b_i|`
are combined by least squares,
:math:`x = \sum_i g_i G_i / \sum_i g_i^2` (``g = dL/db``, ``G_i`` row ``i`` of
``dL/dW``), which equals the single-row ratio when the gradient is exact and
averages noise when it is not (clipped and noised gradients).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from npdpsnn.audit._checks import check_int, float_array
from npdpsnn.errors import UserError

__all__ = ["FcInversion", "recover_fc_input"]


@dataclass(frozen=True)
class FcInversion:
    """Recovered inputs ``x`` -- ``(in_features,)`` for one gradient, ``(B, in_features)``
    for per-example gradients, reshaped to ``input_shape`` when given -- and the
    rows of the layer used for each example (``(n_rows,)`` or ``(B, n_rows)``)."""

    x: np.ndarray
    rows: np.ndarray


def recover_fc_input(grads, layer: str = "fc1", *, n_rows: int = 1, input_shape: tuple[int, ...] | None = None
                     ) -> FcInversion:
    """Recover the input of fully connected ``layer`` from its weight and bias gradients.

    ``grads`` maps ``"<layer>.weight"`` (``(out, in)`` or per example ``(B, out, in)``)
    and ``"<layer>.bias"`` (``(out,)`` or ``(B, out)``) to arrays, as the ``grads`` of
    :meth:`npdpsnn.Network.per_example_grads` (the returned tuple is accepted too).
    """
    mapping = grads.grads if hasattr(grads, "grads") and isinstance(grads.grads, Mapping) else grads
    if not isinstance(mapping, Mapping):
        raise UserError("grads must map parameter names such as 'fc1.weight' to arrays")
    w_name, b_name = f"{layer}.weight", f"{layer}.bias"
    missing = [n for n in (w_name, b_name) if n not in mapping]
    if missing:
        raise UserError(f"grads lack {', '.join(missing)}; they hold {', '.join(map(str, mapping))}")
    gw = float_array(mapping[w_name], w_name)
    gb = float_array(mapping[b_name], b_name)
    single = gw.ndim == 2
    if single:
        gw, gb = gw[None], gb[None]
    if gw.ndim != 3 or gb.shape != gw.shape[:2]:
        raise UserError(f"{w_name} must be (out, in) or (B, out, in) with {b_name} (out,) or (B, out); got "
                        f"{mapping[w_name].shape} and {mapping[b_name].shape} (is {layer} fully connected?)")
    k = check_int(n_rows, "n_rows", minimum=1)
    if k > gw.shape[1]:
        raise UserError(f"n_rows = {k} exceeds the {gw.shape[1]} rows of {layer}")
    x, rows = _recover(gw, gb, k)
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if int(np.prod(shape)) != x.shape[1]:
            raise UserError(f"input_shape {shape} does not hold the {x.shape[1]} inputs of {layer}")
        x = x.reshape((x.shape[0],) + shape)
    return FcInversion(x=x[0] if single else x, rows=rows[0] if single else rows)


# --------------------------------------------------------------------------


def _recover(gw: np.ndarray, gb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Least squares over the ``k`` rows of largest |dL/db| of each example."""
    rows = np.argsort(-np.abs(gb), axis=1, kind="stable")[:, :k]
    g = np.take_along_axis(gb, rows, axis=1)  # (B, k)
    dead = np.flatnonzero(g[:, 0] == 0.0)
    if dead.size:
        raise UserError(f"the bias gradient of example(s) {dead[:10].tolist()} is zero: nothing to recover")
    w_rows = np.take_along_axis(gw, rows[:, :, None], axis=1)  # (B, k, in)
    if k == 1:
        return w_rows[:, 0, :] / g, rows
    x = np.einsum("bk,bki->bi", g, w_rows) / np.sum(g * g, axis=1)[:, None]
    return x, rows
