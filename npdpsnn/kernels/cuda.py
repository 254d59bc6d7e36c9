"""numba.cuda backend: the functions :mod:`npdpsnn.kernels.dispatch` calls for
``backend="cuda"``, plus device-resident data for training loops.

Importing this module does not import ``numba.cuda``; the kernels
(:mod:`npdpsnn.kernels.cuda_kernels`) are imported and compiled on first use, so
the CPU package works where CUDA is absent.  Under ``NUMBA_ENABLE_CUDASIM=1``
(set before numba is imported) the same code runs in Numba's CUDA simulator.

Design (see ``cuda_kernels.py`` for the kernels):

* one thread block per example (grid = batch size), ``threads_per_block()``
  threads over the outputs / weights / inputs of each layer;
* per-example scratch (BPTT activations, membranes, gradients, ``B x P``
  float32 gradients) in global memory, allocated once per model shape and
  batch capacity and reused by later calls (:class:`_Workspace`); batches
  above ``WORKSPACE_BYTES`` (``NPDPSNN_CUDA_WORKSPACE_MB``, default 4096) run
  in chunks with the same results;
* flat clipping: each block reduces its gradient's squared norm in float64 in
  shared memory (fixed tree), then ``clipped_sum_kernel`` sums
  ``scale_i * g_i`` over the batch in float64, one thread per parameter,
  examples in order: a deterministic two-stage reduction, no atomics;
* only the parameters (two ``P`` float32 vectors), the batch (or, with
  :func:`to_device` data, only the batch indices) go up; only the metrics and
  the ``P`` float64 sum come back.

``LAUNCHES`` counts kernel launches (tests use it to prove the CUDA path ran).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter, OrderedDict

import numpy as np

from npdpsnn.errors import BackendError

LAUNCHES: Counter = Counter()
"""Kernel launches by name: ``example`` (per-example kernel), ``sum`` (clipped sum)."""

_DEFAULT_THREADS = 256
_threads = None


def threads_per_block() -> int:
    """Threads per example block (``NPDPSNN_CUDA_THREADS``, default 256)."""
    global _threads
    if _threads is None:
        set_threads_per_block(int(os.environ.get("NPDPSNN_CUDA_THREADS", _DEFAULT_THREADS)))
    return _threads


def set_threads_per_block(n: int) -> None:
    global _threads
    if not 1 <= int(n) <= 1024:
        raise BackendError(f"threads per block must be in 1..1024, got {n}")
    _threads = int(n)


_K = None


def _kernels():
    """The compiled kernels module (imports ``numba.cuda`` on first call)."""
    global _K
    if _K is None:
        from npdpsnn.kernels import dispatch

        reason = dispatch._cuda_unavailable_reason()
        if reason:
            raise BackendError(f"CUDA backend: {reason}")
        from npdpsnn.kernels import cuda_kernels

        _K = cuda_kernels
    return _K


def _cuda():
    """``numba.cuda``, after checking that CUDA (or the simulator) is usable."""
    _kernels()
    from numba import cuda

    return cuda


# ------------------------------------------------------------------ device data
class DeviceData:
    """Images ``(N, H*W*C)`` float32 (kernel layout) and labels ``(N,)`` int64 on
    the device; batches are then picked by index without copying images."""

    def __init__(self, xk: np.ndarray, y: np.ndarray | None = None):
        cuda = _cuda()
        xk = np.ascontiguousarray(xk, dtype=np.float32)
        if xk.ndim != 2:
            raise ValueError("xk must be (N, H*W*C)")
        self.n, self.in_size = xk.shape
        y = np.zeros(self.n, np.int64) if y is None else np.ascontiguousarray(y, dtype=np.int64)
        if y.shape != (self.n,):
            raise ValueError("y must be (N,)")
        self.x = cuda.to_device(xk)
        self.y = cuda.to_device(y)


_DATA_CACHE: OrderedDict = OrderedDict()
_DATA_CACHE_SIZE = 2


def _array_key(a: np.ndarray):
    return (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)


def to_device(xk: np.ndarray, y: np.ndarray | None = None) -> DeviceData:
    """Device copy of a data set, cached: the same host arrays (same buffer,
    shape, strides, dtype) give the same :class:`DeviceData` without a new
    upload.  The cache holds the host arrays and the last two data sets; a host
    array modified in place after upload is not noticed (call
    :func:`clear_device_cache`)."""
    key = (_array_key(xk), None if y is None else _array_key(y))
    hit = _DATA_CACHE.get(key)
    if hit is not None and hit[0] is xk and hit[1] is y:
        _DATA_CACHE.move_to_end(key)
        return hit[2]
    data = DeviceData(xk, y)
    _DATA_CACHE[key] = (xk, y, data)
    while len(_DATA_CACHE) > _DATA_CACHE_SIZE:
        _DATA_CACHE.popitem(last=False)
    return data


def clear_device_cache() -> None:
    """Free cached device data and workspaces."""
    _DATA_CACHE.clear()
    _WORKSPACES.clear()
    _TABLES.clear()


# ------------------------------------------------------------------ workspaces
class _Workspace:
    """Per-example device buffers for up to ``cap`` examples of one model shape."""

    def __init__(self, prog, T: int, cap: int):
        cuda = _cuda()
        self.cap = cap
        self.acts = cuda.device_array((cap, T * prog.act_size), np.float32)
        self.arg = cuda.device_array((cap, T * prog.act_size), np.int32)
        self.vm = cuda.device_array((cap, T * prog.v_size), np.float32)
        self.ga = cuda.device_array((cap, T * prog.max_size), np.float32)
        self.gb = cuda.device_array((cap, T * prog.max_size), np.float32)
        self.asum = cuda.device_array((cap, prog.max_size), np.float64)
        self.lg = cuda.device_array((cap, prog.n_classes), np.float64)
        self.grads = cuda.device_array((cap, prog.n_params), np.float32)
        self.losses = cuda.device_array(cap, np.float64)
        self.norms = cuda.device_array(cap, np.float64)
        self.scales = cuda.device_array(cap, np.float64)
        self.correct = cuda.device_array(cap, np.int8)
        self.total = cuda.device_array(prog.n_params, np.float64)
        self.theta_f = cuda.device_array(prog.n_params, np.float32)
        self.theta_b = cuda.device_array(prog.n_params, np.float32)
        self.iota = cuda.to_device(np.arange(cap, dtype=np.int64))


_WORKSPACES: dict = {}
_TABLES: dict = {}


def _workspace(prog, T: int, B: int) -> _Workspace:
    key = (prog.act_size, prog.v_size, prog.max_size, prog.n_params, prog.n_classes, T)
    ws = _WORKSPACES.get(key)
    if ws is None or ws.cap < B:
        _WORKSPACES.pop(key, None)  # free the smaller one first
        ws = _WORKSPACES[key] = _Workspace(prog, T, max(B, 1))
    return ws


def _table(prog):
    key = prog.table.tobytes()
    t = _TABLES.get(key)
    if t is None:
        t = _TABLES[key] = _cuda().to_device(np.ascontiguousarray(prog.table, dtype=np.int64))
    return t


# ------------------------------------------------------------------ launcher
WORKSPACE_BYTES = int(os.environ.get("NPDPSNN_CUDA_WORKSPACE_MB", 4096)) * 2**20
"""Device memory for per-example buffers; larger batches run in chunks."""


def _bytes_per_example(prog, T: int) -> int:
    f32 = 2 * T * prog.act_size + T * prog.v_size + 2 * T * prog.max_size + prog.n_params
    return 4 * f32 + 4 * T * prog.act_size + 8 * (prog.max_size + prog.n_classes + 3) + 1


def _run(prog, cfg, kparams, X, Y, idx, B: int, mode: int, clip: float):
    """Run the example kernel on the ``B`` examples ``X[idx]`` (``X[:B]`` when
    ``idx`` is None), device arrays; yields ``(lo, hi, workspace)`` after the
    launch for examples ``lo:hi`` (chunks of at most ``WORKSPACE_BYTES``), whose
    results are in the workspace's rows ``< hi - lo`` until the next chunk."""
    from npdpsnn.kernels import dispatch

    K = _kernels()
    T, leak, th, surr, detach, ann = dispatch._scalars(cfg)
    theta_f, theta_b = kparams[0], kparams[1]  # (forward, backward[, ...]) layouts
    if theta_f.shape != (prog.n_params,) or theta_b.shape != (prog.n_params,):
        raise ValueError(f"parameters must have shape ({prog.n_params},)")
    n = max(1, min(B, WORKSPACE_BYTES // _bytes_per_example(prog, T)))
    ws = _workspace(prog, T, n)
    ws.theta_f.copy_to_device(np.ascontiguousarray(theta_f, dtype=np.float32))
    ws.theta_b.copy_to_device(np.ascontiguousarray(theta_b, dtype=np.float32))
    example_kernel, _ = K.kernels_for(T)
    nt = threads_per_block()
    table = _table(prog)
    for lo in range(0, B, n):
        hi = min(B, lo + n)
        if idx is None:
            Xc, Yc, ic = (X, Y, ws.iota) if lo == 0 else (X[lo:hi], Y[lo:hi], ws.iota)
        else:
            Xc, Yc, ic = X, Y, (idx if hi - lo == B else idx[lo:hi])
        with warnings.catch_warnings():  # small batches: Numba's low-occupancy warning is expected
            warnings.simplefilter("ignore", _perf_warning())
            example_kernel[hi - lo, nt](
                table, ws.theta_f, ws.theta_b, Xc, Yc, ic, np.float32(leak), np.float32(th),
                np.int64(surr), bool(detach), bool(ann), np.int64(prog.act_size), np.int64(prog.v_size),
                np.int64(prog.max_size), np.int64(mode), np.float64(clip), ws.acts, ws.vm, ws.arg, ws.ga, ws.gb,
                ws.asum, ws.lg, ws.grads, ws.losses, ws.norms, ws.scales, ws.correct,
            )
        LAUNCHES["example"] += 1
        yield lo, hi, ws


def _launch(prog, cfg, kparams, X, Y, idx, B: int, mode: int, clip: float) -> _Workspace:
    """One launch on ``B`` examples (``B`` within the workspace budget); the
    results stay in the returned workspace (for benchmarks)."""
    ws = None
    for lo, hi, ws in _run(prog, cfg, kparams, X, Y, idx, B, mode, clip):
        if hi < B:
            raise ValueError("batch larger than the workspace budget")
    return ws


def _perf_warning():
    from numba.core.errors import NumbaPerformanceWarning

    return NumbaPerformanceWarning


def _is_host(a) -> bool:
    """Host data (anything but a numba device array, which is passed through)."""
    return not hasattr(a, "copy_to_host")


def _upload(xk, y, in_size: int):
    """Device arrays for a host batch (or pass device arrays through)."""
    cuda = _cuda()
    if _is_host(xk):
        xk = np.ascontiguousarray(xk, dtype=np.float32)
        if xk.ndim != 2 or xk.shape[1] != in_size:
            raise ValueError(f"xk must be (B, {in_size})")
        xk = cuda.to_device(xk)
    if y is None:
        y = cuda.device_array(xk.shape[0], np.int64)
    elif _is_host(y):
        y = cuda.to_device(np.ascontiguousarray(y, dtype=np.int64))
    return xk, y


def _sum(prog, ws: _Workspace, B: int, resume: bool = False):
    """``ws.total (+)= sum_{i<B} scales[i] * grads[i]`` on the device (float64,
    examples in order; ``resume`` continues the previous chunk's total)."""
    K = _kernels()
    P = prog.n_params
    nt = 256
    with warnings.catch_warnings():  # P / threads blocks: the low-occupancy warning is expected
        warnings.simplefilter("ignore", _perf_warning())
        K.clipped_sum_kernel[(P + nt - 1) // nt, nt](ws.grads, ws.scales, np.int64(B), ws.total, bool(resume))
    LAUNCHES["sum"] += 1


def _logits(runs, B: int, n_classes: int) -> np.ndarray:
    out = np.empty((B, n_classes), np.float64)
    for lo, hi, ws in runs:
        out[lo:hi] = ws.lg[: hi - lo].copy_to_host()
    return out


def _clipped(prog, runs, B: int):
    """Clipped sum, norms, losses, correctness; over chunks the device sum
    resumes from the previous chunk's total (the same bits as one launch)."""
    norms = np.empty(B, np.float64)
    losses = np.empty(B, np.float64)
    correct = np.empty(B, np.int8)
    ws = None
    for lo, hi, ws in runs:
        n = hi - lo
        _sum(prog, ws, n, resume=lo > 0)
        norms[lo:hi] = ws.norms[:n].copy_to_host()
        losses[lo:hi] = ws.losses[:n].copy_to_host()
        correct[lo:hi] = ws.correct[:n].copy_to_host()
    total = np.zeros(prog.n_params, np.float64) if ws is None else ws.total.copy_to_host()
    return total, norms, losses, correct


def _check_clip(clip: float) -> float:
    clip = float(clip)
    if not clip > 0:
        raise ValueError(f"clipping norm must be > 0, got {clip}")
    return clip


# ------------------------------------------------------------------ backend API
def forward(prog, cfg, kparams, xk) -> np.ndarray:
    """Logits ``(B, classes)`` float64."""
    B = int(xk.shape[0])
    if B == 0:
        return np.zeros((0, prog.n_classes), np.float64)
    X, Y = _upload(xk, None, prog.in_size)
    return _logits(_run(prog, cfg, kparams, X, Y, None, B, 0, np.inf), B, prog.n_classes)


def per_example_grads(prog, cfg, kparams, xk, y):
    """``(grads (B, P) float32 forward kernel layout, losses (B,) float64)``."""
    B = int(xk.shape[0])
    grads = np.empty((B, prog.n_params), np.float32)
    losses = np.empty(B, np.float64)
    if B == 0:
        return grads, losses
    X, Y = _upload(xk, y, prog.in_size)
    for lo, hi, ws in _run(prog, cfg, kparams, X, Y, None, B, 1, np.inf):
        grads[lo:hi] = ws.grads[: hi - lo].copy_to_host()
        losses[lo:hi] = ws.losses[: hi - lo].copy_to_host()
    return grads, losses


def clipped_sum(prog, cfg, kparams, xk, y, clip: float):
    """``(sum_i clip(g_i) (P,) float64 kernel layout, norms (B,), losses (B,), correct (B,) int8)``."""
    clip = _check_clip(clip)
    B = int(xk.shape[0])
    if B == 0:
        return _clipped(prog, (), 0)
    X, Y = _upload(xk, y, prog.in_size)
    return _clipped(prog, _run(prog, cfg, kparams, X, Y, None, B, 2, clip), B)


def _indices(data: DeviceData, idx) -> object:
    cuda = _cuda()
    if not _is_host(idx):
        return idx
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= data.n)):
        raise IndexError(f"batch indices must be a 1-d array in [0, {data.n})")
    return cuda.to_device(idx)


def _check_data(prog, data: DeviceData) -> None:
    if data.in_size != prog.in_size:
        raise ValueError(f"data has {data.in_size} features per example, the network expects {prog.in_size}")


def clipped_sum_indexed(prog, cfg, kparams, data: DeviceData, idx, clip: float):
    """:func:`clipped_sum` of the examples ``idx`` of device data (see
    :func:`to_device`): only the indices and parameters are uploaded."""
    clip = _check_clip(clip)
    B = int(len(idx))
    if B == 0:
        return _clipped(prog, (), 0)
    _check_data(prog, data)
    return _clipped(prog, _run(prog, cfg, kparams, data.x, data.y, _indices(data, idx), B, 2, clip), B)


def forward_indexed(prog, cfg, kparams, data: DeviceData, idx) -> np.ndarray:
    """:func:`forward` of the examples ``idx`` of device data."""
    B = int(len(idx))
    if B == 0:
        return np.zeros((0, prog.n_classes), np.float64)
    _check_data(prog, data)
    return _logits(_run(prog, cfg, kparams, data.x, data.y, _indices(data, idx), B, 0, np.inf), B, prog.n_classes)
