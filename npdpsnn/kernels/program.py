"""The layer table the compiled kernels interpret, and kernel weight layouts.

Backends (Numba CPU, CUDA) run one generic per-example kernel that walks an
integer table with one row per layer.  Activations are stored channel-last
(``H, W, C`` flattened) so that the innermost loops run over contiguous output
channels; weights are re-laid out accordingly:

* conv ``(O, C, k, k)`` -> ``(C, k, k, O)``
* fc   ``(O, C*H*W)`` in PyTorch's ``(C, H, W)`` flatten order -> ``(H*W*C, O)``

The input-gradient loops use a second, "backward" layout so that they too run
over contiguous channels without reordering any floating-point sum:

* conv ``(O, C, k, k)`` -> ``(k, k, O, C)``;  fc -> ``(O, H*W*C)``

:func:`to_kernel_layout` / :func:`from_kernel_layout` convert a flat parameter
vector (or a batch of them) between the PyTorch layout and this one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdpsnn.model.params import ParamSlot
from npdpsnn.model.spec import Layer

# Layer kinds in the table.
CONV, FC, MAXPOOL, AVGPOOL = 0, 1, 2, 3
_KIND = {"conv": CONV, "fc": FC, "maxpool": MAXPOOL, "avgpool": AVGPOOL}

# Columns of the table.
(KIND, IN_C, IN_H, IN_W, OUT_C, OUT_H, OUT_W, K, STRIDE, PAD, W_OFF, B_OFF, IN_OFF, OUT_OFF, HIDDEN, V_OFF) = range(16)
N_COLS = 16


@dataclass(frozen=True)
class Program:
    """Table plus buffer sizes, per example: ``act_size`` floats per time step
    (all layer outputs), ``v_size`` membrane floats per step, ``max_size`` the
    largest layer input/output (gradient scratch)."""

    table: np.ndarray
    n_params: int
    in_size: int
    act_size: int
    v_size: int
    max_size: int
    n_classes: int
    col_size: int = 1  # largest im2col matrix (output positions x C*k*k) of a conv layer
    wmat_size: int = 1  # largest conv weight matrix C*k*k x O
    col_offsets: np.ndarray | None = None  # per layer: offset of its im2col matrix in a step's cache (-1: none)
    col_total: int = 1  # im2col floats of all conv layers, per time step


def build_program(layers: list[Layer], slots: list[ParamSlot]) -> Program:
    table = np.zeros((len(layers), N_COLS), dtype=np.int64)
    offs = {s.name: s.offset for s in slots}
    act_off = v_off = 0
    in_off = -1  # the first layer reads the input image
    max_size = layers[0].in_size
    col_size = wmat_size = 1
    col_offsets = np.full(len(layers), -1, dtype=np.int64)
    col_total = 0
    for i, layer in enumerate(layers):
        if layer.kind == "conv":
            kk = layer.fan_in
            n = layer.out_shape[1] * layer.out_shape[2] * kk
            col_size = max(col_size, n)
            wmat_size = max(wmat_size, kk * layer.out_shape[0])
            col_offsets[i] = col_total
            col_total += n
        row = table[i]
        row[KIND] = _KIND[layer.kind]
        row[IN_C], row[IN_H], row[IN_W] = layer.in_shape
        row[OUT_C], row[OUT_H], row[OUT_W] = layer.out_shape
        if layer.kind == "fc":  # an fc layer reads its input as one flat vector
            row[IN_C], row[IN_H], row[IN_W] = layer.in_size, 1, 1
        row[K], row[STRIDE], row[PAD] = layer.kernel, layer.stride, layer.padding
        row[W_OFF] = offs.get(f"{layer.name}.weight", -1)
        row[B_OFF] = offs.get(f"{layer.name}.bias", -1)
        row[IN_OFF] = in_off
        row[OUT_OFF] = act_off
        hidden = layer.has_weights and i < len(layers) - 1
        row[HIDDEN] = 1 if hidden else 0
        row[V_OFF] = v_off if hidden else -1
        if hidden:
            v_off += layer.out_size
        in_off = act_off
        act_off += layer.out_size
        max_size = max(max_size, layer.out_size)
    return Program(table, sum(s.size for s in slots), layers[0].in_size, act_off, max(v_off, 1), max_size,
                   layers[-1].out_shape[0], col_size, wmat_size, col_offsets, max(col_total, 1))


def _weight_perm(layer: Layer, backward: bool = False):
    """(reshape-to, transpose axes) taking the PyTorch weight to kernel layout."""
    if layer.kind == "conv":
        return layer.weight_shape, ((2, 3, 0, 1) if backward else (1, 2, 3, 0))
    c, h, w = layer.in_shape
    return (layer.out_shape[0], c, h, w), ((0, 2, 3, 1) if backward else (2, 3, 1, 0))


def kernel_params(theta: np.ndarray, layers: list[Layer], slots: list[ParamSlot]):
    """``(forward, backward, pytorch)`` layouts of ``theta`` (float32, contiguous).

    The PyTorch layout of a conv weight, ``(O, C*k*k)``, is the matrix that the
    GEMM form of the input gradient needs (``dcols = g @ W``).
    """
    theta = np.ascontiguousarray(theta, dtype=np.float32)
    return (to_kernel_layout(theta, layers, slots), to_kernel_layout(theta, layers, slots, backward=True), theta)


def to_kernel_layout(theta: np.ndarray, layers: list[Layer], slots: list[ParamSlot],
                     backward: bool = False) -> np.ndarray:
    """Flat PyTorch-layout vector(s) ``(..., P)`` -> kernel layout, same shape."""
    out = np.empty_like(theta)
    lead = theta.shape[:-1]
    for slot in slots:
        src = theta[..., slot.offset : slot.offset + slot.size]
        if slot.name.endswith(".bias"):
            out[..., slot.offset : slot.offset + slot.size] = src
            continue
        shape, axes = _weight_perm(layers[slot.layer_index], backward)
        arr = src.reshape(*lead, *shape).transpose(*range(len(lead)), *(len(lead) + a for a in axes))
        out[..., slot.offset : slot.offset + slot.size] = arr.reshape(*lead, slot.size)
    return out


def from_kernel_layout(theta_k: np.ndarray, layers: list[Layer], slots: list[ParamSlot]) -> np.ndarray:
    """Inverse of :func:`to_kernel_layout`."""
    out = np.empty_like(theta_k)
    lead = theta_k.shape[:-1]
    for slot in slots:
        src = theta_k[..., slot.offset : slot.offset + slot.size]
        if slot.name.endswith(".bias"):
            out[..., slot.offset : slot.offset + slot.size] = src
            continue
        shape, axes = _weight_perm(layers[slot.layer_index])
        kshape = tuple(shape[a] for a in axes)
        inv = tuple(np.argsort(axes))
        arr = src.reshape(*lead, *kshape).transpose(*range(len(lead)), *(len(lead) + a for a in inv))
        out[..., slot.offset : slot.offset + slot.size] = arr.reshape(*lead, slot.size)
    return out


def images_to_kernel_layout(x: np.ndarray) -> np.ndarray:
    """``(B, C, H, W)`` -> ``(B, H*W*C)`` float32, channel-last."""
    b, c, h, w = x.shape
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)).reshape(b, h * w * c), dtype=np.float32)
