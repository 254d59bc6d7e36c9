"""CUDA benchmark of npdpsnn (issue 6): one command, JSON lines on stdout.

    python bench/bench_cuda.py                       # everything below
    python bench/bench_cuda.py --quick               # batch 250 only, no epoch
    python bench/bench_cuda.py --out bench/results/cuda-h100.json

Needs a GPU with numba-cuda (or numba's built-in CUDA target) and MNIST under
``NPDPSNN_DATA`` (random images with ``--synthetic``).

Rows (``"kind"`` field):
* ``device``: GPU name, numba / numba-cuda versions, threads per block.
* ``compile``: wall time of the first call (kernel compilation + first launch)
  and of the second, warm, call at batch 1.
* ``step``: one full DP-SGD step of Net2 (T=5 SNN, or the ANN) at batch 250 and
  1024 -- median ms over ``--steps`` steps after ``--warmup``.  ``path`` is
  ``api`` (``Network.clipped_grad_sum(..., backend="cuda")`` on a host batch:
  layout conversion, upload, kernels, download, then host float64 noise and the
  SGD update), or ``device_data`` (the images stay on the GPU via
  ``get_backend("cuda").bind``; only indices and parameters go up).  ``kernel_ms`` is the
  GPU time of the two kernels alone (CUDA events).
* ``epoch``: wall time of one DP epoch of MNIST: 60000 examples, Poisson
  sampling q = 250/60000 (240 steps of about 250), sigma = 1.0, R = 1.5, host
  noise and SGD update -- both paths; with ``--trainer`` also the
  ``Trainer(backend="cuda")`` epoch's own train seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

NET2 = "16C7S1-P2S2-32C4S1-P2S2-32-10"
ROWS: list[dict] = []


def emit(row: dict) -> None:
    ROWS.append(row)
    print(json.dumps(row), flush=True)


def load_data(synthetic: bool, n: int = 60000):
    if not synthetic:
        try:
            from npdpsnn.data import load_dataset

            ds = load_dataset("mnist", download=False)
            return ds.train_x, ds.train_y, "mnist"
        except Exception as exc:  # noqa: BLE001
            print(f"# MNIST not available ({exc}); using random images", file=sys.stderr)
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (n, 1, 28, 28)).astype(np.float32)
    return x, rng.integers(0, 10, n), "synthetic"


def make_net(kind: str, T: int = 5):
    from npdpsnn.model.config import ModelConfig
    from npdpsnn.network import Network

    cfg = ModelConfig(kind=kind, neuron="if", surrogate="gate", T=T, threshold=0.5, leak=0.2)
    return Network(NET2, (1, 28, 28), cfg, seed=0)


class Stepper:
    """One DP-SGD step (clipped sum, host noise, SGD update) on either path."""

    def __init__(self, net, train_x, train_y, path: str, sigma=1.0, clip=1.5, lr=0.25, batch=250):
        from npdpsnn.kernels.backend import get_backend
        from npdpsnn.training.optimizer import SGD

        self.net, self.x, self.y, self.path = net, train_x, train_y, path
        self.sigma, self.clip, self.batch = sigma, clip, batch
        self.opt = SGD(net.num_params, lr)
        self.rng = np.random.default_rng(1)
        self.be = get_backend("cuda")
        if path == "device_data":
            self.data = self.be.bind(train_x, train_y)

    def grad_sum(self, idx):
        net = self.net
        if self.path == "api":
            s, _, losses, correct = net.clipped_grad_sum(self.x[idx], self.y[idx], self.clip, backend="cuda")
        else:
            s, _, losses, correct = self.be.clipped_sum_indexed(net, self.data, idx, self.clip)
        return s, losses, correct

    def step(self, idx):
        from npdpsnn.privacy.mechanism import add_noise

        s, losses, correct = self.grad_sum(idx)
        grad = add_noise(s, self.sigma, self.clip, self.batch, self.rng)
        self.opt.step(self.net.theta, grad)
        return float(losses.sum()), int(correct.sum())


def sync():
    from numba import cuda

    cuda.synchronize()


def kernel_time_ms(net, data, idx, clip, reps=5) -> float:
    """GPU time of the example + sum kernels (CUDA events), median of ``reps``."""
    from numba import cuda

    from npdpsnn.kernels.backend import get_backend
    from npdpsnn.kernels.cuda_kernels import MODE_CLIP

    be = get_backend("cuda")
    didx = cuda.to_device(np.ascontiguousarray(idx, np.int64))
    out = []
    for _ in range(reps):
        e0, e1 = cuda.event(), cuda.event()
        e0.record()
        ws = be._launch(net, data.x, data.y, didx, len(idx), MODE_CLIP, clip)
        be._sum(net.program, ws, len(idx))
        e1.record()
        e1.synchronize()
        out.append(cuda.event_elapsed_time(e0, e1))
    return statistics.median(out)


def bench_steps(train_x, train_y, batches, kinds, steps, warmup):
    from npdpsnn.kernels.backend import get_backend

    rng = np.random.default_rng(2)
    data = get_backend("cuda").bind(train_x, train_y)
    for kind in kinds:
        for B in batches:
            for path in ("api", "device_data"):
                net = make_net(kind)
                st = Stepper(net, train_x, train_y, path, batch=B)
                times = []
                for i in range(warmup + steps):
                    idx = np.sort(rng.choice(len(train_x), B, replace=False))
                    t0 = time.perf_counter()
                    st.step(idx)
                    dt = time.perf_counter() - t0
                    if i >= warmup:
                        times.append(dt)
                ms = 1e3 * statistics.median(times)
                row = {"kind": "step", "model": kind, "net": "net2", "T": 5 if kind == "snn" else 1, "batch": B,
                       "path": path, "ms_per_step": round(ms, 3), "examples_per_second": round(B / (ms / 1e3), 1),
                       "steps": steps}
                if path == "device_data":
                    idx = np.sort(rng.choice(len(train_x), B, replace=False))
                    row["kernel_ms"] = round(kernel_time_ms(net, data, idx, 1.5), 3)
                emit(row)


def bench_epoch(train_x, train_y, paths=("api", "device_data")):
    from npdpsnn.privacy.sampling import PoissonSampler

    for path in paths:
        net = make_net("snn")
        st = Stepper(net, train_x, train_y, path, batch=250)
        sampler = PoissonSampler(len(train_x), 250, np.random.default_rng(3))
        st.step(np.arange(250))  # warm (compiled, buffers allocated)
        sync()
        t0 = time.perf_counter()
        n = loss = correct = steps = 0
        for idx in sampler.epoch():
            ls, nc = st.step(idx)
            n += len(idx)
            loss += ls
            correct += nc
            steps += 1
        sync()
        wall = time.perf_counter() - t0
        emit({"kind": "epoch", "path": path, "model": "snn", "net": "net2", "T": 5, "examples": n, "steps": steps,
              "seconds": round(wall, 3), "examples_per_second": round(n / wall, 1),
              "train_loss": round(loss / max(n, 1), 4), "train_accuracy": round(correct / max(n, 1), 4)})


def bench_trainer():
    from npdpsnn.data import load_dataset
    from npdpsnn.training.config import TrainConfig
    from npdpsnn.training.trainer import Trainer

    ds = load_dataset("mnist", download=False)
    cfg = TrainConfig(dataset="mnist", epochs=1, sigma=1.0, device="cuda")
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(cfg, ds, d, backend="cuda")
        t0 = time.perf_counter()
        tr.run()
        wall = time.perf_counter() - t0
        row = tr.metrics[-1]
    emit({"kind": "epoch", "path": "trainer", "model": "snn", "net": "net2", "T": 5, "seconds_total": round(wall, 3),
          "epoch_seconds_incl_eval": round(row["seconds"], 3),
          "train_examples_per_second": round(row["examples_per_second"], 1),
          "test_accuracy": row["test_accuracy"]})


def profile_steps(train_x, train_y, n=30):
    """Where the host time of a step goes (api path, batch 250)."""
    import cProfile
    import io
    import pstats

    net = make_net("snn")
    st = Stepper(net, train_x, train_y, "api")
    rng = np.random.default_rng(4)
    st.step(np.arange(250))
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        st.step(np.sort(rng.choice(len(train_x), 250, replace=False)))
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(18)
    print(buf.getvalue(), file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 250 only, no epoch")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--synthetic", action="store_true", help="random images instead of MNIST")
    ap.add_argument("--trainer", action="store_true", help="also time one epoch through Trainer")
    ap.add_argument("--threads", type=int, default=0, help="threads per block (0: the backend's default)")
    ap.add_argument("--profile", action="store_true", help="cProfile 30 api-path steps at batch 250 (to stderr)")
    ap.add_argument("--out", default="", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)

    import numba
    from numba import cuda

    from npdpsnn.engine import default_engine

    if args.threads:
        default_engine().set_cuda_threads(args.threads)
    try:
        import importlib.metadata as md

        nc_version = md.version("numba-cuda")
    except Exception:  # noqa: BLE001
        nc_version = None
    gpu = cuda.get_current_device()
    emit({"kind": "device", "gpu": gpu.name.decode() if isinstance(gpu.name, bytes) else str(gpu.name),
          "numba": numba.__version__, "numba_cuda": nc_version, "python": platform.python_version(),
          "threads_per_block": default_engine().cuda_threads, "host_cpus": os.cpu_count()})

    train_x, train_y, source = load_data(args.synthetic)
    net = make_net("snn")
    x1, y1 = train_x[:1], train_y[:1]
    t0 = time.perf_counter()
    net.clipped_grad_sum(x1, y1, 1.5, backend="cuda")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    net.clipped_grad_sum(x1, y1, 1.5, backend="cuda")
    second = time.perf_counter() - t0
    emit({"kind": "compile", "first_call_s": round(first, 3), "warm_call_s": round(second, 4), "data": source})

    if args.profile:
        profile_steps(train_x, train_y)
    batches = (250,) if args.quick else (250, 1024)
    bench_steps(train_x, train_y, batches, ("snn", "ann"), args.steps, args.warmup)
    if not args.quick:
        bench_epoch(train_x, train_y)
        if args.trainer and source == "mnist":
            bench_trainer()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(ROWS, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
