"""Gaussian noise sources (:mod:`npdpsnn.privacy.noise`): Philox known answers,
statistics, determinism across threads and chunks, exact resume, and the CUDA
kernel against the CPU one.

Statistical checks use fixed seeds (or a seeded byte source in place of
``os.urandom``), so they are deterministic; each threshold is the quantile at
which a correct sampler with a *random* seed would fail with probability
:data:`ALPHA` (two-sided).  The one check on real OS entropy is not
deterministic: it fails wrongly with probability < 6 * ALPHA.

Without a GPU the CUDA tests run in Numba's CUDA simulator, in a fresh
interpreter (:func:`test_cuda_under_simulator`, as in ``test_kernels_cuda.py``);
:func:`test_cuda_kernel_has_no_fused_multiply_add` compiles the kernel to PTX
(NVVM, no GPU needed) and checks the instructions that bit-identity rests on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest
from scipy import stats

from npdpsnn.engine import Engine
from npdpsnn.errors import CheckpointError, UserError
from npdpsnn.privacy import noise as nz
from npdpsnn.privacy import philox as px
from npdpsnn.privacy.noise import (
    HostNoise, PhiloxNoise, SecureNoise, make_noise_source, noise_from_state, philox4x32_10, philox_normal,
)

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
ALPHA = 1e-6
Z = stats.norm.isf(ALPHA / 2)  # 4.89

# Random123's kat_vectors, "philox4x32 10" lines: counter (4 words), key (2 words) -> output (4 words).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.fixture(scope="module")
def engines():
    one, two = Engine(threads=1), Engine(threads=2)
    yield one, two
    one.close()
    two.close()


def _seeded_bytes(seed):
    return np.random.default_rng(seed).bytes


def assert_gaussian(x: np.ndarray, std: float) -> None:
    """Mean, variance, KS, 3-sigma tail count and pair correlation of ``x`` against
    N(0, std^2), each at false-failure probability ALPHA."""
    n = x.size
    assert abs(x.mean()) <= Z * std / np.sqrt(n)
    chi = (n - 1) * x.var(ddof=1) / std**2  # ~ chi2(n - 1)
    assert stats.chi2.ppf(ALPHA / 2, n - 1) <= chi <= stats.chi2.isf(ALPHA / 2, n - 1)
    assert stats.kstest(x / std, "norm").pvalue > ALPHA
    tail = int(np.sum(np.abs(x) > 3 * std))
    p3 = 2 * stats.norm.sf(3)
    assert stats.binom.cdf(tail, n, p3) > ALPHA / 2 and stats.binom.sf(tail - 1, n, p3) > ALPHA / 2
    m = n // 2  # Box-Muller partners (2j, 2j + 1) must be uncorrelated
    assert abs(np.corrcoef(x[0:2 * m:2], x[1:2 * m:2])[0, 1]) <= Z / np.sqrt(m)


# ------------------------------------------------------------------ Philox
@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answer_vectors(counter, key, expected):
    assert philox4x32_10(counter, key) == expected
    # the plain Python source of the kernels gives the same words
    out = px._philox_rounds(*(np.uint64(w) for w in counter), *(np.uint64(w) for w in key))
    assert tuple(int(w) for w in out) == expected


def test_philox_rejects_bad_words():
    for counter, key in [((0, 0, 0), (0, 0)), ((0, 0, 0, 1 << 32), (0, 0)), ((0, 0, 0, 0), (-1, 0)),
                         ((0, 0, 0, 0.5), (0, 0))]:
        with pytest.raises(UserError):
            philox4x32_10(counter, key)


def test_compiled_kernel_equals_its_python_source(engines):
    # The njit kernel and the interpreter running the same functions agree bit for
    # bit: no fused multiply-add, no integer type drifting to float64.
    key, step, n, std = 0x0123456789ABCDEF, 2**40 + 3, 65, 1.7
    k0, k1 = nz.split_key(key)
    ref = []
    for j in range((n + 1) // 2):
        z0, z1 = px._philox_pair(np.uint64(j), np.uint64(step), k0, k1)
        ref += [std * z0, std * z1]
    assert np.array_equal(philox_normal(key, step, n, std, engine=engines[0]), np.array(ref[:n]))


def test_box_muller_pieces_are_accurate():
    mpmath.mp.dps = 40
    rng = np.random.default_rng(3)
    edges = [1, 2, 3, 2**26, 2**52 - 1, 2**52, 2**52 + 1, 6369051672525772, 6369051672525773, 2**53 - 1, 2**53]
    for a in edges + rng.integers(1, 2**53, 200, dtype=np.uint64).tolist():
        got, exact = px._ln_unit(np.uint64(a)), mpmath.log(mpmath.mpf(a) / 2**53)
        assert abs(got - float(exact)) <= 4e-16 * abs(float(exact)), a
    for b in [0, 1, 2**50 - 1, 2**50, 2**51, 3 * 2**50, 2**52, 2**53 - 1] + \
            rng.integers(0, 2**53, 200, dtype=np.uint64).tolist():
        c, s = px._cos_sin_turn(np.uint64(b))
        theta = 2 * mpmath.pi * mpmath.mpf(b) / 2**53
        assert abs(c - float(mpmath.cos(theta))) <= 2.3e-16 and abs(s - float(mpmath.sin(theta))) <= 2.3e-16, b


def test_philox_bits_do_not_depend_on_threads_or_chunks(engines):
    one, two = engines
    key, step, n = 99, 12, 10_001
    ref = philox_normal(key, step, n, 0.5, engine=one, chunk=n)
    for engine in engines:
        for chunk in (1, 7, 1024, 4096):
            assert np.array_equal(philox_normal(key, step, n, 0.5, engine=engine, chunk=chunk), ref)
    # element i depends on (key, step, i) only: a shorter draw is a prefix
    assert np.array_equal(philox_normal(key, step, 501, 0.5, engine=two), ref[:501])


def test_steps_and_keys_give_different_uncorrelated_streams(engines):
    n = 20_000
    base = philox_normal(5, 0, n, engine=engines[0])
    for other in (philox_normal(5, 1, n, engine=engines[0]), philox_normal(6, 0, n, engine=engines[0]),
                  philox_normal(5 + 2**32, 0, n, engine=engines[0]), philox_normal(5, 2**32, n, engine=engines[0])):
        assert np.count_nonzero(other == base) == 0
        assert abs(np.corrcoef(base, other)[0, 1]) <= Z / np.sqrt(n)
    # the first elements of many steps are themselves N(0, 1)
    firsts = np.concatenate([philox_normal(5, s, 4, engine=engines[0]) for s in range(3000)])
    assert stats.kstest(firsts, "norm").pvalue > ALPHA


# ------------------------------------------------------------------ statistics of every source
@pytest.mark.parametrize("make", [
    lambda: HostNoise(np.random.SeedSequence([0, 2])),
    lambda: PhiloxNoise(np.random.SeedSequence([0, 2]), engine=Engine(threads=2)),
    lambda: SecureNoise(entropy=_seeded_bytes(7)),
], ids=["numpy", "philox", "secure"])
def test_noise_is_gaussian(make):
    src = make()
    std = 1.3 * 1.5
    assert_gaussian(src.normal(std, 200_000), std)
    assert_gaussian(src.normal(1.0, 100_001), 1.0)  # the next step, odd length
    assert src.normal(0.0, 10).tolist() == [0.0] * 10 and src.normal(2.0, 0).shape == (0,)


def test_secure_noise_from_os_entropy_is_gaussian():
    # Not deterministic (real OS entropy): wrong failure probability < 6 ALPHA.
    assert_gaussian(SecureNoise().normal(0.7, 100_000), 0.7)


def test_secure_noise_sums_independent_draws():
    # With a constant byte source every draw of a coordinate is the same z, so the
    # coordinate is std / sqrt(draws) * draws * z: the sum is really over `draws` draws.
    z = SecureNoise(2, entropy=lambda k: b"\x5a" * k).normal(1.0, 3)
    z4 = SecureNoise(4, entropy=lambda k: b"\x5a" * k).normal(1.0, 3)
    assert np.all(z == z[0]) and np.allclose(z4, z * np.sqrt(2), rtol=1e-15)


# ------------------------------------------------------------------ reproducibility and resume
def test_host_noise_is_bit_identical_to_the_trainers_generator():
    seed, sigma, clip, p = 4, 1.1, 1.5, 1001
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 2])))
    src = HostNoise(np.random.SeedSequence([seed, 2]))
    for _ in range(3):
        assert np.array_equal(src.normal(sigma * clip, p), rng.normal(0.0, sigma * clip, size=p))


@pytest.mark.parametrize("make", [lambda: HostNoise(11), lambda: PhiloxNoise(11)], ids=["numpy", "philox"])
def test_resume_from_state_dict_is_exact(make):
    src = make()
    for _ in range(3):
        src.normal(1.5, 777)
    state = json.loads(json.dumps(src.state_dict()))  # as stored in a checkpoint
    after = [src.normal(1.5, 777) for _ in range(2)]
    resumed = noise_from_state(state)
    assert type(resumed) is type(src) and resumed.resumable
    assert all(np.array_equal(a, resumed.normal(1.5, 777)) for a in after)


def test_philox_state_is_key_and_step():
    src = PhiloxNoise(np.random.SeedSequence([3, 2]))
    assert src.state_dict() == {"kind": "philox", "key": nz.philox_key(np.random.SeedSequence([3, 2])), "step": 0}
    first = src.normal(1.0, 50)
    assert src.step == 1 and np.array_equal(first, philox_normal(src.key, 0, 50))
    assert np.array_equal(PhiloxNoise.from_key(src.key, 1).normal(1.0, 50), src.normal(1.0, 50))


def test_checkpoint_rng_state_of_older_runs_restores_host_noise():
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([9, 2])))
    rng.normal(size=5)
    src = noise_from_state(json.loads(json.dumps(rng.bit_generator.state)))
    assert isinstance(src, HostNoise) and np.array_equal(src.normal(2.0, 9), rng.normal(0.0, 2.0, 9))


def test_secure_noise_is_not_reproducible_and_resumes_fresh():
    a, b = SecureNoise(), SecureNoise()
    x, y = a.normal(1.0, 1000), b.normal(1.0, 1000)
    assert np.count_nonzero(x == y) == 0
    state = json.loads(json.dumps(a.state_dict()))
    assert state["resumable"] is False and not a.resumable and state["steps"] == 1
    c = noise_from_state(state)
    assert isinstance(c, SecureNoise) and c.steps == 1 and c.draws == a.draws
    assert np.count_nonzero(c.normal(1.0, 1000) == a.normal(1.0, 1000)) == 0


@pytest.mark.parametrize("state", [
    None, [], {"kind": "bogus"}, {"kind": "philox", "key": -1, "step": 0}, {"kind": "philox", "step": 0},
    {"kind": "philox", "key": 1, "step": "x"}, {"kind": "numpy", "bit_generator": {"bit_generator": "os.system"}},
    {"kind": "numpy", "bit_generator": {"bit_generator": "PCG64", "state": {"state": "x", "inc": 1}}},
    {"bit_generator": "PCG64", "state": {}}, {"kind": "secure", "draws": 1},
])
def test_corrupt_noise_states_are_refused(state):
    with pytest.raises(CheckpointError):
        noise_from_state(state)


def test_bad_arguments_are_user_errors():
    src = PhiloxNoise(0)
    for std, n in [(float("nan"), 3), (-1.0, 3), (float("inf"), 3), (1.0, -1), (1.0, 2.5), (1.0, True)]:
        for s in (src, HostNoise(0), SecureNoise()):
            with pytest.raises(UserError):
                s.normal(std, n)
    with pytest.raises(UserError):
        SecureNoise(draws=1)
    with pytest.raises(UserError):
        make_noise_source("gaussian")
    with pytest.raises(UserError):
        PhiloxNoise("seed")
    with pytest.raises(UserError):
        philox_normal(2**64, 0, 3)
    assert src.step == 0  # nothing was drawn
    assert [type(make_noise_source(k, 1)) for k in ("numpy", "philox", "secure")] == [
        HostNoise, PhiloxNoise, SecureNoise]


# ------------------------------------------------------------------ CUDA
def _cuda_ready() -> bool:
    try:
        from numba import cuda

        return SIM or bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - any failure means no usable GPU
        return False


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda_ready(), reason="no GPU: run by test_cuda_under_simulator")
def test_cuda_noise_is_bit_identical_to_cpu():
    from numba import cuda

    from npdpsnn.privacy.noise_cuda import philox_add_normal_device, philox_normal_device

    one = Engine(threads=1)
    for key, step, n, std in [(12345, 0, 37, 1.5), (2**64 - 1, 2**33 + 1, 64, 0.25), (7, 3, 1, 2.0)]:
        host = philox_normal(key, step, n, std, engine=one)
        assert np.array_equal(philox_normal_device(key, step, n, std).copy_to_host(), host)
        base = np.random.default_rng(step).normal(size=n)
        vec = cuda.to_device(base)
        philox_add_normal_device(vec, key, step, std)
        assert np.array_equal(vec.copy_to_host(), base + host)
    # the source advances its step on the device as on the host
    gpu, cpu = PhiloxNoise(21), PhiloxNoise(21, engine=one)
    for _ in range(2):
        vec = cuda.to_device(np.zeros(9))
        gpu.add_normal_device(vec, 0.5)
        assert np.array_equal(vec.copy_to_host(), 0.0 + cpu.normal(0.5, 9))
    assert gpu.state_dict() == cpu.state_dict()


@pytest.mark.skipif(SIM, reason="already in the simulator")
def test_cuda_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    tests = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", os.path.abspath(__file__)],
        cwd=tests, env=env, capture_output=True, text=True, timeout=600,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "1 passed" in out, out[-3000:]


_PTX_SCRIPT = textwrap.dedent("""
    import re, sys, types
    try:
        from numba import cuda
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
        import numba.cuda.dispatcher as dispatcher
        # device functions ask the current GPU for its compute capability; there may be none
        dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))
    except Exception as exc:
        print("SKIP", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        sys.exit(0)
    from npdpsnn.privacy import noise_cuda
    sig = "void(float64[::1], int64, uint64, uint64, uint64, float64, boolean)"
    try:
        ptx, _ = cuda.compile_ptx(noise_cuda._philox_kernel.py_func, sig, cc=(8, 0))
    except Exception as exc:  # a numba.cuda that still asks for a driver: no GPU here
        if "Cuda" not in type(exc).__name__:
            raise
        print("SKIP", type(exc).__name__)
        sys.exit(0)
    ops = re.findall(r"\\b(?:fma|mad|mul|add|sub|div|sqrt|ex2|lg2|sin|cos)[.a-z0-9]*f64\\b", ptx)
    print(" ".join(sorted(set(ops))))
""")


@pytest.mark.skipif(SIM, reason="the simulator compiles nothing")
def test_cuda_kernel_has_no_fused_multiply_add():
    # Compiled to PTX for sm_80 (no GPU needed, only NVVM): every float64 product
    # is mul.rn (never contracted), there is no fma/mad and no transcendental
    # instruction, and / and sqrt are the IEEE-rounded forms -- the operations
    # that round as on the CPU.
    r = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], capture_output=True, text=True, timeout=300)
    out = r.stdout.strip()
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    if out.startswith("SKIP"):
        pytest.skip(f"cannot compile PTX here: {out}")
    ops = set(out.split())
    assert {"mul.rn.f64", "add.rn.f64", "div.rn.f64", "sqrt.rn.f64"} <= ops, ops
    assert ops <= {"mul.rn.f64", "add.rn.f64", "add.f64", "sub.f64", "div.rn.f64", "sqrt.rn.f64"}, ops
