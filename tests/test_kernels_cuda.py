"""The numba.cuda backend against the float64 NumPy reference (issue 6).

Without a GPU the kernel tests run in Numba's CUDA simulator: the simulator is
chosen when numba is imported (``NUMBA_ENABLE_CUDASIM=1``), so
:func:`test_kernels_under_simulator` re-runs this file in a fresh interpreter
with that variable set and 8 threads per block (several strided rounds per
layer, 3 blocks per launch).  With a GPU (or when the variable is already set)
the kernel tests run directly.  ``pytest -m cuda`` selects this file.

Weights and inputs are dyadic (see ``test_kernels_cpu.py``), so the forward is
exact in float32 and spike trains agree with the reference bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest

from engine_helpers import dyadic_case
from npdpsnn.engine import Engine
from npdpsnn.errors import BackendError
from npdpsnn.kernels.backend import get_backend, resolve_device
from npdpsnn.kernels.cuda import cuda_unavailable_reason
from npdpsnn.network import Network

pytestmark = pytest.mark.cuda

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
_REASON = None if SIM else cuda_unavailable_reason()
CUDA_READY = _REASON is None
needs_cuda = pytest.mark.skipif(not CUDA_READY, reason="no GPU: run by test_kernels_under_simulator")

# (spec, input shape, model options): every layer kind, padding, strides,
# overlapping max-pools, a conv fed by spikes, fc layers fed by the image, the
# output layer alone, each surrogate, IF / LIF, detach_reset, the ANN.
CASES = {
    "conv-pool-fc/if/gate": ("3C3S1-P2S2-5-3", (1, 6, 6), dict(neuron="if", surrogate="gate", T=2)),
    "conv-pool-fc/lif/darctanh/detach": ("3C3S1-P2S2-5-3", (1, 6, 6),
                                         dict(neuron="lif", leak=0.5, surrogate="darctanh", T=3,
                                              detach_reset=True)),
    "two-convs/if/normal": ("2C3S1P1-A2S1-3C2S2P1-P2S1-4-3", (2, 6, 6),
                            dict(neuron="if", surrogate="normal", T=3, threshold=0.25)),
    "two-convs/ann": ("2C3S1P1-A2S1-3C2S2P1-P2S1-4-3", (2, 6, 6), dict(kind="ann")),
    "fc-only/lif/gate": ("4-3", (2, 3, 3), dict(neuron="lif", leak=0.75, surrogate="gate", T=3)),
    "output-only": ("3", (1, 3, 4), dict(T=2)),
}
B = 3


def _case(spec, shape, opts, seed=5, scale=2.0):
    return dyadic_case(spec, shape, opts, seed, scale, B)


def _flat(grads: dict, net: Network) -> np.ndarray:
    return np.concatenate([np.asarray(grads[s.name], np.float64).reshape(B, -1) for s in net.slots], axis=1)


class _NoCPU(types.ModuleType):
    def __getattr__(self, name):
        raise AssertionError(f"the CPU kernels were used (cpu.{name}) instead of CUDA")


@pytest.fixture
def cuda_only(monkeypatch):
    """The CPU kernel module is replaced by one that raises on any use, and the
    default engine's CUDA launch counter must move."""
    import npdpsnn.kernels
    from npdpsnn.kernels import numba_backend

    fake = _NoCPU("npdpsnn.kernels.cpu")
    monkeypatch.setitem(sys.modules, "npdpsnn.kernels.cpu", fake)
    monkeypatch.setattr(npdpsnn.kernels, "cpu", fake, raising=False)
    monkeypatch.setattr(numba_backend, "cpu", fake)
    be = get_backend("cuda")
    before = be.launches["example"]
    yield be
    assert be.launches["example"] > before


@needs_cuda
@pytest.mark.parametrize("case", list(CASES))
def test_cuda_matches_reference(case, cuda_only):
    assert_cuda_matches_reference(*_case(*CASES[case]))


def assert_cuda_matches_reference(net: Network, x: np.ndarray, y: np.ndarray) -> None:
    """Forward, per-example gradients, fused clipping, input gradients and input
    VJPs of the CUDA backend equal the reference's (``B`` examples)."""
    ann = net.config.kind == "ann"
    # Forward: exact spikes; ANN: float32 tanh.
    lg_c, lg_r = net.forward(x, "cuda"), net.forward(x, "reference")
    assert lg_c.dtype == np.float64 and lg_c.shape == (B, net.num_classes)
    assert np.abs(lg_c - lg_r).max() <= (1e-6 if ann else 1e-9) * (1 + np.abs(lg_r).max())
    # Per-example gradients.
    g_c, l_c = net.per_example_grads(x, y, backend="cuda")
    g_r, l_r = net.per_example_grads(x, y, backend="reference")
    assert np.abs(l_c - l_r).max() <= (1e-6 if ann else 1e-9) * (1 + np.abs(l_r).max())
    for s in net.slots:
        a, b = g_c[s.name], g_r[s.name]
        assert a.dtype == np.float32 and a.shape == b.shape, s.name
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max() + 1e-6, s.name
    # Fused clipping: sums, float64 norms, losses, correctness.
    flat_r = _flat(g_r, net)
    norms_r = np.linalg.norm(flat_r, axis=1)
    assert norms_r.min() > 0
    correct_r = np.argmax(lg_r, axis=1) == y
    for clip in (np.inf, 1e30, 0.25 * norms_r.min(), float(np.median(norms_r))):
        s_c, n_c, lo_c, co_c = net.clipped_grad_sum(x, y, clip, backend="cuda")
        assert s_c.dtype == np.float64 and s_c.shape == (net.num_params,)
        assert np.allclose(n_c, norms_r, rtol=1e-5, atol=1e-7)
        assert np.array_equal(lo_c, l_c)
        assert co_c.dtype == np.int8 and np.array_equal(co_c.astype(bool), correct_r)
        expected = (flat_r * np.minimum(1.0, clip / norms_r)[:, None]).sum(0)
        assert np.abs(s_c - expected).max() <= 1e-5 * np.abs(expected).max() + 1e-6, clip
        # ... and equals the backend's own per-example gradients clipped and summed.
        flat_c = _flat(g_c, net)
        scale = np.minimum(1.0, clip / np.linalg.norm(flat_c, axis=1))
        assert np.allclose(s_c, (flat_c * scale[:, None]).sum(0), rtol=1e-6, atol=1e-9)
    # Input gradients: of the cross-entropy, and the VJP of an upstream gradient.
    dx_c, dl_c = net.input_grads(x, y, backend="cuda")
    dx_r, _ = net.input_grads(x, y, backend="reference")
    assert dx_c.shape == x.shape and np.array_equal(dl_c, l_c)
    assert np.abs(dx_c - dx_r).max() <= 1e-5 * np.abs(dx_r).max() + 1e-6
    d = np.random.default_rng(3).normal(size=lg_r.shape)
    v_c, v_r = net.input_vjp(x, d, backend="cuda"), net.input_vjp(x, d, backend="reference")
    assert np.abs(v_c - v_r).max() <= 1e-5 * np.abs(v_r).max() + 1e-6


@needs_cuda
def test_device_data_and_empty_batches(cuda_only):
    from npdpsnn.kernels.cuda import _bytes_per_example

    be = cuda_only
    net, x, y = _case(*CASES["conv-pool-fc/lif/darctanh/detach"])
    data = be.bind(x, y)
    assert be.bind(x, y) is data  # cached: no second upload
    idx = np.array([2, 0, 2])
    ref = be.clipped_sum(net, x[idx], y[idx], 0.5)
    got = be.clipped_sum_indexed(net, data, idx, 0.5)
    for a, b in zip(got, ref, strict=True):
        assert np.array_equal(a, b)
    lg_h = be.forward(net, x[idx])
    assert np.array_equal(be.forward_indexed(net, data, idx), lg_h)
    # The same call twice gives the same bits (no atomics).
    assert np.array_equal(be.clipped_sum(net, x[idx], y[idx], 0.5).total, ref.total)
    with pytest.raises(IndexError):
        be.clipped_sum_indexed(net, data, np.array([3]), 0.5)
    # Batches larger than the workspace budget run in chunks (here 2 + 1
    # examples) with the same bits: the sum resumes from the last chunk's.
    g_h = be.per_example_grads(net, x[idx], y[idx])
    dx_h = be.input_grads(net, x[idx], y[idx])
    small = get_backend("cuda", engine=Engine(cuda_workspace_bytes=2 * _bytes_per_example(net.program, net.config.steps)))
    assert small is not be and small.capacity(net) == 2
    for what, got, want in [
        ("clipped_sum", small.clipped_sum(net, x[idx], y[idx], 0.5), ref),
        ("clipped_sum_indexed", small.clipped_sum_indexed(net, small.bind(x, y), idx, 0.5), ref),
        ("per_example_grads", small.per_example_grads(net, x[idx], y[idx]), g_h),
        ("input_grads", small.input_grads(net, x[idx], y[idx]), dx_h),
        ("forward", (small.forward(net, x[idx]),), (lg_h,)),
        ("forward_indexed", (small.forward_indexed(net, small.bind(x, y), idx),), (lg_h,)),
    ]:
        for k, (a, b) in enumerate(zip(got, want, strict=True)):
            assert np.array_equal(a, b), (what, k)
    assert small.launches["example"] == 12
    # Two engines: separate workspaces and bound data.
    assert small._workspaces and not any(w in be._workspaces.values() for w in small._workspaces.values())
    # Empty batches.
    s0, n0, l0, c0 = be.clipped_sum(net, x[:0], y[:0], 1.0)
    assert np.array_equal(s0, np.zeros(net.num_params)) and n0.shape == l0.shape == c0.shape == (0,)
    assert be.forward(net, x[:0]).shape == (0, net.num_classes)
    g0, l0 = be.per_example_grads(net, x[:0], y[:0])
    assert g0.shape == (0, net.num_params) and l0.shape == (0,)
    assert be.input_grads(net, x[:0], y[:0]).grads.shape == (0, *x.shape[1:])


@needs_cuda
def test_resolve_device_with_cuda():
    assert resolve_device("cuda") == "cuda"
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cpu") == "numba"


@pytest.mark.skipif(CUDA_READY, reason="CUDA (or the simulator) is usable here")
def test_resolve_device_without_cuda(caplog):
    with pytest.raises(BackendError) as err:
        resolve_device("cuda")
    msg = str(err.value)
    assert msg.startswith("device cuda:") and "\n" not in msg
    with caplog.at_level("WARNING"):
        assert resolve_device("auto") == "numba"
    assert any("running on the CPU" in r.getMessage() for r in caplog.records)
    # The backend itself refuses with the same kind of error.
    net, x, y = _case(*CASES["output-only"])
    with pytest.raises(BackendError):
        net.forward(x, "cuda")


def test_import_is_lazy():
    """Importing the package and the CUDA module does not import numba.cuda."""
    code = ("import sys, npdpsnn.network, npdpsnn.engine, npdpsnn.kernels.backend, npdpsnn.kernels.cuda, "
            "npdpsnn.kernels.dispatch; "
            "assert 'numba.cuda' not in sys.modules, 'numba.cuda imported eagerly'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.skipif(CUDA_READY, reason="the kernel tests run directly here")
def test_kernels_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NPDPSNN_CUDA_THREADS="8")
    tests = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "-k", "not simulator",
         os.path.abspath(__file__)],
        cwd=tests, env=env, capture_output=True, text=True, timeout=600,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    n_kernel_tests = len(CASES) + 2  # matches_reference cases, device data, resolve_device
    assert f"{n_kernel_tests + 1} passed" in out, out[-3000:]  # + test_import_is_lazy
