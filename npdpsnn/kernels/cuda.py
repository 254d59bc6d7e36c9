"""The ``cuda`` backend: numba.cuda kernels (:mod:`.cuda_kernels`) behind the
:class:`~npdpsnn.kernels.protocol.Backend` interface.

Importing this module does not import ``numba.cuda``: :func:`cuda_unavailable_reason`
(the one availability check) and the kernels import it on first use, so the CPU
package works where CUDA is absent.  Under ``NUMBA_ENABLE_CUDASIM=1`` (set before
numba is imported) the same code runs in Numba's CUDA simulator.

Design (see ``cuda_kernels.py`` for the kernels):

* one thread block per example (grid = batch size), ``engine.cuda_threads``
  threads over the outputs / weights / inputs of each layer;
* per-example scratch (BPTT activations, membranes, gradients, ``B x P``
  float32 gradients) in global memory, allocated once per model shape and
  batch capacity and reused by later calls (:class:`_Workspace`); batches
  above the engine's ``cuda_workspace_bytes`` run in chunks with the same
  results;
* flat clipping: each block reduces its gradient's squared norm in float64 in
  shared memory (fixed tree), then ``clipped_sum_kernel`` sums
  ``scale_i * g_i`` over the batch in float64, one thread per parameter,
  examples in order: a deterministic two-stage reduction, no atomics;
* only the parameters (two ``P`` float32 vectors) and the batch (or, for data
  bound with :meth:`CudaBackend.bind`, only the batch indices) go up; only the
  metrics and the ``P`` float64 sum come back.

Workspaces, device tables, bound data and the launch counter belong to one
:class:`CudaBackend`, which belongs to one :class:`~npdpsnn.engine.Engine`.
"""

from __future__ import annotations

import warnings
from collections import Counter, OrderedDict

import numpy as np

from npdpsnn.engine import Engine
from npdpsnn.errors import BackendError
from npdpsnn.kernels.host import image_shape, label_range
from npdpsnn.kernels.program import (
    Program, from_layout, images_from_kernel_layout, images_to_kernel_layout, kernel_options, kernel_params,
)
from npdpsnn.kernels.protocol import ClippedSum, Gradients, Model
from npdpsnn.kernels.validate import check_bound, check_clip, check_dlogits, check_indices, check_labels

GRAD_LAYOUT = "forward"  # the layout of the kernels' gradients
UPLOAD_ROWS = 8192  # images converted and uploaded per piece by bind()


def cuda_unavailable_reason() -> str | None:
    """``None`` when CUDA kernels can run (a GPU, or the simulator), else why not."""
    try:
        from numba import cuda
    except Exception as exc:  # noqa: BLE001 - any import failure means no CUDA
        return f"numba.cuda cannot be imported ({exc})"
    try:
        if not cuda.is_available():
            return "no CUDA GPU or driver found"
    except Exception as exc:  # noqa: BLE001
        return f"CUDA is not usable ({str(exc).splitlines()[0]})"
    return None


def _perf_warning():
    from numba.core.errors import NumbaPerformanceWarning

    return NumbaPerformanceWarning


# ------------------------------------------------------------------ device data
class CudaData:
    """A data set bound to the GPU: images ``(N, H*W*C)`` float32 (kernel layout)
    and labels ``(N,)`` int64; batches are then picked by index without copying
    images."""

    def __init__(self, x, y=None):
        from numba import cuda

        self.input_shape = image_shape(x)
        self.n = len(x)
        y = check_labels(y, self.n)
        self.label_range = label_range(y)
        c, h, w = self.input_shape
        self.x = cuda.device_array((self.n, c * h * w), np.float32)
        for lo in range(0, self.n, UPLOAD_ROWS):  # never a float32 copy of the whole set on the host
            hi = min(self.n, lo + UPLOAD_ROWS)
            self.x[lo:hi].copy_to_device(images_to_kernel_layout(np.asarray(x[lo:hi])))
        self.y = cuda.to_device(y)

    def __repr__(self) -> str:
        return f"CudaData(n={self.n}, input_shape={self.input_shape})"


class _Workspace:
    """Per-example device buffers for up to ``cap`` examples of one model shape."""

    def __init__(self, prog: Program, T: int, cap: int):
        from numba import cuda

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
        self.no_dlogits = cuda.device_array((1, prog.n_classes), np.float64)
        self.no_dx = cuda.device_array((1, 1), np.float32)
        self._in_size = prog.in_size
        self._dlogits = self._dx = None

    def input_buffers(self):
        """``(dlogits (cap, classes) float64, dx (cap, in_size) float32)``, made on
        first use (training never needs them)."""
        if self._dx is None:
            from numba import cuda

            self._dlogits = cuda.device_array(self.lg.shape, np.float64)
            self._dx = cuda.device_array((self.cap, self._in_size), np.float32)
        return self._dlogits, self._dx


def _bytes_per_example(prog: Program, T: int) -> int:
    f32 = 2 * T * prog.act_size + T * prog.v_size + 2 * T * prog.max_size + prog.n_params + prog.in_size
    return 4 * f32 + 4 * T * prog.act_size + 8 * (prog.max_size + 2 * prog.n_classes + 3) + 1


# ------------------------------------------------------------------ the backend
class CudaBackend:
    """The CUDA backend of one engine (its workspaces, tables and bound data)."""

    name = "cuda"

    def __init__(self, engine: Engine):
        reason = cuda_unavailable_reason()
        if reason:
            raise BackendError(f"CUDA backend: {reason}")
        from npdpsnn.kernels import cuda_kernels

        self._k = cuda_kernels
        self.engine = engine
        self.launches: Counter = Counter()
        """Kernel launches by name: ``example`` (per-example kernel), ``sum`` (clipped sum)."""
        self._workspaces: dict = {}
        self._tables: dict = {}
        self._data: OrderedDict = OrderedDict()

    def clear(self) -> None:
        """Free this backend's device buffers and cached data."""
        self._workspaces.clear()
        self._tables.clear()
        self._data.clear()

    # -------------------------------------------------------------- buffers
    def _workspace(self, prog: Program, T: int, B: int) -> _Workspace:
        key = (prog.act_size, prog.v_size, prog.max_size, prog.n_params, prog.n_classes, prog.in_size, T)
        ws = self._workspaces.get(key)
        if ws is None or ws.cap < B:
            self._workspaces.pop(key, None)  # free the smaller one first
            ws = self._workspaces[key] = _Workspace(prog, T, max(B, 1))
        return ws

    def _table(self, arr: np.ndarray):
        """A device copy of a small constant array (a layer table, per-layer
        thresholds), uploaded once."""
        from numba import cuda

        key = (arr.dtype.str, arr.shape, arr.tobytes())
        t = self._tables.get(key)
        if t is None:
            if len(self._tables) >= 64:  # a bound for programs that try many thresholds
                self._tables.clear()
            t = self._tables[key] = cuda.to_device(np.ascontiguousarray(arr))
        return t

    def capacity(self, net: Model) -> int:
        """Examples per launch within the engine's workspace budget."""
        return max(1, self.engine.cuda_workspace_bytes // _bytes_per_example(net.program, net.config.steps))

    # -------------------------------------------------------------- launches
    def _run(self, net: Model, X, Y, idx, B: int, mode: int, clip: float = np.inf, D=None):
        """Run the example kernel on the ``B`` examples ``X[idx]`` (``X[:B]`` when
        ``idx`` is None), device arrays; yields ``(lo, hi, workspace)`` after the
        launch for examples ``lo:hi`` (chunks within the workspace budget), whose
        results are in the workspace's rows ``< hi - lo`` until the next chunk.
        ``D`` (host, ``(B, classes)``) is the upstream gradient of mode 4."""
        K = self._k
        prog = net.program
        opt = kernel_options(net.config, prog.table, "cuda")
        T = opt.steps
        theta_f, theta_b = kernel_params(net.theta, net.layers, net.slots)
        n = min(B, self.capacity(net))
        ws = self._workspace(prog, T, n)
        ws.theta_f.copy_to_device(theta_f)
        ws.theta_b.copy_to_device(theta_b)
        example_kernel, _ = K.kernels_for(T)
        nt = self.engine.cuda_threads
        table = self._table(prog.table)
        ths = self._table(opt.thresholds)
        dl, dx = (ws.no_dlogits, ws.no_dx) if mode < K.MODE_INPUT else ws.input_buffers()
        for lo in range(0, B, n):
            hi = min(B, lo + n)
            if idx is None:
                Xc, Yc, ic = (X, Y, ws.iota) if lo == 0 else (X[lo:hi], Y[lo:hi], ws.iota)
            else:
                Xc, Yc, ic = X, Y, (idx if hi - lo == B else idx[lo:hi])
            if D is not None:
                dl[: hi - lo].copy_to_device(np.ascontiguousarray(D[lo:hi]))
            with warnings.catch_warnings():  # small batches: Numba's low-occupancy warning is expected
                warnings.simplefilter("ignore", _perf_warning())
                example_kernel[hi - lo, nt](
                    table, ws.theta_f, ws.theta_b, Xc, Yc, ic, np.float32(opt.leak), ths, np.int64(opt.surrogate),
                    bool(opt.detach_reset), bool(opt.ann), np.int64(opt.activation), np.int64(opt.reset),
                    np.int64(prog.act_size), np.int64(prog.v_size),
                    np.int64(prog.max_size), np.int64(mode), np.float64(clip), ws.acts, ws.vm, ws.arg, ws.ga, ws.gb,
                    ws.asum, ws.lg, ws.grads, ws.losses, ws.norms, ws.scales, ws.correct, dl, dx,
                )
            self.launches["example"] += 1
            yield lo, hi, ws

    def _launch(self, net: Model, X, Y, idx, B: int, mode: int, clip: float) -> _Workspace:
        """One launch on ``B`` examples (within the workspace budget); the results
        stay in the returned workspace (for benchmarks)."""
        ws = None
        for lo, hi, ws in self._run(net, X, Y, idx, B, mode, clip):
            if hi < B:
                raise ValueError("batch larger than the workspace budget")
        return ws

    def _sum(self, prog: Program, ws: _Workspace, B: int, resume: bool = False) -> None:
        """``ws.total (+)= sum_{i<B} scales[i] * grads[i]`` on the device (float64,
        examples in order; ``resume`` continues the previous chunk's total)."""
        P = prog.n_params
        nt = 256
        with warnings.catch_warnings():  # P / threads blocks: the low-occupancy warning is expected
            warnings.simplefilter("ignore", _perf_warning())
            self._k.clipped_sum_kernel[(P + nt - 1) // nt, nt](ws.grads, ws.scales, np.int64(B), ws.total,
                                                                bool(resume))
        self.launches["sum"] += 1

    def _upload(self, net: Model, x: np.ndarray, y: np.ndarray | None):
        """Device arrays of a host batch ``(B, C, H, W)`` (labels 0 when ``y`` is None)."""
        from numba import cuda

        xk = cuda.to_device(images_to_kernel_layout(x))
        y = np.zeros(len(x), np.int64) if y is None else np.ascontiguousarray(y, dtype=np.int64)
        return xk, cuda.to_device(y)

    # -------------------------------------------------------------- results
    @staticmethod
    def _logits(runs, B: int, n_classes: int) -> np.ndarray:
        out = np.empty((B, n_classes), np.float64)
        for lo, hi, ws in runs:
            out[lo:hi] = ws.lg[: hi - lo].copy_to_host()
        return out

    def _clipped(self, net: Model, runs, B: int) -> ClippedSum:
        """Clipped sum, norms, losses, correctness; over chunks the device sum
        resumes from the previous chunk's total (the same bits as one launch)."""
        norms = np.empty(B, np.float64)
        losses = np.empty(B, np.float64)
        correct = np.empty(B, np.int8)
        ws = None
        for lo, hi, ws in runs:
            n = hi - lo
            self._sum(net.program, ws, n, resume=lo > 0)
            norms[lo:hi] = ws.norms[:n].copy_to_host()
            losses[lo:hi] = ws.losses[:n].copy_to_host()
            correct[lo:hi] = ws.correct[:n].copy_to_host()
        total = np.zeros(net.num_params, np.float64) if ws is None else ws.total.copy_to_host()
        return ClippedSum(from_layout(total, net.layers, net.slots, GRAD_LAYOUT), norms, losses, correct)

    def _input(self, net: Model, x: np.ndarray, y, dlogits) -> Gradients:
        B = len(x)
        dx = np.zeros((B, net.program.in_size), np.float32)
        losses = np.zeros(B, np.float64)
        if B:
            X, Y = self._upload(net, x, y)
            mode = self._k.MODE_INPUT if dlogits is None else self._k.MODE_INPUT_VJP
            for lo, hi, ws in self._run(net, X, Y, None, B, mode, D=dlogits):
                dx[lo:hi] = ws.input_buffers()[1][: hi - lo].copy_to_host()
                losses[lo:hi] = ws.losses[: hi - lo].copy_to_host()
        return Gradients(images_from_kernel_layout(dx, net.input_shape), losses)

    # -------------------------------------------------------------- protocol
    def forward(self, net: Model, x: np.ndarray) -> np.ndarray:
        B = len(x)
        if B == 0:
            return np.zeros((0, net.num_classes), np.float64)
        X, Y = self._upload(net, x, None)
        return self._logits(self._run(net, X, Y, None, B, self._k.MODE_FORWARD), B, net.num_classes)

    def per_example_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients:
        B = len(x)
        grads = np.empty((B, net.num_params), np.float32)
        losses = np.empty(B, np.float64)
        if B:
            X, Y = self._upload(net, x, y)
            for lo, hi, ws in self._run(net, X, Y, None, B, self._k.MODE_GRADS):
                grads[lo:hi] = ws.grads[: hi - lo].copy_to_host()
                losses[lo:hi] = ws.losses[: hi - lo].copy_to_host()
        return Gradients(from_layout(grads, net.layers, net.slots, GRAD_LAYOUT), losses)

    def clipped_sum(self, net: Model, x: np.ndarray, y: np.ndarray, clip: float) -> ClippedSum:
        clip = check_clip(clip)
        B = len(x)
        if B == 0:
            return self._clipped(net, (), 0)
        X, Y = self._upload(net, x, y)
        return self._clipped(net, self._run(net, X, Y, None, B, self._k.MODE_CLIP, clip), B)

    def input_vjp(self, net: Model, x: np.ndarray, dlogits: np.ndarray) -> np.ndarray:
        return self._input(net, x, None, check_dlogits(dlogits, len(x), net.num_classes)).grads

    def input_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients:
        return self._input(net, x, y, None)

    def bind(self, x, y=None) -> CudaData:
        """Upload a data set once, cached: the same host objects ``x`` and ``y``
        give the same :class:`CudaData` without a new upload (the last two data
        sets are kept; a host array modified in place after upload is not
        noticed -- call :meth:`clear`)."""
        key = (id(x), id(y))
        hit = self._data.get(key)
        if hit is not None and hit[0] is x and hit[1] is y:
            self._data.move_to_end(key)
            return hit[2]
        data = CudaData(x, y)
        self._data[key] = (x, y, data)
        while len(self._data) > 2:
            self._data.popitem(last=False)
        return data

    def clipped_sum_indexed(self, net: Model, data: CudaData, idx, clip: float) -> ClippedSum:
        """:meth:`clipped_sum` of the examples ``idx`` of bound data: only the
        indices and parameters are uploaded."""
        from numba import cuda

        clip = check_clip(clip)
        check_bound(net, data, labelled=True)
        idx = check_indices(idx, data.n)
        if len(idx) == 0:
            return self._clipped(net, (), 0)
        runs = self._run(net, data.x, data.y, cuda.to_device(idx), len(idx), self._k.MODE_CLIP, clip)
        return self._clipped(net, runs, len(idx))

    def forward_indexed(self, net: Model, data: CudaData, idx) -> np.ndarray:
        """:meth:`forward` of the examples ``idx`` of bound data."""
        from numba import cuda

        check_bound(net, data, labelled=False)
        idx = check_indices(idx, data.n)
        if len(idx) == 0:
            return np.zeros((0, net.num_classes), np.float64)
        runs = self._run(net, data.x, data.y, cuda.to_device(idx), len(idx), self._k.MODE_FORWARD)
        return self._logits(runs, len(idx), net.num_classes)
