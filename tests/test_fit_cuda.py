"""The CUDA training path of ``fit()`` (bound device data, fused clipped sum, per-layer
clipping through per-example gradients), run in Numba's CUDA simulator without a GPU.

The simulator is chosen when numba is imported, so without a GPU
:func:`test_cuda_fit_under_simulator` re-runs this file in a fresh interpreter with
``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from npdpsnn.data import Dataset
from npdpsnn.engine import Engine
from npdpsnn.kernels.backend import get_backend
from npdpsnn.kernels.cuda import cuda_unavailable_reason
from npdpsnn.training.config import TrainConfig
from npdpsnn.training.trainer import fit

pytestmark = pytest.mark.cuda
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
needs_cuda = pytest.mark.skipif(not SIM and cuda_unavailable_reason() is not None,
                                reason="no GPU: run by test_cuda_fit_under_simulator")


def _data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=40).astype(np.int64)
    return Dataset(name="synthetic", train_x=x[:32], train_y=y[:32], test_x=x[32:], test_y=y[32:], num_classes=3,
                   input_shape=(1, 6, 6), normalization={"mean": 0.0, "std": 1.0}, source="test")


@needs_cuda
@pytest.mark.parametrize("clipping", ["flat", "per-layer"])
def test_cuda_fit_matches_numba(clipping):
    cfg = TrainConfig.from_values("synthetic", {"net": "2C3S1-P2S2-3", "model.T": 2, "dp.sigma": 0.5,
                                                "dp.clip": 1.0, "dp.clipping": clipping, "optim.batch_size": 8,
                                                "optim.lr": 0.1, "optim.epochs": 1})
    engine = Engine()
    cuda = get_backend("cuda", engine)
    on_gpu = fit(cfg, _data(), backend=cuda)
    on_cpu = fit(cfg, _data(), backend="numba")
    assert cuda.launches["example"] > 0
    if clipping == "flat":
        assert cuda.launches["sum"] > 0  # the fused clipped sum ran on the device
    np.testing.assert_allclose(on_gpu.network.theta, on_cpu.network.theta, rtol=0, atol=1e-5)
    assert on_gpu.trainer.accountant == on_cpu.trainer.accountant
    assert on_gpu.metrics[0]["test_accuracy"] == on_cpu.metrics[0]["test_accuracy"]
    engine.close()


@pytest.mark.skipif(SIM, reason="this is the launcher")
def test_cuda_fit_under_simulator():
    if cuda_unavailable_reason() is None:
        pytest.skip("a GPU is present: the tests above ran on it")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NPDPSNN_CUDA_THREADS="8")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.abspath(__file__)],
                       cwd=os.path.dirname(os.path.abspath(__file__)), env=env, capture_output=True, text=True,
                       timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "2 passed" in out, out[-4000:]
