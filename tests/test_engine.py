"""Engine settings and state (:mod:`npdpsnn.engine`): environment overrides read
when used, independent engines, and bit-identical results whatever the number of
kernel threads and the BLAS threading of the environment (issue 10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from npdpsnn.engine import CHUNK, Engine, blas_single_threaded, configure_numba_cache, default_engine
from npdpsnn.errors import BackendError
from npdpsnn.kernels import dispatch
from npdpsnn.kernels.backend import get_backend
from npdpsnn.network import Network

# A net whose conv GEMMs are large enough for OpenBLAS to use threads when allowed.
SPEC, SHAPE = "8C5S1-P2S2-8C3S1-12-10", (1, 20, 20)
BATCH = 3 * CHUNK + 5


def _problem():
    net = Network.from_spec(SPEC, SHAPE, seed=7, T=3)
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 1.0, (BATCH, *SHAPE)).astype(np.float32)
    y = rng.integers(0, 10, BATCH)
    return net, x, y


# Run in a child process: the clipped sum with 1 and 2 kernel threads, hashed,
# and the BLAS thread counts seen inside and after the library call.
_CHILD = """
import hashlib, json, os, sys
sys.path.insert(0, {tests!r})
from threadpoolctl import threadpool_info
import numpy as np
from test_engine import _problem
from npdpsnn.engine import Engine, blas_single_threaded
from npdpsnn.kernels.backend import get_backend
net, x, y = _problem()
env_before = dict(os.environ)
out = {{}}
for n in (1, 2):
    be = get_backend("numba", engine=Engine(threads=n))
    s = be.clipped_sum(net, x, y, 0.5)
    out[str(n)] = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in s)).hexdigest()
with blas_single_threaded():
    out["inside"] = sorted({{i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}})
out["after"] = sorted({{i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}})
out["env_unchanged"] = dict(os.environ) == env_before
print(json.dumps(out))
"""


def _child(blas_threads: str) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=blas_threads, OMP_NUM_THREADS=blas_threads)
    code = _CHILD.format(tests=os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_clipped_sum_bits_do_not_depend_on_kernel_or_blas_threads():
    one, two = _child("1"), _child("2")
    assert one["1"] == one["2"] == two["1"] == two["2"]
    # Inside the library's calls BLAS is single-threaded; the environment's
    # setting is restored afterwards and no environment variable changes.
    assert one["inside"] == two["inside"] == [1]
    assert one["after"] == [1] and two["after"] == [2]
    assert one["env_unchanged"] and two["env_unchanged"]


def test_blas_guard_nests_and_restores():
    import scipy.linalg.cython_blas  # noqa: F401 - the BLAS the kernels call, loaded before counting
    from threadpoolctl import threadpool_info

    def counts():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = counts()
    with blas_single_threaded():
        with blas_single_threaded():
            assert set(counts()) == {1}
        assert set(counts()) == {1}
    assert counts() == before


def test_thread_counts_give_the_same_bits_in_process():
    net, x, y = _problem()
    a = get_backend("numba", engine=Engine(threads=1)).clipped_sum(net, x, y, 0.5)
    b = get_backend("numba", engine=Engine(threads=2)).clipped_sum(net, x, y, 0.5)
    for u, v in zip(a, b, strict=True):
        assert np.array_equal(u, v)


# ------------------------------------------------------------------ settings
def test_settings_are_read_from_the_environment_when_used(monkeypatch):
    eng = Engine()
    monkeypatch.setenv("NPDPSNN_THREADS", "3")
    monkeypatch.setenv("NPDPSNN_CUDA_THREADS", "64")
    monkeypatch.setenv("NPDPSNN_CUDA_WORKSPACE_MB", "5")
    assert (eng.threads, eng.cuda_threads, eng.cuda_workspace_bytes) == (3, 64, 5 * 2**20)
    monkeypatch.setenv("NPDPSNN_THREADS", "1")
    assert eng.threads == 1
    monkeypatch.delenv("NPDPSNN_THREADS")
    monkeypatch.delenv("NPDPSNN_CUDA_THREADS")
    assert eng.threads >= 1 and eng.cuda_threads == 256
    # A value fixed on the engine wins over the environment.
    monkeypatch.setenv("NPDPSNN_THREADS", "3")
    assert Engine(threads=2).threads == 2
    assert Engine(cuda_workspace_bytes=1000).cuda_workspace_bytes == 1000


@pytest.mark.parametrize("var, value", [("NPDPSNN_THREADS", "0"), ("NPDPSNN_THREADS", "two"),
                                        ("NPDPSNN_CUDA_THREADS", "2048"), ("NPDPSNN_CUDA_WORKSPACE_MB", "-1")])
def test_bad_environment_values(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    eng = Engine()
    with pytest.raises(BackendError, match=var):
        (eng.threads, eng.cuda_threads, eng.cuda_workspace_bytes)


def test_bad_engine_arguments():
    for kw in (dict(threads=0), dict(threads=1.5), dict(cuda_threads=0), dict(cuda_workspace_bytes=0)):
        with pytest.raises(BackendError):
            Engine(**kw)
    with pytest.raises(BackendError):
        Engine().set_threads(0)


def test_numba_cache_dir_setting(monkeypatch, tmp_path):
    from numba import config

    monkeypatch.setattr(config, "CACHE_DIR", config.CACHE_DIR)  # restored after the test
    monkeypatch.delenv("NPDPSNN_NUMBA_CACHE_DIR", raising=False)
    before = config.CACHE_DIR
    configure_numba_cache()
    assert config.CACHE_DIR == before  # unset: Numba's own choice
    monkeypatch.setenv("NPDPSNN_NUMBA_CACHE_DIR", str(tmp_path))
    configure_numba_cache()
    assert config.CACHE_DIR == str(tmp_path)
    assert "NUMBA_CACHE_DIR" not in os.environ or os.environ["NUMBA_CACHE_DIR"] != str(tmp_path)


# ------------------------------------------------------------------ state
def test_two_engines_are_independent():
    net, x, y = _problem()
    e1, e2 = Engine(threads=1), Engine(threads=2)
    b1, b2 = get_backend("numba", engine=e1), get_backend("numba", engine=e2)
    assert b1 is get_backend("numba", engine=e1) and b1 is not b2
    assert b1.engine is e1 and b2.engine is e2
    serial = b1.clipped_sum(net, x, y, 0.5)
    results = {}

    def run(name, be):
        results[name] = [be.clipped_sum(net, x, y, 0.5) for _ in range(3)]

    threads = [threading.Thread(target=run, args=(n, b)) for n, b in (("a", b1), ("b", b2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):
        for res in results[name]:
            for u, v in zip(res, serial, strict=True):
                assert np.array_equal(u, v)
    assert e1._pool is None and e2._pool is not None  # one thread: no pool
    e2.close()
    assert e2._pool is None and get_backend("numba", engine=e2) is not b2  # state dropped
    assert get_backend("numba", engine=e1) is b1


def test_default_engine_and_former_entry_points():
    eng = default_engine()
    assert default_engine() is eng and get_backend("numba") is get_backend("numba", engine=eng)
    n, fixed = dispatch.get_threads(), eng._threads
    try:
        dispatch.set_threads(1)
        assert eng.threads == 1 == dispatch.get_threads()
    finally:
        eng.set_threads(fixed)
    assert dispatch.get_threads() == n
    assert dispatch.resolve_device("cpu") == "numba"
    with pytest.raises(BackendError):
        dispatch.set_threads(0)
    with pytest.raises(BackendError, match="unknown device"):
        dispatch.resolve_device("tpu")
