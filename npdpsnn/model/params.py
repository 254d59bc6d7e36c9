"""Parameters: names, PyTorch layouts, one flat float32 vector, initialisation.

All parameters live in one contiguous float32 vector ``theta`` (flat clipping
and noise work on it directly); ``ParamDict`` exposes named views in PyTorch
layout -- conv weight ``(out, in, kh, kw)``, linear weight ``(out, in)`` with the
input flattened in ``(C, H, W)`` order -- named ``conv1.weight``, ``conv1.bias``,
..., ``fc1.weight``, ``fc2.bias`` in layer order.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.model.spec import Layer


@dataclass(frozen=True)
class ParamSlot:
    """Where one named parameter lives in the flat vector."""

    name: str
    shape: tuple[int, ...]
    offset: int
    layer_index: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def param_slots(layers: list[Layer], bias: bool = True) -> list[ParamSlot]:
    """Weight then bias (if ``bias``) of every conv/fc layer, in layer order."""
    slots: list[ParamSlot] = []
    off = 0
    for i, layer in enumerate(layers):
        if not layer.has_weights:
            continue
        parts = (("weight", layer.weight_shape), ("bias", (layer.out_shape[0],)))
        for suffix, shape in parts if bias else parts[:1]:
            slot = ParamSlot(f"{layer.name}.{suffix}", tuple(int(s) for s in shape), off, i)
            slots.append(slot)
            off += slot.size
    return slots


def kaiming_uniform_init(layers: list[Layer], slots: list[ParamSlot], seed: int, scale: float = 1.0) -> np.ndarray:
    """PyTorch's default initialisation of Conv2d/Linear, drawn from ``seed``,
    with every bound multiplied by ``scale`` (1: PyTorch's; ``optim.init_gain``).

    ``kaiming_uniform_(w, a=sqrt(5))`` gives ``w ~ U(-b, b)`` with
    ``b = gain * sqrt(3 / fan_in)``, ``gain = sqrt(2 / (1 + a^2)) = sqrt(1/3)``, so
    ``b = 1 / sqrt(fan_in)``; the bias is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    (torch.nn.Conv2d / Linear ``reset_parameters``).  Here ``b = scale / sqrt(fan_in)``
    for weights and biases alike, from the same draws (a scaled copy of the
    ``scale = 1`` parameters).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1417]))
    total = sum(s.size for s in slots)
    theta = np.empty(total, dtype=np.float32)
    for slot in slots:
        bound = float(scale) / np.sqrt(layers[slot.layer_index].fan_in)
        theta[slot.offset : slot.offset + slot.size] = rng.uniform(-bound, bound, slot.size)
    return theta


class ParamDict(MutableMapping):
    """Named views into a flat parameter vector.

    ``d[name][:] = value`` writes in place; ``d[name] = array`` copies ``array``
    into the view after checking its shape; names cannot be added or removed.
    """

    def __init__(self, theta: np.ndarray, slots: list[ParamSlot]):
        self._theta = theta
        self._slots = {s.name: s for s in slots}
        self._views = {
            s.name: theta[s.offset : s.offset + s.size].reshape(s.shape) for s in slots
        }

    def __getitem__(self, name: str) -> np.ndarray:
        return self._views[name]

    def __setitem__(self, name: str, value) -> None:
        if name not in self._views:
            raise KeyError(f"unknown parameter {name!r}; the network has {', '.join(self._views)}")
        arr = np.asarray(value)
        view = self._views[name]
        if arr.shape != view.shape:
            raise UserError(f"parameter {name!r} has shape {view.shape}, got an array of shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise UserError(f"parameter {name!r}: value contains NaN or infinity")
        view[...] = arr

    def __delitem__(self, name: str) -> None:
        raise TypeError("parameters cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v.shape}" for k, v in self._views.items())
        return f"ParamDict({inner})"
