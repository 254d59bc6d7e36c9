"""What a compute backend provides, and the named types of its results.

A backend (``reference``, ``numba``, ``cuda``; see :mod:`.backend` for the
registry) computes, for a model and a batch of images ``x`` ``(B, C, H, W)``:

* ``forward``: logits ``(B, classes)`` float64 (``sum_t I_out[t] / T``, eq. 7);
* ``per_example_grads``: :class:`Gradients` -- ``dL_i/dtheta`` ``(B, P)`` and the
  per-example cross-entropy;
* ``clipped_sum``: :class:`ClippedSum` -- ``sum_i g_i c_i`` with the flat clipping
  factor ``c_i = clip_factor(||g_i||, R)`` of :mod:`npdpsnn.privacy.mechanism`
  (eq. 11), float64;
* ``input_vjp``: ``dlogits^T dlogits/dx`` ``(B, C, H, W)`` for any upstream
  gradient ``dlogits`` ``(B, classes)``; with direct encoding the image enters
  every step, so ``dL/dx = sum_t dL/d(input of layer 0 at step t)``;
* ``input_grads``: :class:`Gradients` -- ``dL_i/dx_i`` of the cross-entropy;
* ``bind``: the data set on the backend's device (a :class:`BoundData`), then
  ``clipped_sum_indexed`` / ``forward_indexed`` on the examples ``idx`` of it.

Every parameter-shaped result is a flat vector in ``theta`` order (PyTorch
layouts, see :mod:`npdpsnn.model.params`), whatever the backend's own layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from npdpsnn.kernels.program import Program
from npdpsnn.model.config import ModelConfig
from npdpsnn.model.params import ParamSlot
from npdpsnn.model.spec import Layer


class Gradients(NamedTuple):
    """Per-example gradients -- ``(B, P)`` of the parameters, ``(B, C, H, W)`` of
    the input, or (``Network.per_example_grads``) a dict of named ``(B, *shape)``
    parameter gradients -- and the per-example cross-entropy ``losses`` ``(B,)``."""

    grads: np.ndarray | dict[str, np.ndarray]
    losses: np.ndarray


class ClippedSum(NamedTuple):
    """``total`` = ``sum_i c_i g_i`` ``(P,)`` float64 in ``theta`` order; the
    float64 per-example ``norms`` ``||g_i||``, ``losses``, and ``correct`` (int8,
    1 where ``argmax logits == y``)."""

    total: np.ndarray
    norms: np.ndarray
    losses: np.ndarray
    correct: np.ndarray


class Model(Protocol):
    """What a backend reads from a network (:class:`npdpsnn.network.Network`)."""

    layers: list[Layer]
    slots: list[ParamSlot]
    program: Program
    config: ModelConfig
    theta: np.ndarray
    params: Mapping[str, np.ndarray]
    input_shape: tuple[int, int, int]

    @property
    def num_classes(self) -> int: ...

    @property
    def num_params(self) -> int: ...


@runtime_checkable
class BoundData(Protocol):
    """A data set bound to a backend's device: ``n`` examples of ``input_shape``,
    labels between ``label_range[0]`` and ``label_range[1]``."""

    n: int
    input_shape: tuple[int, ...]
    label_range: tuple[int, int]


@runtime_checkable
class Backend(Protocol):
    """The compute interface (see the module docstring)."""

    name: str

    def forward(self, net: Model, x: np.ndarray) -> np.ndarray: ...

    def per_example_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients: ...

    def clipped_sum(self, net: Model, x: np.ndarray, y: np.ndarray, clip: float) -> ClippedSum: ...

    def input_vjp(self, net: Model, x: np.ndarray, dlogits: np.ndarray) -> np.ndarray: ...

    def input_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients: ...

    def bind(self, x, y: np.ndarray | None = None) -> BoundData: ...

    def clipped_sum_indexed(self, net: Model, data: BoundData, idx: np.ndarray, clip: float) -> ClippedSum: ...

    def forward_indexed(self, net: Model, data: BoundData, idx: np.ndarray) -> np.ndarray: ...
