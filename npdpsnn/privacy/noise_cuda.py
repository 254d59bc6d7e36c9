"""Philox Gaussian noise drawn on the GPU, bit-identical to the CPU kernel of
:mod:`npdpsnn.privacy.noise`.

Imported lazily (by :meth:`PhiloxNoise.add_normal_device
<npdpsnn.privacy.noise.PhiloxNoise.add_normal_device>`): importing it imports
``numba.cuda``, the real target or the simulator when ``NUMBA_ENABLE_CUDASIM=1``
was set before numba was imported.

The math is the CPU's, compiled from the same source by
:func:`~npdpsnn.privacy.noise.compile_family` with ``cuda.jit(device=True)``.
Bit-identity rests on IEEE rounding: the family uses ``+ - * /``, ``sqrt``,
exact integer-to-float conversions and integer work only, never libdevice's
``log``/``sin``/``cos`` (whose last bits differ from the host's libm), and every
product goes through ``__dmul_rn`` / ``__dadd_rn``, which NVVM does not contract
into fused multiply-adds (a plain ``a * b + c`` it would, rounding once instead
of twice).  ``/`` and ``sqrt`` are IEEE-exact in CUDA unless fastmath, which is
never used here.  One thread per Box-Muller pair (grid-stride), so no thread
count or launch shape changes a bit.
"""

from __future__ import annotations

import numpy as np
from numba import config, cuda

from npdpsnn.errors import UserError
from npdpsnn.privacy.philox import _check_draw, _check_word, compile_family, split_key

THREADS_PER_BLOCK = 256
MAX_BLOCKS = 4096  # grid-stride beyond this many blocks


def _non_contracting():
    """``_mul`` / ``_add`` as ``__dmul_rn`` / ``__dadd_rn`` (the simulator keeps the
    Python ones: it runs the plain functions on the host)."""
    if config.ENABLE_CUDASIM:
        return {}
    from numba.cuda import libdevice

    @cuda.jit(device=True)
    def _mul(a, b):
        return libdevice.dmul_rn(a, b)

    @cuda.jit(device=True)
    def _add(a, b):
        return libdevice.dadd_rn(a, b)

    return {"_mul": _mul, "_add": _add}


_DEVICE = compile_family(cuda.jit(device=True), _non_contracting())
_philox_pair = _DEVICE["_philox_pair"]
_mul = _DEVICE["_mul"]
_add = _DEVICE["_add"]


@cuda.jit
def _philox_kernel(vec, n, step, k0, k1, std, accumulate):
    """``vec[i] (+)= std * z_i`` for ``i < n``: one Box-Muller pair per thread."""
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for j in range(start, (n + 1) // 2, stride):
        z0, z1 = _philox_pair(np.uint64(j), step, k0, k1)
        i = 2 * j
        a = _mul(std, z0)
        vec[i] = _add(vec[i], a) if accumulate else a
        if i + 1 < n:
            b = _mul(std, z1)
            vec[i + 1] = _add(vec[i + 1], b) if accumulate else b


def _launch(vec, key: int, step: int, std: float, accumulate: bool) -> None:
    n = int(vec.shape[0])
    if vec.dtype != np.float64 or vec.ndim != 1:
        raise UserError(f"the noise target must be a 1-D float64 device array, got {vec.dtype} {vec.shape}")
    std, n = _check_draw(std, n)
    step = _check_word(step, 64, "the noise step")
    k0, k1 = split_key(key)
    pairs = (n + 1) // 2
    if pairs == 0:
        return
    blocks = min(MAX_BLOCKS, -(-pairs // THREADS_PER_BLOCK))
    _philox_kernel[blocks, THREADS_PER_BLOCK](vec, np.int64(n), np.uint64(step), k0, k1, np.float64(std),
                                              bool(accumulate))


def philox_normal_device(key: int, step: int, n: int, std: float = 1.0, out=None):
    """The noise of :func:`~npdpsnn.privacy.noise.philox_normal` drawn on the device:
    a float64 device array of length ``n`` (``out`` if given)."""
    _check_draw(std, n)
    if out is None:
        out = cuda.device_array(int(n), np.float64)
    elif out.shape != (n,):
        raise UserError(f"out has shape {out.shape}, expected ({n},)")
    _launch(out, key, step, std, accumulate=False)
    return out


def philox_add_normal_device(vec, key: int, step: int, std: float) -> None:
    """``vec += std * z`` in place on the device (``vec`` a 1-D float64 device
    array), the noise of ``(key, step)``: equal bit for bit to
    ``vec + philox_normal(key, step, len(vec), std)`` on the host."""
    _launch(vec, key, step, std, accumulate=True)
