"""One API over the backends: ``reference`` (NumPy), ``numba`` (CPU), ``cuda``.

The compiled backends work on their own weight layouts (see :mod:`.program`):
these functions take ``kparams = params_for(backend, theta, layers, slots)`` and
return gradients in ``grad_layout(backend)``, so the caller converts once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from npdpsnn.errors import BackendError
from npdpsnn.kernels.program import Program
from npdpsnn.model.config import ModelConfig

BACKENDS: tuple[str, ...] = ("reference", "numba", "cuda")


def _scalars(cfg: ModelConfig):
    return (cfg.steps, np.float32(cfg.effective_leak), np.float32(cfg.threshold), cfg.surrogate_id,
            bool(cfg.detach_reset), cfg.kind == "ann")


_threads = os.cpu_count() or 1
_pool: ThreadPoolExecutor | None = None
CHUNK = 16  # examples per work item of the CPU kernels (and per partial sum of the clipped sum)


def set_threads(n: int) -> None:
    """Number of CPU threads the kernels use (default: all cores)."""
    global _threads, _pool
    if n < 1:
        raise BackendError(f"threads must be >= 1, got {n}")
    if n != _threads and _pool is not None:
        _pool.shutdown()
        _pool = None
    _threads = int(n)


def get_threads() -> int:
    return _threads


def _run_chunks(fn, batch: int) -> None:
    """Call ``fn(i, lo, hi)`` for the fixed chunks of ``range(batch)``."""
    global _pool
    chunks = [(i, lo, min(lo + CHUNK, batch)) for i, lo in enumerate(range(0, batch, CHUNK))]
    if _threads == 1 or len(chunks) <= 1:
        for c in chunks:
            fn(*c)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_threads, thread_name_prefix="npdpsnn")
    for f in [_pool.submit(fn, *c) for c in chunks]:
        f.result()


def params_for(backend: str, theta: np.ndarray, layers, slots):
    """The weight layouts that ``backend``'s kernels read."""
    from npdpsnn.kernels.program import cpu_kernel_params, kernel_params

    return kernel_params(theta, layers, slots) if backend == "cuda" else cpu_kernel_params(theta, layers, slots)


def grad_layout(backend: str) -> str:
    """The layout of the gradients that ``backend`` returns."""
    return "forward" if backend == "cuda" else "cpu_forward"


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def resolve_device(device: str) -> str:
    """``cpu`` -> ``numba``; ``cuda`` -> ``cuda`` or a :class:`BackendError`;
    ``auto`` -> ``cuda`` when a usable GPU exists, else ``numba`` with one warning."""
    if device == "cpu":
        return "numba"
    reason = _cuda_unavailable_reason()
    if device == "cuda":
        if reason:
            raise BackendError(f"--device cuda: {reason}")
        return "cuda"
    if device == "auto":
        if reason:
            import logging

            logging.getLogger(__name__).warning("no usable GPU (%s); running on the CPU", reason)
            return "numba"
        return "cuda"
    raise BackendError(f"unknown device {device!r}; choose cpu, cuda or auto")


def _cuda_unavailable_reason() -> str | None:
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


def _cuda():
    from npdpsnn.kernels import cuda  # imported lazily: numba.cuda is optional

    return cuda


def forward(backend: str, prog: Program, cfg: ModelConfig, kparams, xk: np.ndarray) -> np.ndarray:
    """Logits ``(B, classes)`` float64."""
    if backend == "cuda":
        return _cuda().forward(prog, cfg, kparams, xk)
    from npdpsnn.kernels import cpu

    T, leak, th, _, _, ann = _scalars(cfg)
    out = np.zeros((xk.shape[0], prog.n_classes), np.float64)
    _run_chunks(lambda i, lo, hi: cpu.forward_chunk(prog.table, kparams[0], xk, lo, hi, T, leak, th, ann,
                                                    prog.act_size, prog.v_size, prog.max_size, prog.col_size,
                                                    prog.col_offsets, prog.col_total, out),
                xk.shape[0])
    return out


def per_example_grads(backend: str, prog: Program, cfg: ModelConfig, kparams, xk, y):
    """``(grads (B, P) float32 kernel layout, losses (B,) float64)``."""
    if backend == "cuda":
        return _cuda().per_example_grads(prog, cfg, kparams, xk, y)
    from npdpsnn.kernels import cpu

    T, leak, th, surr, detach, ann = _scalars(cfg)
    grads = np.empty((xk.shape[0], prog.n_params), np.float32)
    losses = np.empty(xk.shape[0], np.float64)
    _run_chunks(lambda i, lo, hi: cpu.per_example_grads_chunk(
        prog.table, kparams[0], kparams[1], xk, y, lo, hi, T, leak, th, surr, detach, ann, prog.act_size,
        prog.v_size, prog.max_size, prog.col_size, prog.wmat_size, prog.col_offsets, prog.col_total, grads, losses),
        xk.shape[0])
    return grads, losses


def clipped_sum(backend: str, prog: Program, cfg: ModelConfig, kparams, xk, y, clip: float):
    """``(sum_i clip(g_i) (P,) float64 kernel layout, norms (B,), losses (B,), correct (B,))``.

    One float64 partial sum per fixed chunk of :data:`CHUNK` examples, added in
    chunk order: the result does not depend on the number of threads.
    """
    if backend == "cuda":
        return _cuda().clipped_sum(prog, cfg, kparams, xk, y, clip)
    from npdpsnn.kernels import cpu

    T, leak, th, surr, detach, ann = _scalars(cfg)
    b = xk.shape[0]
    partial = np.zeros((max(1, -(-b // CHUNK)), prog.n_params), np.float64)
    norms = np.empty(b, np.float64)
    losses = np.empty(b, np.float64)
    correct = np.empty(b, np.int8)
    _run_chunks(lambda i, lo, hi: cpu.clipped_sum_chunk(
        prog.table, kparams[0], kparams[1], xk, y, lo, hi, T, leak, th, surr, detach, ann, prog.act_size,
        prog.v_size, prog.max_size, prog.col_size, prog.wmat_size, prog.col_offsets, prog.col_total, float(clip),
        partial[i], norms, losses, correct), b)
    total = np.zeros(prog.n_params, np.float64)
    for row in partial:  # fixed order: reproducible
        total += row
    return total, norms, losses, correct
