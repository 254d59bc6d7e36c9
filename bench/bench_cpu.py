"""CPU benchmark of npdpsnn: one command, JSON lines on stdout.

    python bench/bench_cpu.py                  # the full grid (several minutes)
    python bench/bench_cpu.py --quick          # Net2 SNN/ANN T=5 only
    python bench/bench_cpu.py --epoch          # also one DP epoch of MNIST

Rows (``"kind"`` field):
* ``step``: one full DP-SGD step (per-example gradients, flat clipping, noise,
  SGD update) at batch 250 -- median ms/step over ``--steps`` steps after one
  warm-up step, examples/s, the process's peak RSS, dense FLOPs per example and
  the fraction of this machine's dense roofline (``--roofline-gflops``); one row
  per model kind x net x T x backend.  Each configuration runs in its own
  process so peak RSS is its own.  The NumPy reference is timed on
  ``--reference-batch`` examples (it is slow by design).
* ``compile``: cold (empty Numba cache) and warm (cache populated) start: the
  wall time from process start to the end of the first training step.
* ``per_example_grads``: throughput of the explicit per-example API (``B x P``
  gradients returned), Net2 SNN T=5, Numba at batch 250 vs the NumPy reference.
* ``spike_rates``: mean firing rate of each hidden layer on 100 MNIST test images.
* ``epoch``: wall time of one DP epoch of MNIST (Net2 SNN, sigma = 1.0, T = 5).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NETS = {"net1": "16C8S2-P2S1-32C4S2-P2S1-32-10", "net2": "16C7S1-P2S2-32C4S1-P2S2-32-10"}


def dense_flops(layers, T: int, kind: str) -> float:
    """Dense FLOPs of one DP-SGD example: forward, weight gradient and input
    gradient of every weight layer at every step (2 FLOPs per multiply-add)."""
    steps = T if kind == "snn" else 1
    total = 0.0
    for i, layer in enumerate(layers):
        if not layer.has_weights:
            continue
        macs = layer.out_size * (layer.fan_in if layer.kind == "conv" else layer.in_size)
        passes = 3 if i > 0 else 2  # the first layer needs no input gradient
        total += 2.0 * macs * passes * steps
    return total


def _load_mnist(n_train: int):
    from npdpsnn.data import load_dataset

    ds = load_dataset("mnist")
    return ds.train_x[:n_train], ds.train_y[:n_train], ds


def run_step(args) -> dict:
    """Child process: time DP steps of one configuration."""
    import numpy as np

    t_start = float(os.environ.get("BENCH_T0", time.time()))
    from npdpsnn import Network
    from npdpsnn.privacy.mechanism import add_noise
    from npdpsnn.training.optimizer import SGD

    net = Network.from_spec(NETS[args.net], (1, 28, 28), kind=args.model, T=args.T)
    batch = args.batch if args.backend == "numba" else args.reference_batch
    x, y, _ = _load_mnist(max(batch, 250))
    rng = np.random.default_rng(0)
    opt = SGD(net.num_params, 0.25)

    def step():
        idx = np.flatnonzero(rng.random(len(x)) < batch / len(x)) if args.backend == "numba" else np.arange(batch)
        s, _, _, _ = net.clipped_grad_sum(x[idx], y[idx], 1.5, backend=args.backend)
        opt.step(net.theta, add_noise(s, 1.0, 1.5, batch, rng))
        return len(idx)

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    since_start = time.time() - t_start
    for _ in range(2 if args.backend == "numba" else 0):  # warm-up: thread pool, BLAS, caches
        step()
    times, sizes = [], []
    for _ in range(args.steps if args.backend == "numba" else 1):
        t0 = time.perf_counter()
        sizes.append(step())
        times.append(time.perf_counter() - t0)
    import resource

    med = float(np.median(times))
    ex = float(np.median(np.array(sizes) / np.array(times)))
    flops = dense_flops(net.layers, args.T, args.model)
    return {"kind": "step", "model": args.model, "net": args.net, "T": args.T, "backend": args.backend,
            "batch": batch, "ms_per_step": med * 1e3, "examples_per_s": ex,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "dense_mflop_per_example": flops / 1e6,
            "roofline_fraction": ex * flops / (args.roofline_gflops * 1e9),
            "first_step_s": first, "process_start_to_first_step_s": since_start}


def per_example_rows() -> list[dict]:
    """Throughput of the auditors' API ``Network.per_example_grads`` (Net2 SNN T=5,
    batch 250 for Numba, 4 for the reference): examples/s, median of 5 calls."""
    import numpy as np

    from npdpsnn import Network

    x, y, _ = _load_mnist(250)
    net = Network.from_spec(NETS["net2"], (1, 28, 28))
    rows = []
    for backend, b, reps in (("numba", 250, 5), ("reference", 4, 1)):
        net.per_example_grads(x[:2], y[:2], backend=backend)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            net.per_example_grads(x[:b], y[:b], backend=backend)
            times.append(time.perf_counter() - t0)
        rows.append({"kind": "per_example_grads", "model": "snn", "net": "net2", "T": 5, "backend": backend,
                     "batch": b, "examples_per_s": b / float(np.median(times))})
    return rows


def spike_rates() -> dict:
    import numpy as np

    from npdpsnn import Network
    from npdpsnn.kernels.reference import forward_trace

    _, _, ds = _load_mnist(1)
    net = Network.from_spec(NETS["net2"], (1, 28, 28))
    rates: dict[str, list[float]] = {}
    for xi in ds.test_x[:100]:
        tr = forward_trace(net.layers, net.params, xi, net.config)
        for li, layer in enumerate(net.layers):
            if tr.spikes[li]:
                rates.setdefault(layer.name, []).append(float(np.mean(tr.spikes[li])))
    return {"kind": "spike_rates", "net": "net2", "T": 5, "init_seed": 0,
            "rates": {k: float(np.mean(v)) for k, v in rates.items()}}


def one_epoch() -> dict:
    from npdpsnn.data import load_dataset
    from npdpsnn.engine import default_engine
    from npdpsnn.training.config import TrainConfig
    from npdpsnn.training.trainer import Trainer

    ds = load_dataset("mnist")
    cfg = TrainConfig(dataset="mnist", sigma=1.0, epochs=1, accountant="rdp")
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(cfg, ds, d)
        tr.train_step(tr.sampler.batch())  # compile / load cache outside the timing
        t0 = time.perf_counter()
        seen = 0
        for idx in tr.sampler.epoch():
            tr.train_step(idx)
            seen += len(idx)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        acc = float((tr.net.predict(ds.test_x) == ds.test_y).mean())
        eval_s = time.perf_counter() - t0
    return {"kind": "epoch", "dataset": "mnist", "net": "net2", "model": "snn", "T": 5, "sigma": 1.0,
            "steps": tr.steps_per_epoch, "examples": seen, "train_seconds": train_s, "eval_seconds": eval_s,
            "examples_per_s": seen / train_s, "test_accuracy_after_1_epoch": acc, "threads": default_engine().threads}


def _child(extra: list[str], env: dict | None = None) -> dict:
    env = {**os.environ, **(env or {}), "BENCH_T0": repr(time.time())}
    out = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--epoch", action="store_true", help="also time one DP epoch of MNIST")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--reference-batch", type=int, default=4)
    p.add_argument("--roofline-gflops", type=float, default=168.0,
                   help="dense float32 roofline of this machine (2 cores) in GFLOP/s")
    p.add_argument("--_child", choices=["step", "spikes", "epoch", "per-example"], help=argparse.SUPPRESS)
    p.add_argument("--model", default="snn")
    p.add_argument("--net", default="net2")
    p.add_argument("-T", type=int, default=5)
    p.add_argument("--backend", default="numba")
    args = p.parse_args()
    if args._child == "step":
        print(json.dumps(run_step(args)))
        return
    if args._child == "per-example":
        for row in per_example_rows():
            print(json.dumps(row))
        return
    if args._child == "spikes":
        print(json.dumps(spike_rates()))
        return
    if args._child == "epoch":
        print(json.dumps(one_epoch()))
        return
    import numba

    print(json.dumps({"kind": "machine", "cpu": platform.processor() or platform.machine(),
                      "cores": os.cpu_count(), 
                      "python": platform.python_version(), "numba": numba.__version__}), flush=True)
    common = ["--steps", str(args.steps), "--batch", str(args.batch), "--reference-batch", str(args.reference_batch),
              "--roofline-gflops", str(args.roofline_gflops)]
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        cold = _child(["--_child", "step", "--steps", "1", *common[2:]], env)
        warm = _child(["--_child", "step", "--steps", "1", *common[2:]], env)
        print(json.dumps({"kind": "compile", "cold_start_s": cold["process_start_to_first_step_s"],
                          "warm_start_s": warm["process_start_to_first_step_s"],
                          "cold_first_step_s": cold["first_step_s"], "warm_first_step_s": warm["first_step_s"]}),
              flush=True)
    grid = [("snn", "net2", 5), ("ann", "net2", 5)] if args.quick else [
        (m, n, t) for m in ("snn", "ann") for n in ("net1", "net2") for t in ((1, 5, 10, 15) if m == "snn" else (1,))]
    backends = ("numba",) if args.quick else ("numba", "reference")
    for model, net, T in grid:
        for backend in backends:
            print(json.dumps(_child(["--_child", "step", "--model", model, "--net", net, "-T", str(T),
                                     "--backend", backend, *common])), flush=True)
    out = subprocess.run([sys.executable, __file__, "--_child", "per-example"], capture_output=True, text=True,
                         check=True)
    print(out.stdout.strip(), flush=True)
    print(json.dumps(_child(["--_child", "spikes"])), flush=True)
    if args.epoch:
        print(json.dumps(_child(["--_child", "epoch"])), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(HERE))
    main()
