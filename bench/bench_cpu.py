"""CPU benchmark of npdpsnn: every goal figure of issue 10 in one command, JSON lines on stdout.

    python bench/bench_cpu.py                  # all goal figures (about 5 minutes on an idle 2-core machine)
    python bench/bench_cpu.py --quick          # Net2 SNN T=5 and ANN steps only
    python bench/bench_cpu.py --profile        # also the per-phase kernel profile (T = 5, 10, 15 and the ANN)
    python bench/bench_cpu.py --grid           # also net1, T = 1 and the NumPy reference (the issue-5 table)
    python bench/bench_cpu.py --per-core-only  # one-thread CPU time per example only (any library version)

Rows (``"kind"`` field):

* ``env``: where it ran -- CPU, cores, load average, versions, every ``OPENBLAS_*``
  / ``OMP_*`` / ``MKL_*`` / ``NPDPSNN_*`` variable, the BLAS libraries with their
  core type and thread count (threadpoolctl) outside and inside the library's
  calls, the kernel threads and the GEMM strategy of the conv kernels;
* ``step``: one full DP-SGD step of the trainer (Poisson batch of expected size
  250, per-example gradients, flat clipping, noise, SGD update, ledger), each
  configuration in its own process: ``--repeats`` rounds of ``--steps`` steps
  after two warm-up steps; examples/s of the best round, the median and the
  worst, the load average before and after, the peak RSS;
* ``compile``: cold start (empty Numba cache) and warm start: wall time from
  process start to the end of the first training step;
* ``epoch``: the whole process ``npdpsnn train mnist --sigma 1.0 --epochs 1``
  (warm cache, a fresh run folder): wall time, peak RSS, and the split into the
  training steps, the end of the epoch (test evaluation + accountants) and the
  rest (start-up, data, kernel loading, records);
* ``epoch_overheads``: the per-epoch work besides training, each timed alone
  (best of ``--repeats``): test evaluation of the 10,000 images, the accountants
  after 240 steps (as the trainer reports them), checkpoint + model + records,
  each as a fraction of the epoch's training time;
* ``per_core``: CPU time per example of the fused clipped sum (``clipped_grad_sum``)
  on 64 MNIST images with one kernel thread, best of ``--repeats`` + 4 calls
  (``time.thread_time``: robust to other jobs on a shared machine), and of the
  forward pass (evaluation); it uses only the public API, so the same script
  measures any version of the library (``--per-core-only``);
* ``profile`` (``--profile``): microseconds per example of each (layer, phase)
  of the fused clipped-sum kernel, one thread, cycle counts per example with the
  minimum over repetitions (preemption on a shared machine filtered out);
* ``goals``: every goal of issue 10, the measured figure and whether it is met.

Figures on a shared machine are noisy: compare the load average printed beside
every figure, and the spread between the best and the worst round.
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
GOALS = {("snn", 5): 6500, ("snn", 10): 3500, ("snn", 15): 2400, ("ann", 1): 15000}


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment() -> dict:
    """The environment the figures were measured in."""
    import numba
    import numpy as np
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401 - the BLAS of Numba's np.dot, loaded before counting
    import threadpoolctl
    from threadpoolctl import threadpool_info

    from npdpsnn.engine import available_cores, blas_single_threaded, default_engine

    try:
        from npdpsnn.kernels.numba_backend import gemm_per_step

        conv_gemm = "one per time step" if gemm_per_step() else "one over all time steps"
    except ImportError:  # a library version before issue 10
        conv_gemm = "n/a"

    def blas():
        return [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "prefix")}
                for i in threadpool_info() if i.get("user_api") == "blas"]

    outside = blas()
    with blas_single_threaded():
        inside = blas()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"kind": "env", "cpu": cpu, "cores": os.cpu_count(), "cores_available": available_cores(),
            "load_avg_1_5_15": _load(), "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "threadpoolctl": threadpoolctl.__version__,
            "env_vars": {k: v for k, v in sorted(os.environ.items())
                         if k.startswith(("OPENBLAS", "OMP_", "MKL_", "NPDPSNN_", "NUMBA_"))},
            "blas_outside_library_calls": outside, "blas_inside_library_calls": inside,
            "kernel_threads": default_engine().threads,
            "conv_gemm": conv_gemm}


# ------------------------------------------------------------------ children
def _trainer(model: str, net: str, T: int, sigma: float = 1.0, batch: int = 250):
    from npdpsnn.data import load_dataset
    from npdpsnn.training.config import TrainConfig
    from npdpsnn.training.trainer import Trainer

    ds = load_dataset("mnist")
    cfg = TrainConfig.from_values("mnist", {"net": NETS[net], "model.kind": model, "model.T": T, "dp.sigma": sigma,
                                            "optim.batch_size": batch, "optim.epochs": 1, "run.seed": 0})
    return Trainer(cfg, ds), ds


def run_step(args) -> dict:
    """Child process: time full DP-SGD steps of one configuration."""
    import numpy as np

    t_start = float(os.environ.get("BENCH_T0", time.time()))
    from npdpsnn.engine import default_engine

    tr, _ = _trainer(args.model, args.net, args.T)
    batches = iter(tr.scheme.epoch())
    t0 = time.perf_counter()
    tr.train_step(next(batches))
    first = time.perf_counter() - t0
    since_start = time.time() - t_start
    if args.steps == 0:
        return {"first_step_s": first, "process_start_to_first_step_s": since_start}
    for _ in range(2):  # warm-up: thread pool, caches
        tr.train_step(next(batches))
    load_before = _load()
    rounds, step_best = [], 0.0
    for _ in range(args.repeats):
        n = secs = 0.0
        for _ in range(args.steps):
            idx = next(batches, None)
            if idx is None:
                batches = iter(tr.scheme.epoch())
                idx = next(batches)
            t0 = time.perf_counter()
            tr.train_step(idx)
            dt = time.perf_counter() - t0
            n += len(idx)
            secs += dt
            step_best = max(step_best, len(idx) / dt)
        rounds.append(n / secs)
    r = np.array(rounds)
    return {"kind": "step", "model": args.model, "net": args.net, "T": args.T if args.model == "snn" else 1,
            "backend": "numba", "batch": 250, "threads": default_engine().threads,
            "examples_per_s": float(r.max()), "examples_per_s_median": float(np.median(r)),
            "examples_per_s_worst": float(r.min()), "spread_pct": float(100 * (r.max() - r.min()) / r.max()),
            "best_single_step_examples_per_s": step_best, "rounds": args.repeats, "steps_per_round": args.steps,
            "ms_per_step_best_round": 250e3 / float(r.max()), "load_before": load_before, "load_after": _load(),
            "peak_rss_mb": _rss_mb(), "first_step_s": first, "process_start_to_first_step_s": since_start}


def run_reference_step(args) -> dict:
    """Child process: the NumPy reference backend, on ``--reference-batch`` examples."""
    import numpy as np

    from npdpsnn import Network
    from npdpsnn.data import load_dataset

    ds = load_dataset("mnist")
    net = Network.from_spec(NETS[args.net], (1, 28, 28), kind=args.model, T=args.T)
    x, y = np.asarray(ds.train_x[: args.reference_batch]), ds.train_y[: args.reference_batch]
    t0 = time.perf_counter()
    net.clipped_grad_sum(x, y, 1.5, backend="reference")
    dt = time.perf_counter() - t0
    return {"kind": "step", "model": args.model, "net": args.net, "T": args.T if args.model == "snn" else 1,
            "backend": "reference", "batch": args.reference_batch, "examples_per_s": args.reference_batch / dt,
            "load_before": _load()}


def run_per_core(args) -> dict:
    """Child process: CPU time per example on one kernel thread (public API only)."""
    import numpy as np

    from npdpsnn import Network
    from npdpsnn.data import load_dataset
    from npdpsnn.engine import Engine
    from npdpsnn.kernels.backend import get_backend

    ds = load_dataset("mnist")
    net = Network.from_spec(NETS[args.net], (1, 28, 28), kind=args.model, T=args.T)
    x, y = np.asarray(ds.train_x[:64]), ds.train_y[:64]
    be = get_backend("numba", engine=Engine(threads=1))

    def best(fn):
        fn()
        times = []
        for _ in range(args.repeats + 4):
            t0 = time.thread_time()
            fn()
            times.append(time.thread_time() - t0)
        return min(times) / len(x) * 1e6

    load_before = _load()
    clipped = best(lambda: net.clipped_grad_sum(x, y, 1.5, backend=be))
    forward = best(lambda: net.forward(x, backend=be))
    return {"kind": "per_core", "model": args.model, "net": args.net, "T": args.T if args.model == "snn" else 1,
            "threads": 1, "examples": len(x), "clipped_sum_us_per_example": round(clipped, 1),
            "clipped_sum_examples_per_s_one_core": round(1e6 / clipped), "forward_us_per_example": round(forward, 1),
            "load_before": load_before, "load_after": _load()}


def run_profile(args) -> dict:
    """Child process: per-(layer, phase) profile of the clipped-sum kernel, one thread."""
    import numpy as np

    from npdpsnn import Network
    from npdpsnn.data import load_dataset
    from npdpsnn.engine import Engine
    from npdpsnn.kernels import cpu
    from npdpsnn.kernels.numba_backend import NumbaBackend

    ds = load_dataset("mnist")
    net = Network.from_spec(NETS[args.net], (1, 28, 28), kind=args.model, T=args.T)
    x, y = np.asarray(ds.train_x[:64]), ds.train_y[:64]
    be = NumbaBackend(Engine(threads=1))
    be.profile = True
    be.clipped_sum(net, x, y, 1.5)
    c0, t0 = cpu._now(np.zeros(1)), time.perf_counter()
    time.sleep(0.25)
    hz = (cpu._now(np.zeros(1)) - c0) / (time.perf_counter() - t0)
    best = None
    load_before = _load()
    for _ in range(max(args.repeats, 5)):
        be.clipped_sum(net, x, y, 1.5)
        best = be.last_profile.copy() if best is None else np.minimum(best, be.last_profile)
    us = best.sum(axis=0) / hz / len(x) * 1e6
    L = len(net.layers)
    phases = {}
    for li, layer in enumerate(net.layers):
        for p in range(cpu.N_PHASES):
            v = float(us[li * cpu.N_PHASES + p])
            if v > 0.0:
                phases[f"{li} {layer.name or layer.kind}: {cpu.PH_NAMES[p]}"] = round(v, 2)
    for g in range(cpu.N_GLOBAL):
        phases[cpu.G_NAMES[g]] = round(float(us[L * cpu.N_PHASES + g]), 2)
    return {"kind": "profile", "model": args.model, "net": args.net, "T": args.T if args.model == "snn" else 1,
            "threads": 1, "examples": len(x), "us_per_example_total": round(float(us.sum()), 1),
            "examples_per_s_one_core": round(1e6 / float(us.sum())), "us_per_example": phases,
            "tsc_ghz": round(hz / 1e9, 3), "load_before": load_before, "load_after": _load()}


def run_epoch_overheads(args) -> dict:
    """Child process: the per-epoch work besides the training steps, each timed alone."""
    from npdpsnn.training.recorder import RunRecorder

    tr, ds = _trainer("snn", "net2", 5)
    examples = sum(len(idx) for idx in tr.scheme.epoch())  # epoch 1 of the CLI run (same seed, same sampler)
    tr.warm_up()
    for _ in range(tr.steps_per_epoch):  # the ledger of one epoch (the accountants' input), without training
        tr.accountant.record(tr.scheme.step_event(tr.config.dp.sigma))
    tr.step = tr.steps_per_epoch
    tr.epoch = 1

    def best(fn):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), max(times), out

    load_before = _load()
    ev = best(tr._accuracies)
    eps = best(tr.epsilons)
    row = {"epoch": 1, "step": tr.step, "train_loss": 0.0, "train_accuracy": 0.0, **ev[2], **eps[2],
           "fraction_clipped": 0.0, "seconds": 0.0, "examples_per_second": 0.0}
    tr.metrics.append(row)
    with tempfile.TemporaryDirectory() as d:
        rec = RunRecorder(d)
        records = best(lambda: rec.on_epoch_end(tr, row))
    summary = best(tr.summary)
    return {"kind": "epoch_overheads", "epoch_examples": examples, "test_evaluation_s": ev[0], "accountants_s": eps[0],
            "checkpoint_and_records_s": records[0], "summary_s": summary[0],
            "worst": {"test_evaluation_s": ev[1], "accountants_s": eps[1], "checkpoint_and_records_s": records[1]},
            "accountant": tr.config.dp.accountant, "threads": tr.backend.engine.threads,
            "load_before": load_before, "load_after": _load()}


def _child(extra: list[str], env: dict | None = None) -> dict:
    env = {**os.environ, **(env or {}), "BENCH_T0": repr(time.time())}
    out = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"benchmark child {extra} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def whole_epoch(repeats: int, examples: int) -> dict:
    """``npdpsnn train mnist --sigma 1.0 --epochs 1`` as a user runs it (warm cache)."""
    import csv

    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            load_before = _load()
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "npdpsnn.cli", "train", "mnist", "--sigma", "1.0",
                                     "--epochs", "1", "--out", os.path.join(d, "run")],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _, _, rusage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            err = proc.stderr.read()
            proc.stdout.read()
            with open(os.path.join(d, "run", "metrics.csv")) as f:
                m = next(csv.DictReader(f))
            train_s = examples / float(m["examples_per_second"])
            runs.append({"wall_s": wall, "peak_rss_mb": rusage.ru_maxrss / 1024,
                         "cpu_s": rusage.ru_utime + rusage.ru_stime, "epoch_s": float(m["seconds"]),
                         "train_s": train_s, "examples_per_s": float(m["examples_per_second"]),
                         "end_of_epoch_s": float(m["seconds"]) - train_s,
                         "outside_epoch_s": wall - float(m["seconds"]),
                         "test_accuracy": float(m["test_accuracy"]), "load_before": load_before,
                         "load_after": _load(), "stderr_tail": err.strip().splitlines()[-1:]})
    best = min(runs, key=lambda r: r["wall_s"])
    return {"kind": "epoch", "command": "npdpsnn train mnist --sigma 1.0 --epochs 1", "cache": "warm",
            **{k: v for k, v in best.items() if k != "stderr_tail"},
            "wall_s_all_runs": [round(r["wall_s"], 2) for r in runs]}


def goals(rows: list[dict]) -> dict:
    out = []
    for r in rows:
        if r["kind"] == "step" and r["backend"] == "numba" and r["net"] == "net2":
            goal = GOALS.get((r["model"], r["T"]))
            if goal:
                out.append({"goal": f"Net2 {r['model'].upper()} T={r['T']} DP step >= {goal} ex/s",
                            "measured": round(r["examples_per_s"]), "met": r["examples_per_s"] >= goal,
                            "load_before": r["load_before"]})
        elif r["kind"] == "epoch":
            out.append({"goal": "one DP epoch, whole process incl. test evaluation <= 12 s (warm cache)",
                        "measured": round(r["wall_s"], 2), "met": r["wall_s"] <= 12.0, "load_before": r["load_before"]})
            out.append({"goal": "peak RSS <= 300 MB at batch 250", "measured": round(r["peak_rss_mb"]),
                        "met": r["peak_rss_mb"] <= 300})
        elif r["kind"] == "compile":
            out.append({"goal": "cold start <= 20 s", "measured": round(r["cold_start_s"], 2),
                        "met": r["cold_start_s"] <= 20.0, "load_before": r["load_before"]})
            out.append({"goal": "warm start <= 3 s", "measured": round(r["warm_start_s"], 2),
                        "met": r["warm_start_s"] <= 3.0})
        elif r["kind"] == "epoch_overheads" and r.get("train_s"):
            frac = r["fraction_of_epoch_training"]
            out.append({"goal": "evaluation + accountants + checkpoint/records <= 10 % of an epoch",
                        "measured": f"{100 * frac:.1f} %", "met": frac <= 0.10, "load_before": r["load_before"]})
    return {"kind": "goals", "goals": out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="Net2 SNN T=5 and ANN steps only")
    p.add_argument("--profile", action="store_true", help="also the per-phase kernel profile")
    p.add_argument("--grid", action="store_true", help="also net1, T=1 and the NumPy reference")
    p.add_argument("--no-epoch", action="store_true", help="skip the whole-process epoch and its overheads")
    p.add_argument("--steps", type=int, default=10, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per configuration")
    p.add_argument("--epoch-repeats", type=int, default=1, help="runs of the whole-process epoch")
    p.add_argument("--reference-batch", type=int, default=4)
    p.add_argument("--per-core-only", action="store_true", help="only the one-thread CPU time per example")
    p.add_argument("--_child", choices=["step", "reference", "profile", "overheads", "percore"],
                   help=argparse.SUPPRESS)
    p.add_argument("--model", default="snn")
    p.add_argument("--net", default="net2")
    p.add_argument("-T", type=int, default=5)
    args = p.parse_args()
    children = {"step": run_step, "reference": run_reference_step, "profile": run_profile,
                "overheads": run_epoch_overheads, "percore": run_per_core}
    if args._child:
        print(json.dumps(children[args._child](args)))
        return

    def emit(row: dict) -> dict:
        print(json.dumps(row), flush=True)
        return row

    emit(environment())
    rows = []
    common = ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    goal_grid = [("snn", "net2", 5), ("snn", "net2", 10), ("snn", "net2", 15), ("ann", "net2", 1)]
    for model, net, T in goal_grid:
        emit(_child(["--_child", "percore", "--model", model, "--net", net, "-T", str(T), *common]))
    if args.per_core_only:
        emit({"kind": "end", "load_avg_1_5_15": _load()})
        return
    grid = [("snn", "net2", 5), ("ann", "net2", 1)] if args.quick else [
        ("snn", "net2", 5), ("snn", "net2", 10), ("snn", "net2", 15), ("ann", "net2", 1)]
    if args.grid:
        grid += [("snn", "net2", 1), ("snn", "net1", 1), ("snn", "net1", 5), ("snn", "net1", 10),
                 ("snn", "net1", 15), ("ann", "net1", 1)]
    for model, net, T in grid:
        rows.append(emit(_child(["--_child", "step", "--model", model, "--net", net, "-T", str(T), *common])))
        if args.grid:
            emit(_child(["--_child", "reference", "--model", model, "--net", net, "-T", str(T),
                         "--reference-batch", str(args.reference_batch)]))
    if not args.quick:
        with tempfile.TemporaryDirectory() as cache:
            env = {"NUMBA_CACHE_DIR": cache, "NPDPSNN_NUMBA_CACHE_DIR": cache}
            load_before = _load()
            cold = _child(["--_child", "step", "--steps", "0"], env)
            warm = [_child(["--_child", "step", "--steps", "0"], env) for _ in range(args.repeats)]
            rows.append(emit({"kind": "compile", "cold_start_s": cold["process_start_to_first_step_s"],
                              "cold_first_step_s": cold["first_step_s"],
                              "warm_start_s": min(w["process_start_to_first_step_s"] for w in warm),
                              "warm_start_s_all": [round(w["process_start_to_first_step_s"], 2) for w in warm],
                              "load_before": load_before, "load_after": _load()}))
        if not args.no_epoch:
            over = _child(["--_child", "overheads", "--repeats", str(args.repeats)])
            epoch = emit(whole_epoch(args.epoch_repeats, over["epoch_examples"]))
            rows.append(epoch)
            total = over["test_evaluation_s"] + over["accountants_s"] + over["checkpoint_and_records_s"]
            over.update({"train_s": epoch["train_s"], "total_s": total,
                         "fraction_of_epoch_training": total / epoch["train_s"]})
            rows.append(emit(over))
    if args.profile:
        for model, net, T in goal_grid:
            emit(_child(["--_child", "profile", "--model", model, "--net", net, "-T", str(T), *common]))
    emit(goals(rows))
    emit({"kind": "end", "load_avg_1_5_15": _load()})


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(HERE))
    main()
