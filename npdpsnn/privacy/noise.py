"""Gaussian noise sources for DP-SGD: ``normal(std, n)`` draws the ``N(0, std^2 I_n)``
of one step (eq. 12 adds it with ``std = sigma R``).

Three sources share one small protocol (:class:`NoiseSource`: ``normal``,
``state_dict``, ``from_state_dict``; :func:`noise_from_state` restores any of them):

* :class:`HostNoise` ("numpy") -- the reference: NumPy's ``Generator.normal`` on
  a PCG64 generator, bit-identical to the trainer's ``rng.normal(0.0, sigma * clip,
  size=P)``.
* :class:`PhiloxNoise` ("philox") -- counter-based, drawn by Numba kernels: element
  ``i`` of the noise of step ``s`` is a function of ``(key, s, i)`` alone, so the
  vector is the same for any number of threads, any split into chunks, and on the
  GPU (:mod:`npdpsnn.privacy.noise_cuda`) bit for bit.
* :class:`SecureNoise` ("secure") -- for models meant for release: uniforms from
  the operating system's CSPRNG and every coordinate a sum of independent
  Gaussians (Holohan & Braghin 2021); not reproducible, by design.

Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as
1, 2, 3", SC 2011; Random123's ``philox.h``).  A 128-bit counter
``(c0, c1, c2, c3)`` and a 64-bit key ``(k0, k1)``, 32-bit words; one round is::

    (hi0, lo0) = M0 * c0        (hi1, lo1) = M1 * c2         (64-bit products)
    (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)

with ``M0 = 0xD2511F53``, ``M1 = 0xCD9E8D57``; between rounds the key is bumped by
the Weyl constants ``(0x9E3779B9, 0xBB67AE85)`` mod 2^32; ten rounds.  It matches
Random123's published known-answer vectors (``tests/test_noise.py``).  The key is
``SeedSequence(seed).generate_state(1, uint64)``; block ``j`` of step ``s`` has the
counter ``(j mod 2^32, j div 2^32, s mod 2^32, s div 2^32)`` and gives elements
``2j`` and ``2j + 1`` by Box-Muller::

    a = (w0 >> 5) 2^26 + (w1 >> 6),   b = (w2 >> 5) 2^26 + (w3 >> 6)   (53-bit integers)
    u1 = (a + 1) 2^-53 in (0, 1],     u2 = b 2^-53 in [0, 1)
    z_{2j} = sqrt(-2 ln u1) cos(2 pi u2),   z_{2j+1} = sqrt(-2 ln u1) sin(2 pi u2)

(Box & Muller 1958), and the noise is ``std * z``.  ``ln``, ``cos`` and ``sin`` are
computed here from ``+ - * /`` and ``sqrt`` only -- IEEE operations that round
the same on every CPU and GPU -- instead of the platform's libm / libdevice, whose
last bits differ: ``ln u1 = k ln 2 + 2 atanh((m - 1)/(m + 1))`` with ``u1 = 2^k m``,
``m`` in ``[sqrt(1/2), sqrt(2))`` (the split of ``a + 1`` is exact integer work), and
``cos``/``sin`` of ``(pi/2)(q + f)``, ``q`` the quadrant from ``b``'s top bits,
``|f| <= 1/2``, by their Taylor series (9-10 terms, truncation < 2^-60 relative).
Products go through :func:`_mul` / :func:`_add`, which the CUDA build replaces by
``__dmul_rn`` / ``__dadd_rn`` so that the compiler cannot contract them into fused
multiply-adds (the CPU build never contracts: no fastmath).  Accuracy: ``ln`` within
4e-16 relative, ``cos``/``sin`` within 2.3e-16 (tested against mpmath).  53-bit
uniforms cap ``|z|`` at ``sqrt(-2 ln 2^-53) = 8.57``, an event of probability 1e-17.

The functions are written once, as plain Python (:data:`FAMILY`), and compiled
per target by :func:`compile_family`; the interpreter runs them as the reference.
The CPU kernel runs fixed chunks of :data:`CHUNK` elements on the engine's
threads (``nogil``), each in blocks of pairs whose loops the compiler vectorises
(the functions are inlined and branch-free).

What these sources do and do not protect: :class:`HostNoise` and
:class:`PhiloxNoise` are reproducible from their seed/key, which their
``state_dict`` holds -- keep it as private as the training data.  Philox is a
statistically strong PRNG, not a cryptographic one.  Neither is hardened against
floating-point attacks on the Gaussian sampler; see :class:`SecureNoise`.
"""

from __future__ import annotations

import abc
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Protocol, Union

import numpy as np
from numba import njit

from npdpsnn.errors import CheckpointError, UserError
from npdpsnn.privacy.philox import _M32, _S32, _U, _check_draw, _check_word, compile_family, split_key

log = logging.getLogger(__name__)

SeedLike = Union[int, Sequence[int], np.random.SeedSequence, None]

CHUNK = 4096
"""Noise elements per chunk of the CPU kernel (a work item of the engine is up to 16
chunks).  Any value gives the same vector: each element depends on its index only."""

SECURE_DRAWS = 4
"""Gaussians summed per coordinate by :class:`SecureNoise` (Opacus's secure mode: 2n with n = 2)."""

# inline: the kernels' loops see the whole computation and vectorise (SIMD across
# Box-Muller pairs); error_model="numpy": no zero-division branch (the one
# division, by 2 + f >= 1.7, cannot divide by zero) to stop them.
_CPU = compile_family(njit(cache=True, nogil=True, inline="always", error_model="numpy"))
_philox_rounds_cpu = _CPU["_philox_rounds"]
_box_muller_cpu = _CPU["_box_muller"]

_BLOCK = 256  # Box-Muller pairs per pass of the CPU kernel's three loops


# ------------------------------------------------------------------ CPU kernels
@njit(cache=True, nogil=True, error_model="numpy")
def _philox_normal_kernel(out, lo, hi, step, k0, k1, std):
    """``out[i] = std * z_i`` for ``lo <= i < hi`` (Philox stream of ``step``).

    Pairs ``j`` of elements ``(2j, 2j + 1)`` in blocks of :data:`_BLOCK`: all their
    Philox words, then all their Box-Muller transforms, then the stores -- three
    simple loops that the compiler vectorises; every value is computed as by
    :func:`_philox_pair`."""
    w0 = np.empty(_BLOCK, np.uint64)
    w1 = np.empty(_BLOCK, np.uint64)
    w2 = np.empty(_BLOCK, np.uint64)
    w3 = np.empty(_BLOCK, np.uint64)
    z0 = np.empty(_BLOCK, np.float64)
    z1 = np.empty(_BLOCK, np.float64)
    s0, s1 = step & _M32, step >> _S32
    j_end = (hi + 1) // 2
    for j0 in range(lo // 2, j_end, _BLOCK):
        m = min(_BLOCK, j_end - j0)
        for t in range(m):
            j = np.uint64(j0 + t)
            w0[t], w1[t], w2[t], w3[t] = _philox_rounds_cpu(j & _M32, j >> _S32, s0, s1, k0, k1)
        for t in range(m):
            z0[t], z1[t] = _box_muller_cpu(w0[t], w1[t], w2[t], w3[t])
        for t in range(m):
            i = 2 * (j0 + t)
            if i >= lo:
                out[i] = std * z0[t]
            if i + 1 < hi:
                out[i + 1] = std * z1[t]


@njit(cache=True, nogil=True, error_model="numpy")
def _summed_normal_kernel(words, draws, scale, out):
    """``out[i] = scale * sum_d z(i draws + d)``: ``z(t)`` the first Box-Muller output
    of the four words ``words[4t : 4t + 4]`` (one word set per draw, never shared)."""
    n = out.shape[0]
    z = np.empty(n * draws, np.float64)
    for t in range(n * draws):
        b = 4 * t
        z[t], _ = _box_muller_cpu(np.uint64(words[b]), np.uint64(words[b + 1]), np.uint64(words[b + 2]),
                                  np.uint64(words[b + 3]))
    for i in range(n):
        acc = 0.0
        for d in range(draws):
            acc += z[i * draws + d]
        out[i] = scale * acc


# ------------------------------------------------------------------ public functions
def philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> tuple[int, int, int, int]:
    """Philox4x32-10 of a counter of four 32-bit words under a key of two (the
    Random123 function, e.g. for its known-answer tests)."""
    if len(counter) != 4 or len(key) != 2:
        raise UserError("Philox4x32 takes a counter of 4 words and a key of 2")
    c = [_U(_check_word(w, 32, "a counter word")) for w in counter]
    k = [_U(_check_word(w, 32, "a key word")) for w in key]
    return tuple(int(w) for w in _philox_rounds_cpu(*c, *k))


class ChunkRunner(Protocol):
    """What runs the CPU kernel's chunks: :class:`npdpsnn.engine.Engine` (its ``run_chunks``)."""

    def run_chunks(self, fn: Callable[[int, int, int], None], batch: int) -> None: ...


def _default_engine() -> ChunkRunner:
    from npdpsnn.engine import default_engine

    return default_engine()


def philox_normal(key: int, step: int, n: int, std: float = 1.0, *, engine: ChunkRunner | None = None,
                  chunk: int = CHUNK) -> np.ndarray:
    """The Philox noise ``std * z`` of ``step`` under the 64-bit ``key``: ``n`` float64.

    Drawn in chunks of ``chunk`` elements on ``engine``'s threads (default: the
    process-wide engine); the result does not depend on either."""
    std, n = _check_draw(std, n)
    step = _check_word(step, 64, "the noise step")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise UserError(f"chunk must be an integer >= 1, got {chunk!r}")
    k0, k1 = split_key(key)
    out = np.empty(n, np.float64)
    s = _U(step)
    n_chunks = -(-n // chunk)

    def run(_i: int, lo: int, hi: int) -> None:
        _philox_normal_kernel(out, lo * chunk, min(hi * chunk, n), s, k0, k1, std)

    (engine or _default_engine()).run_chunks(run, n_chunks)
    return out


def _seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    try:
        return np.random.SeedSequence(seed)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad noise seed {seed!r}: {exc}") from None


def philox_key(seed: SeedLike) -> int:
    """The 64-bit Philox key of a seed (``None``: fresh OS entropy)."""
    return int(_seed_sequence(seed).generate_state(1, np.uint64)[0])


# ------------------------------------------------------------------ sources
class NoiseSource(abc.ABC):
    """One Gaussian noise stream; each :meth:`normal` call is one DP-SGD step."""

    kind: str = ""
    resumable: bool = True
    """Whether :meth:`from_state_dict` continues the stream bit for bit."""

    @abc.abstractmethod
    def normal(self, std: float, n: int) -> np.ndarray:
        """The next step's noise: ``n`` float64 draws of ``N(0, std^2)``."""

    @abc.abstractmethod
    def state_dict(self) -> dict:
        """A JSON-serialisable state with ``"kind"``; secret where the stream is reproducible."""

    @classmethod
    @abc.abstractmethod
    def from_state_dict(cls, state: dict) -> NoiseSource:
        """The source of a :meth:`state_dict` (a :class:`CheckpointError` if it is malformed)."""


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class HostNoise(NoiseSource):
    """NumPy's ``Generator.normal`` (the reference, on the host).

    ``seed`` as for ``np.random.PCG64`` (an int, ints, a ``SeedSequence``, None for OS
    entropy), or an existing ``Generator`` to draw from.  ``HostNoise(SeedSequence([seed, 2]))``
    reproduces the trainer's stream: ``normal(std, n) == rng.normal(0.0, std, size=n)``."""

    kind = "numpy"

    def __init__(self, seed: SeedLike | np.random.Generator = None):
        if isinstance(seed, np.random.Generator):
            self.rng = seed
        else:
            self.rng = np.random.Generator(np.random.PCG64(_seed_sequence(seed)))

    def normal(self, std: float, n: int) -> np.ndarray:
        std, n = _check_draw(std, n)
        return self.rng.normal(0.0, std, size=n)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "bit_generator": self.rng.bit_generator.state}

    @classmethod
    def from_state_dict(cls, state: dict) -> HostNoise:
        """Also takes a bare bit-generator state (checkpoints before noise sources)."""
        bg_state = state.get("bit_generator") if state.get("kind") == cls.kind else state
        name = bg_state.get("bit_generator") if isinstance(bg_state, dict) else None
        if name not in _BIT_GENERATORS:
            raise CheckpointError(f"noise generator state names no known bit generator ({name!r})")
        bg = getattr(np.random, name)()
        try:
            bg.state = bg_state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise CheckpointError(f"corrupt noise generator state ({exc})") from None
        return cls(np.random.Generator(bg))


class PhiloxNoise(NoiseSource):
    """Counter-based noise: step ``s`` is :func:`philox_normal` ``(key, s, n, std)``.

    ``seed`` as for ``SeedSequence`` (None: OS entropy) gives the 64-bit key; the
    step counter starts at 0 and each :meth:`normal` (or :meth:`add_normal_device`)
    advances it by one.  ``engine`` runs the CPU chunks (default: the process-wide
    engine)."""

    kind = "philox"

    def __init__(self, seed: SeedLike = None, *, engine: ChunkRunner | None = None):
        self.key = philox_key(seed)
        self.step = 0
        self.engine = engine

    @classmethod
    def from_key(cls, key: int, step: int = 0, *, engine: ChunkRunner | None = None) -> PhiloxNoise:
        src = cls.__new__(cls)
        src.key = _check_word(key, 64, "the Philox key")
        src.step = _check_word(step, 64, "the noise step")
        src.engine = engine
        return src

    def normal(self, std: float, n: int) -> np.ndarray:
        out = philox_normal(self.key, self.step, n, std, engine=self.engine)
        self.step += 1
        return out

    def add_normal_device(self, vec, std: float) -> None:
        """``vec += std * z`` on the GPU (``vec`` a float64 device array), this step's
        noise drawn on the device, bit-identical to ``vec + normal(std, len(vec))``."""
        from npdpsnn.privacy.noise_cuda import philox_add_normal_device

        philox_add_normal_device(vec, self.key, self.step, std)
        self.step += 1

    def state_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, "step": self.step}

    @classmethod
    def from_state_dict(cls, state: dict, *, engine: ChunkRunner | None = None) -> PhiloxNoise:
        try:
            return cls.from_key(state["key"], state["step"], engine=engine)
        except (KeyError, TypeError, UserError) as exc:
            raise CheckpointError(f"corrupt Philox noise state ({exc})") from None


class SecureNoise(NoiseSource):
    """Noise for models meant for release: OS entropy, hardened against
    floating-point attacks on the Gaussian sampler.

    Each coordinate is ``std / sqrt(draws) * (z_1 + ... + z_draws)``, the ``z_d``
    independent N(0, 1) -- so exactly ``N(0, std^2)`` in real arithmetic -- each
    from its own four 32-bit words of ``os.urandom`` by the Box-Muller transform
    of :class:`PhiloxNoise` (first output only: no two draws share uniforms).

    Why: the floats a sampler can output are a sparse, structured subset of the
    reals.  Mironov (CCS 2012) showed for the Laplace mechanism, and Jin et al.
    ("Are we there yet?", IEEE S&P 2022) for the Gaussian one and DP-SGD, that an
    observed ``x + noise`` can be impossible for a neighbouring ``x'``, which
    reveals ``x``.  Holohan & Braghin ("Secure random sampling in differential
    privacy", ESORICS 2021; arXiv:2107.10138) use the infinite divisibility of the normal
    law: with the output a sum of several samples, telling which values are
    reachable means searching the joint space of all their uniforms, about
    ``2^(p (k - 1))`` work for ``k`` samples of ``p``-bit uniforms (Opacus's
    secure mode: 4 draws, ``p = 53``: about ``2^159``).  With uniforms from a
    CSPRNG the stream also cannot be predicted or replayed from a seed.

    What it does not do: it is a computational mitigation, not a proof that the
    floating-point mechanism is DP (a discrete Gaussian, Canonne, Kamath &
    Steinke 2020, would be); the rounding of ``sum + noise``, of the division by
    the batch size and of the float32 parameters is untouched; the sampler is not
    constant-time; and it covers the noise only -- batch sampling needs OS
    entropy too (``--noise-seed os``).  ``entropy(n) -> n bytes`` is
    ``os.urandom`` unless a test replaces it."""

    kind = "secure"
    resumable = False

    def __init__(self, draws: int = SECURE_DRAWS, *, entropy: Callable[[int], bytes] = os.urandom):
        if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 2:
            raise UserError(f"secure noise sums at least 2 draws per coordinate, got {draws!r}")
        self.draws = int(draws)
        self.entropy = entropy
        self.steps = 0

    def normal(self, std: float, n: int) -> np.ndarray:
        std, n = _check_draw(std, n)
        out = np.empty(n, np.float64)
        scale = std / math.sqrt(self.draws)
        per_chunk = 1 << 14  # coordinates per entropy request (1 MiB at 4 draws)
        for lo in range(0, n, per_chunk):
            hi = min(lo + per_chunk, n)
            nbytes = (hi - lo) * self.draws * 16
            raw = self.entropy(nbytes)
            if len(raw) != nbytes:
                raise RuntimeError(f"the entropy source returned {len(raw)} bytes, not {nbytes}")
            _summed_normal_kernel(np.frombuffer(raw, np.uint32), self.draws, scale, out[lo:hi])
        self.steps += 1
        return out

    def state_dict(self) -> dict:
        """Not a stream position: a resumed run continues with fresh entropy
        (``resumable`` False), which costs no privacy."""
        return {"kind": self.kind, "resumable": False, "draws": self.draws, "steps": self.steps}

    @classmethod
    def from_state_dict(cls, state: dict) -> SecureNoise:
        try:
            src = cls(state.get("draws", SECURE_DRAWS))
            src.steps = _check_word(state.get("steps", 0), 64, "the step count")
        except (AttributeError, UserError) as exc:
            raise CheckpointError(f"corrupt secure noise state ({exc})") from None
        log.info("secure noise: resuming with fresh OS entropy (the stream is not reproducible by design)")
        return src


NOISE_SOURCES: dict[str, type[NoiseSource]] = {c.kind: c for c in (HostNoise, PhiloxNoise, SecureNoise)}


def make_noise_source(kind: str, seed: SeedLike = None) -> NoiseSource:
    """A new source by name (``numpy``, ``philox``, ``secure``); ``seed`` is ignored
    by ``secure``."""
    if kind not in NOISE_SOURCES:
        raise UserError(f"unknown noise generator {kind!r}; choose one of {', '.join(NOISE_SOURCES)}")
    return SecureNoise() if kind == SecureNoise.kind else NOISE_SOURCES[kind](seed)


def noise_from_state(state: dict) -> NoiseSource:
    """Restore any source from its :meth:`~NoiseSource.state_dict` (a bare NumPy
    bit-generator state restores a :class:`HostNoise`)."""
    if not isinstance(state, dict):
        raise CheckpointError("corrupt noise state: not a mapping")
    kind = state.get("kind", HostNoise.kind if "bit_generator" in state else None)
    if kind not in NOISE_SOURCES:
        raise CheckpointError(f"unknown noise generator {kind!r} in the checkpoint")
    return NOISE_SOURCES[kind].from_state_dict(state)
