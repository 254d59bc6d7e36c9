"""The ``numba`` backend: the CPU kernels of :mod:`.cpu` on an engine's threads.

A batch is split into fixed chunks of :data:`~npdpsnn.engine.CHUNK` examples
(:meth:`Engine.run_chunks <npdpsnn.engine.Engine.run_chunks>`), each run by a
GIL-free kernel with its own buffers; the clipped sum keeps one float64
partial sum per chunk and adds them in chunk order, so results do not depend
on the number of threads.  The kernels read the CPU weight layouts of
:mod:`.program`; results are converted back to ``theta`` order here.
"""

from __future__ import annotations

import numpy as np

from npdpsnn.engine import CHUNK, Engine
from npdpsnn.kernels import cpu
from npdpsnn.kernels.host import HostBackend
from npdpsnn.kernels.program import (
    cpu_kernel_params, from_layout, images_from_kernel_layout, images_to_kernel_layout, kernel_scalars,
)
from npdpsnn.kernels.protocol import ClippedSum, Gradients, Model
from npdpsnn.kernels.validate import check_clip, check_dlogits

GRAD_LAYOUT = "cpu_forward"  # the layout of the kernels' gradients


class NumbaBackend(HostBackend):
    name = "numba"

    def __init__(self, engine: Engine):
        self.engine = engine

    def forward(self, net: Model, x: np.ndarray) -> np.ndarray:
        prog = net.program
        theta_f, _ = cpu_kernel_params(net.theta, net.layers, net.slots)
        xk = images_to_kernel_layout(x)
        T, leak, th, _, _, ann = kernel_scalars(net.config)
        out = np.zeros((xk.shape[0], prog.n_classes), np.float64)
        self.engine.run_chunks(lambda i, lo, hi: cpu.forward_chunk(
            prog.table, theta_f, xk, lo, hi, T, leak, th, ann, prog.act_size, prog.v_size, prog.max_size,
            prog.col_size, prog.col_offsets, prog.col_total, out), xk.shape[0])
        return out

    def per_example_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients:
        prog = net.program
        theta_f, theta_b = cpu_kernel_params(net.theta, net.layers, net.slots)
        xk, y = images_to_kernel_layout(x), np.ascontiguousarray(y, dtype=np.int64)
        T, leak, th, surr, detach, ann = kernel_scalars(net.config)
        grads = np.empty((xk.shape[0], prog.n_params), np.float32)
        losses = np.empty(xk.shape[0], np.float64)
        self.engine.run_chunks(lambda i, lo, hi: cpu.per_example_grads_chunk(
            prog.table, theta_f, theta_b, xk, y, lo, hi, T, leak, th, surr, detach, ann, prog.act_size,
            prog.v_size, prog.max_size, prog.col_size, prog.wmat_size, prog.col_offsets, prog.col_total, grads,
            losses), xk.shape[0])
        return Gradients(from_layout(grads, net.layers, net.slots, GRAD_LAYOUT), losses)

    def clipped_sum(self, net: Model, x: np.ndarray, y: np.ndarray, clip: float) -> ClippedSum:
        clip = check_clip(clip)
        prog = net.program
        theta_f, theta_b = cpu_kernel_params(net.theta, net.layers, net.slots)
        xk, y = images_to_kernel_layout(x), np.ascontiguousarray(y, dtype=np.int64)
        T, leak, th, surr, detach, ann = kernel_scalars(net.config)
        b = xk.shape[0]
        partial = np.zeros((max(1, -(-b // CHUNK)), prog.n_params), np.float64)
        norms = np.empty(b, np.float64)
        losses = np.empty(b, np.float64)
        correct = np.empty(b, np.int8)
        self.engine.run_chunks(lambda i, lo, hi: cpu.clipped_sum_chunk(
            prog.table, theta_f, theta_b, xk, y, lo, hi, T, leak, th, surr, detach, ann, prog.act_size,
            prog.v_size, prog.max_size, prog.col_size, prog.wmat_size, prog.col_offsets, prog.col_total, clip,
            partial[i], norms, losses, correct), b)
        total = np.zeros(prog.n_params, np.float64)
        for row in partial:  # fixed order: reproducible
            total += row
        return ClippedSum(from_layout(total, net.layers, net.slots, GRAD_LAYOUT), norms, losses, correct)

    def _input_grads(self, net: Model, x: np.ndarray, y: np.ndarray | None, dlogits: np.ndarray | None):
        prog = net.program
        theta_f, theta_b = cpu_kernel_params(net.theta, net.layers, net.slots)
        xk = images_to_kernel_layout(x)
        b = xk.shape[0]
        use_labels = dlogits is None
        y = np.zeros(b, np.int64) if y is None else np.ascontiguousarray(y, dtype=np.int64)
        d = np.zeros((0, prog.n_classes)) if dlogits is None else dlogits
        T, leak, th, surr, detach, ann = kernel_scalars(net.config)
        dx = np.zeros((b, prog.in_size), np.float32)
        losses = np.zeros(b, np.float64)
        self.engine.run_chunks(lambda i, lo, hi: cpu.input_grad_chunk(
            prog.table, theta_f, theta_b, xk, y, d, use_labels, lo, hi, T, leak, th, surr, detach, ann,
            prog.act_size, prog.v_size, prog.max_size, prog.col_size, prog.col_offsets, prog.col_total, dx, losses),
            b)
        return images_from_kernel_layout(dx, net.input_shape), losses

    def input_vjp(self, net: Model, x: np.ndarray, dlogits: np.ndarray) -> np.ndarray:
        return self._input_grads(net, x, None, check_dlogits(dlogits, len(x), net.num_classes))[0]

    def input_grads(self, net: Model, x: np.ndarray, y: np.ndarray) -> Gradients:
        return Gradients(*self._input_grads(net, x, y, None))
