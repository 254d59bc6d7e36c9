"""The layer table the compiled kernels interpret, and kernel weight layouts.

Backends (Numba CPU, CUDA) run one generic per-example kernel that walks an
integer table with one row per layer.  Activations are stored channel-last
(``H, W, C`` flattened) so that the innermost loops run over contiguous output
channels; weights are re-laid out accordingly (``_PERMS`` below):

* CUDA: forward conv ``(C, k, k, O)``, fc ``(H*W*C, O)`` (PyTorch's fc input is
  flattened ``(C, H, W)``); backward conv ``(k, k, O, C)``, fc ``(O, H*W*C)``.
* CPU (im2col + GEMM): forward conv ``(k, k, C, O)``, backward ``(O, k, k, C)``;
  fc as CUDA.  Gradients come out in the forward layout of each backend.

:func:`to_layout` / :func:`from_layout` convert a flat parameter vector (or a
batch of them) between the PyTorch layout and a named one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdpsnn.model.config import ModelConfig
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


# Weight layouts, as transposes of the PyTorch weight viewed as conv (O, C, k, k) or
# fc (O, C, H, W): "forward"/"backward" are the CUDA kernels' layouts; the CPU kernels
# order a conv patch as (ky, kx, c) so that im2col copies contiguous channels.
_PERMS = {
    "forward": {"conv": (1, 2, 3, 0), "fc": (2, 3, 1, 0)},  # (C,k,k,O), (H,W,C,O)
    "backward": {"conv": (2, 3, 0, 1), "fc": (0, 2, 3, 1)},  # (k,k,O,C), (O,H,W,C)
    "cpu_forward": {"conv": (2, 3, 1, 0), "fc": (2, 3, 1, 0)},  # (k,k,C,O), (H,W,C,O)
    "cpu_backward": {"conv": (0, 2, 3, 1), "fc": (0, 2, 3, 1)},  # (O,k,k,C), (O,H,W,C)
}


def _weight_perm(layer: Layer, layout: str):
    """(PyTorch shape, transpose axes) taking the weight to ``layout``."""
    if layer.kind == "conv":
        return layer.weight_shape, _PERMS[layout]["conv"]
    c, h, w = layer.in_shape
    return (layer.out_shape[0], c, h, w), _PERMS[layout]["fc"]


def kernel_params(theta: np.ndarray, layers: list[Layer], slots: list[ParamSlot]):
    """``(forward, backward)`` layouts of ``theta`` for the CUDA kernels (float32)."""
    theta = np.ascontiguousarray(theta, dtype=np.float32)
    return to_layout(theta, layers, slots, "forward"), to_layout(theta, layers, slots, "backward")


def cpu_kernel_params(theta: np.ndarray, layers: list[Layer], slots: list[ParamSlot]):
    """``(cpu_forward, cpu_backward)`` layouts of ``theta`` for the CPU kernels
    (one gather each, :func:`layout_index`)."""
    theta = np.ascontiguousarray(theta, dtype=np.float32)
    return theta[layout_index(layers, slots, "cpu_forward")], theta[layout_index(layers, slots, "cpu_backward")]


_LAYOUT_INDEX: dict = {}


def layout_index(layers: list[Layer], slots: list[ParamSlot], layout: str) -> np.ndarray:
    """The permutation of ``layout``: ``to_layout(theta)[..., k] == theta[..., idx[k]]``
    and ``from_layout(a)[..., idx] == a``.  Computed once per network structure (a
    gather replaces the per-slot transposes of every call: the DP step calls it
    twice per step)."""
    key = (layout, tuple((s.name, s.shape, s.offset, s.layer_index) for s in slots),
           tuple((l.kind, tuple(l.in_shape), tuple(l.out_shape), l.kernel) for l in layers))
    idx = _LAYOUT_INDEX.get(key)
    if idx is None:
        n = slots[-1].offset + slots[-1].size if slots else 0
        idx = to_layout(np.arange(n, dtype=np.int64), layers, slots, layout)
        if len(_LAYOUT_INDEX) > 64:  # a bound for programs that build many networks
            _LAYOUT_INDEX.clear()
        _LAYOUT_INDEX[key] = idx
    return idx


def from_cpu_layout(theta_k: np.ndarray, layers: list[Layer], slots: list[ParamSlot]) -> np.ndarray:
    """Inverse of the ``cpu_forward`` layout (the CPU kernels' gradients), for ``(..., P)``."""
    out = np.empty_like(theta_k)
    out[..., layout_index(layers, slots, "cpu_forward")] = theta_k
    return out


def to_layout(theta: np.ndarray, layers: list[Layer], slots: list[ParamSlot], layout: str) -> np.ndarray:
    """Flat PyTorch-layout vector(s) ``(..., P)`` -> ``layout``, same shape."""
    out = np.empty_like(theta)
    lead = theta.shape[:-1]
    for slot in slots:
        src = theta[..., slot.offset : slot.offset + slot.size]
        if slot.name.endswith(".bias"):
            out[..., slot.offset : slot.offset + slot.size] = src
            continue
        shape, axes = _weight_perm(layers[slot.layer_index], layout)
        arr = src.reshape(*lead, *shape).transpose(*range(len(lead)), *(len(lead) + a for a in axes))
        out[..., slot.offset : slot.offset + slot.size] = arr.reshape(*lead, slot.size)
    return out


def from_layout(theta_k: np.ndarray, layers: list[Layer], slots: list[ParamSlot], layout: str) -> np.ndarray:
    """Inverse of :func:`to_layout`."""
    out = np.empty_like(theta_k)
    lead = theta_k.shape[:-1]
    for slot in slots:
        src = theta_k[..., slot.offset : slot.offset + slot.size]
        if slot.name.endswith(".bias"):
            out[..., slot.offset : slot.offset + slot.size] = src
            continue
        shape, axes = _weight_perm(layers[slot.layer_index], layout)
        kshape = tuple(shape[a] for a in axes)
        inv = tuple(np.argsort(axes))
        arr = src.reshape(*lead, *kshape).transpose(*range(len(lead)), *(len(lead) + a for a in inv))
        out[..., slot.offset : slot.offset + slot.size] = arr.reshape(*lead, slot.size)
    return out


def to_kernel_layout(theta: np.ndarray, layers: list[Layer], slots: list[ParamSlot],
                     backward: bool = False) -> np.ndarray:
    """PyTorch layout -> the CUDA kernels' forward (or backward) layout."""
    return to_layout(theta, layers, slots, "backward" if backward else "forward")


def from_kernel_layout(theta_k: np.ndarray, layers: list[Layer], slots: list[ParamSlot]) -> np.ndarray:
    """The CUDA kernels' forward layout -> PyTorch layout."""
    return from_layout(theta_k, layers, slots, "forward")


def images_to_kernel_layout(x: np.ndarray) -> np.ndarray:
    """``(B, C, H, W)`` -> ``(B, H*W*C)`` float32, channel-last."""
    b, c, h, w = x.shape
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)).reshape(b, h * w * c), dtype=np.float32)


def images_from_kernel_layout(xk: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`images_to_kernel_layout`: ``(B, H*W*C)`` -> ``(B, C, H, W)``."""
    c, h, w = shape
    return np.ascontiguousarray(np.transpose(xk.reshape(len(xk), h, w, c), (0, 3, 1, 2)))


_POISSON_WHY = "its kernels compute layer 0's current once per example, from the analog image"


def unsupported_options(cfg: ModelConfig) -> list[str]:
    """The options of ``cfg`` that the compiled kernels (Numba CPU, CUDA) do not
    compute: only the reference backend runs them.

    Both compute the ReLU ANN, reset by subtraction (with or without
    ``detach_reset``), per-layer thresholds and bias-free layers.  Poisson input
    stays in the reference backend: the kernels compute layer 0's current once
    per example from the analog image (direct encoding), and their input
    gradients rely on it."""
    return [f"encoding={cfg.encoding}"] if cfg.encoding != "direct" else []


@dataclass(frozen=True)
class KernelOptions:
    """The model options as the compiled kernels take them (:func:`kernel_options`)."""

    steps: int
    leak: np.float32
    thresholds: np.ndarray  # float32, one per table row: V_th of the hidden weight layers, 0 elsewhere
    surrogate: int
    detach_reset: bool
    ann: bool
    activation: int  # npdpsnn.model.neurons.TANH / RELU
    reset: int  # npdpsnn.model.neurons.RESET_ZERO / RESET_SUBTRACT


def kernel_options(cfg: ModelConfig, table: np.ndarray, backend: str) -> KernelOptions:
    """The options of ``cfg`` as the kernels of ``backend`` (``numba``, ``cuda``)
    take them, for the layer table ``table`` (:func:`build_program`).

    Refuses (one :class:`~npdpsnn.errors.UserError`) the options the kernels do
    not compute (:func:`unsupported_options`) rather than ignore them."""
    missing = unsupported_options(cfg)
    if missing:
        from npdpsnn.errors import UserError

        raise UserError(f"the {backend} backend does not support {', '.join(missing)} yet ({_POISSON_WHY}); "
                        f"use the reference backend (backend='reference')")
    return _kernel_options(cfg, table)


def _kernel_options(cfg: ModelConfig, table: np.ndarray) -> KernelOptions:
    """:func:`kernel_options` without the check; ``thresholds[l]`` is the float32
    ``V_th`` of table row ``l`` (:meth:`ModelConfig.layer_thresholds` over the
    hidden weight layers in order, 0 for the other rows)."""
    hidden = np.flatnonzero(table[:, HIDDEN])
    ths = np.zeros(table.shape[0], np.float32)
    ths[hidden] = np.asarray(cfg.layer_thresholds(len(hidden)), np.float64)
    return KernelOptions(cfg.steps, np.float32(cfg.effective_leak), ths, cfg.surrogate_id, bool(cfg.detach_reset),
                         cfg.kind == "ann", cfg.activation_id, cfg.reset_id)
