"""Input encodings: how an image enters the network at each of the ``T`` steps.

* ``direct`` (the DPSNN paper): the analog image ``x`` is the input of layer 0
  at every step, so kernels may compute layer 0's current once per example.
* ``poisson`` (rate coding, e.g. Rueckauer et al. 2017; PrivateSNN): at step
  ``t`` pixel ``i`` emits ``s[t, i] = sign(x_i) * 1{u(seed, t, i) < |x_i|}``,
  a spike with probability ``|x_i|`` (clipped to 1) and the sign of the pixel,
  so ``E[s] = x`` for ``|x| <= 1`` (intensities in ``[0, 1]`` give the usual
  0/1 spikes).  Layer 0 then sees a different input at every step and its
  current must be computed per step.

The uniforms ``u`` come from a counter-based stream (a hash of ``(seed, t, i)``,
no state): the same numbers on every backend, for any batch split and thread
count, so results are reproducible.  ``i`` is the pixel's index in ``(C, H, W)``
order.  Every example sees the same uniforms at a given ``(t, i)`` (common
random numbers): examples differ only through their intensities.  Gradients
with respect to ``x`` pass the sampler straight through (``ds/dx := 1``, exact
for the expectation).

The hash is Chris Wellons' ``lowbias32``-style mixer with both multipliers
below ``2**31`` so every product fits a signed 64-bit integer (plain Python,
NumPy int64 arrays, Numba and CUDA all give the same bits).
"""

from __future__ import annotations

ENCODINGS: tuple[str, ...] = ("direct", "poisson")
DIRECT, POISSON = 0, 1
_M32 = 0xFFFFFFFF


def _mix32(h):
    """A 32-bit integer hash (xor-shift / multiply rounds) of ``0 <= h < 2**32``."""
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _M32
    h = h ^ (h >> 15)
    h = (h * 0x5BD1E995) & _M32
    h = h ^ (h >> 16)
    return h


def rate_uniform(seed, t, i):
    """The uniform ``u(seed, t, i)`` in ``[0, 1)`` (multiples of ``2**-32``);
    ``seed``, ``t`` and ``i`` are non-negative integers (or int64 arrays)."""
    h = _mix32((seed & _M32) ^ 0x9E3779B9)
    h = _mix32(h ^ (t & _M32))
    h = _mix32(h ^ (i & _M32))
    return h * (1.0 / 4294967296.0)


def rate_spike(x, u):
    """``sign(x) * 1{u < |x|}`` (element-wise on arrays too)."""
    return ((x > 0.0) * 1.0 - (x < 0.0) * 1.0) * (u < abs(x))
