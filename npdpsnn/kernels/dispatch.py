"""One API over the backends: ``reference`` (NumPy), ``numba`` (CPU), ``cuda``.

The compiled backends work on kernel layouts (see :mod:`.program`): these
functions take ``kparams = (theta_forward, theta_backward)`` from
:func:`.program.kernel_params` and return kernel-layout gradient vectors, so the
caller converts once.
"""

from __future__ import annotations

import numpy as np

from npdpsnn.errors import BackendError
from npdpsnn.kernels.program import Program
from npdpsnn.model.config import ModelConfig

BACKENDS: tuple[str, ...] = ("reference", "numba", "cuda")


def _scalars(cfg: ModelConfig):
    return (cfg.steps, np.float32(cfg.effective_leak), np.float32(cfg.threshold), cfg.surrogate_id,
            bool(cfg.detach_reset), cfg.kind == "ann")


def _n_chunks(batch: int) -> int:
    """One chunk of the batch per Numba thread."""
    import numba

    return max(1, min(batch, numba.get_num_threads()))


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


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
    cpu.forward_kernel(prog.table, kparams[0], xk, T, leak, th, ann, prog.act_size, prog.v_size, prog.max_size,
                       _n_chunks(xk.shape[0]), out)
    return out


def per_example_grads(backend: str, prog: Program, cfg: ModelConfig, kparams, xk, y):
    """``(grads (B, P) float32 kernel layout, losses (B,) float64)``."""
    if backend == "cuda":
        return _cuda().per_example_grads(prog, cfg, kparams, xk, y)
    from npdpsnn.kernels import cpu

    T, leak, th, surr, detach, ann = _scalars(cfg)
    grads = np.empty((xk.shape[0], prog.n_params), np.float32)
    losses = np.empty(xk.shape[0], np.float64)
    cpu.per_example_grads_kernel(prog.table, kparams[0], kparams[1], xk, y, T, leak, th, surr, detach, ann, prog.act_size,
                                 prog.v_size, prog.max_size, _n_chunks(xk.shape[0]), grads, losses)
    return grads, losses


def clipped_sum(backend: str, prog: Program, cfg: ModelConfig, kparams, xk, y, clip: float):
    """``(sum_i clip(g_i) (P,) float64 kernel layout, norms (B,), losses (B,))``."""
    if backend == "cuda":
        return _cuda().clipped_sum(prog, cfg, kparams, xk, y, clip)
    from npdpsnn.kernels import cpu

    T, leak, th, surr, detach, ann = _scalars(cfg)
    n = _n_chunks(xk.shape[0])
    partial = np.zeros((n, prog.n_params), np.float64)
    norms = np.empty(xk.shape[0], np.float64)
    losses = np.empty(xk.shape[0], np.float64)
    cpu.clipped_sum_kernel(prog.table, kparams[0], kparams[1], xk, y, T, leak, th, surr, detach, ann, prog.act_size,
                           prog.v_size, prog.max_size, float(clip), partial, norms, losses)
    return partial.sum(axis=0), norms, losses
