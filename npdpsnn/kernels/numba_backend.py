"""The ``numba`` backend: the CPU kernels of :mod:`.cpu` on an engine's threads.

A batch is split into fixed chunks of :data:`~npdpsnn.engine.CHUNK` examples
(:meth:`Engine.run_chunks <npdpsnn.engine.Engine.run_chunks>`), each run by a
GIL-free kernel with its own buffers; the clipped sum keeps one float64
partial sum per chunk and adds them in chunk order, so results do not depend
on the number of threads.  The kernels read the CPU weight layouts of
:mod:`.program`; results are converted back to ``theta`` order here.
"""

from __future__ import annotations

import threading

import numpy as np

from npdpsnn.engine import CHUNK, Engine
from npdpsnn.kernels import cpu
from npdpsnn.kernels.host import HostBackend
from npdpsnn.kernels.program import (
    cpu_kernel_params, from_cpu_layout, images_from_kernel_layout, images_to_kernel_layout, kernel_options,
)
from npdpsnn.kernels.protocol import ClippedSum, Gradients, Model
from npdpsnn.kernels.validate import check_clip, check_dlogits

GRAD_LAYOUT = "cpu_forward"  # the layout of the kernels' gradients (undone by program.from_cpu_layout)

# OpenBLAS core types with small-matrix GEMM kernels: there one GEMM per time step
# (64 x 256 x 32 for Net2's conv2) runs faster than one over all steps; with the
# other kernels (e.g. OPENBLAS_CORETYPE=Haswell) the single large GEMM is faster
# (bench/README.md).  Read once per process from the loaded BLAS, never timed, so
# the choice -- and the results' bits -- depend only on the environment.
_SMALL_GEMM_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})
_GEMM_STEPS: bool | None = None


def gemm_per_step() -> bool:
    """Whether the conv kernels call BLAS once per time step (True) or once over all
    steps (False): True when the BLAS that Numba calls is OpenBLAS with a
    small-matrix core type."""
    global _GEMM_STEPS
    if _GEMM_STEPS is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401 - the BLAS of Numba's np.dot
            from threadpoolctl import threadpool_info

            cores = {str(i.get("architecture", "")).lower() for i in threadpool_info()
                     if i.get("user_api") == "blas" and "scipy" in str(i.get("filepath", "")).lower()}
            _GEMM_STEPS = bool(cores) and cores <= _SMALL_GEMM_CORES
        except Exception:  # no threadpoolctl information: the choice that is good everywhere
            _GEMM_STEPS = False
    return _GEMM_STEPS


_F32_1 = np.zeros(0, np.float32)
_F32_2 = np.zeros((0, 0), np.float32)
_F64_1 = np.zeros(0, np.float64)
_F64_2 = np.zeros((0, 0), np.float64)
_I8_1 = np.zeros(0, np.int8)
_I64_1 = np.zeros(0, np.int64)


class NumbaBackend(HostBackend):
    name = "numba"

    sparse_max = cpu.SPARSE_MAX
    """A conv input gradient scatters the non-zero entries of dL/dI when at most this
    fraction is non-zero, else it runs GEMM + col2im (0: always GEMM; 1: always
    scatter).  Both give the reference's values up to float32 rounding."""

    gemm_steps: bool | None = None
    """None (default): :func:`gemm_per_step` decides from the loaded BLAS; True/False
    forces one GEMM per time step / one over all steps (same values up to float32
    rounding)."""

    profile = False
    """True: :meth:`clipped_sum` records the CPU cycles of every example in every
    (layer, phase) slot of :func:`cpu.profile_slots` in :attr:`last_profile`
    ``(B, slots)`` (``bench/bench_cpu.py --profile``)."""
    last_profile: np.ndarray | None = None

    def __init__(self, engine: Engine):
        self.engine = engine
        self._local = threading.local()  # one kernel workspace per thread, kept between calls

    def _workspace(self, sizes: tuple[int, int, int, int]):
        """This thread's workspace arrays (float32, float64, int32, int64), grown to
        at least ``sizes``; reused by every call, so no buffer is allocated or
        zeroed per chunk."""
        ws = getattr(self._local, "ws", None)
        if ws is None or any(a.size < n for a, n in zip(ws, sizes, strict=True)):
            old = ws or (None,) * 4
            ws = tuple(np.empty(max(n, 0 if a is None else a.size), dt)
                       for a, n, dt in zip(old, sizes, (np.float32, np.float64, np.int32, np.int64), strict=True))
            self._local.ws = ws
        return ws

    def release_workspaces(self) -> None:
        """Drops every thread's workspace (made again by the next call); a workspace
        also goes with its thread when the engine closes."""
        self._local = threading.local()

    def _run(self, mode: int, net: Model, xk: np.ndarray, y=_I64_1, d=_F64_2, clip: float = 0.0, grads=_F32_2,
             partial=_F64_2, norms=_F64_1, losses=_F64_1, correct=_I8_1, dx=_F32_2, logits=_F64_2, prof=_F64_2):
        """Runs :func:`cpu.run_chunk` in ``mode`` over the chunks of the batch ``xk``."""
        prog = net.program
        theta_f, theta_b = cpu_kernel_params(net.theta, net.layers, net.slots)
        opt = kernel_options(net.config, prog.table, "numba")
        T = opt.steps
        sparse = float(self.sparse_max)
        steps = gemm_per_step() if self.gemm_steps is None else bool(self.gemm_steps)
        cc_offs, sizes = cpu.workspace_layout(prog.table, T, prog.act_size, prog.v_size, prog.max_size,
                                              prog.col_size, prog.wmat_size, prog.n_params)

        def chunk(i, lo, hi):
            ws32, ws64, wsi32, wsi64 = self._workspace(sizes)
            cpu.run_chunk(mode, prog.table, theta_f, theta_b, xk, y, d, lo, hi, T, opt.leak, opt.thresholds,
                          opt.surrogate, opt.detach_reset, opt.ann, opt.activation, opt.reset, prog.act_size,
                          prog.v_size, prog.max_size, prog.col_size, prog.wmat_size, cc_offs, ws32, ws64, wsi32, wsi64,
                          sparse, steps, clip, grads, partial[i] if partial.shape[0] else _F64_1, norms, losses,
                          correct, dx, logits, prof)

        self.engine.run_chunks(chunk, xk.shape[0])

    def forward(self, net: Model, x: np.ndarray) -> np.ndarray:
        xk = images_to_kernel_layout(x)
        out = np.zeros((xk.shape[0], net.program.n_classes), np.float64)
        self._run(cpu.FORWARD, net, xk, logits=out)
        return out

    def per_example_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients:
        xk, y = images_to_kernel_layout(x), np.ascontiguousarray(y, dtype=np.int64)
        grads = np.empty((xk.shape[0], net.program.n_params), np.float32)
        losses = np.empty(xk.shape[0], np.float64)
        self._run(cpu.GRADS, net, xk, y, grads=grads, losses=losses)
        return Gradients(from_cpu_layout(grads, net.layers, net.slots), losses)

    def clipped_sum(self, net: Model, x: np.ndarray, y: np.ndarray, clip: float) -> ClippedSum:
        clip = check_clip(clip)
        xk, y = images_to_kernel_layout(x), np.ascontiguousarray(y, dtype=np.int64)
        b = xk.shape[0]
        # one float64 partial sum per chunk, each zeroed by its chunk's kernel
        partial = (np.empty if b else np.zeros)((max(1, -(-b // CHUNK)), net.program.n_params), np.float64)
        norms = np.empty(b, np.float64)
        losses = np.empty(b, np.float64)
        correct = np.empty(b, np.int8)
        prof = np.zeros((b, cpu.profile_slots(len(net.layers)))) if self.profile else _F64_2
        self._run(cpu.CLIPPED, net, xk, y, clip=clip, partial=partial, norms=norms, losses=losses, correct=correct,
                  prof=prof)
        if self.profile:
            self.last_profile = prof
        total = np.zeros(net.program.n_params, np.float64)
        for row in partial:  # fixed order: reproducible
            total += row
        return ClippedSum(from_cpu_layout(total, net.layers, net.slots), norms, losses, correct)

    def _input_grads(self, net: Model, x: np.ndarray, y: np.ndarray | None, dlogits: np.ndarray | None):
        xk = images_to_kernel_layout(x)
        b = xk.shape[0]
        dx = np.zeros((b, net.program.in_size), np.float32)
        losses = np.zeros(b, np.float64)
        if dlogits is None:
            self._run(cpu.INPUT_GRADS, net, xk, np.ascontiguousarray(y, dtype=np.int64), dx=dx, losses=losses)
        else:
            self._run(cpu.INPUT_VJP, net, xk, d=np.ascontiguousarray(dlogits, dtype=np.float64), dx=dx)
        return images_from_kernel_layout(dx, net.input_shape), losses

    def input_vjp(self, net: Model, x: np.ndarray, dlogits: np.ndarray) -> np.ndarray:
        return self._input_grads(net, x, None, check_dlogits(dlogits, len(x), net.num_classes))[0]

    def input_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients:
        return Gradients(*self._input_grads(net, x, y, None))
