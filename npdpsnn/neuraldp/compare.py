"""NeuralDP vs DP-SGD at equal epsilon, on a subset that fits two CPU cores; and a canary audit.

``python -m npdpsnn.neuraldp.compare`` trains, for every data set, model kind
(SNN, ANN) and target epsilon:

* **DP-SGD**: the paper's Net2 and settings (batch 250 Poisson, lr 0.25,
  R = 1.5), sigma calibrated to the target by RDP (add/remove adjacency);
* **NeuralDP, labels private**: the frozen (initialisation) Net2 layers up to
  the second pooling (layer 4, 512 values) privatised, a linear head ``10``
  trained with DP-SGD on the released rows (half the budget calibrated to the
  head), RDP replace-one;
* **NeuralDP, labels public**: the same with the labels declared public (the
  guarantee protects the images only) and a plain-SGD head.

Each run's test accuracy (first ``--n-test`` test images), its epsilons and the
AUC of the loss-threshold membership attack (``--n-mia`` training members vs
as many test images) go to a JSON record under ``--out``, and a Markdown table
is logged at the end.  ``--audit`` adds the one-run input-canary audit of a
NeuralDP run (:mod:`.canary_audit`).

The NeuralDP row bounds are set from a public proxy, never from the training
data: ``C`` is the median norm of centred features of the *last* 1000 test
images (not used for evaluation), ``C_c`` their 90th-percentile uncentred norm.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from npdpsnn.audit import loss_attack
from npdpsnn.data import Dataset, load_dataset
from npdpsnn.model.config import ModelConfig
from npdpsnn.model.spec import resolve_spec
from npdpsnn.network import Network
from npdpsnn.neuraldp.canary_audit import audit_neuraldp
from npdpsnn.neuraldp.config import NeuralDPConfig
from npdpsnn.neuraldp.features import FeatureCache, split_at
from npdpsnn.neuraldp.fit import fit_neuraldp
from npdpsnn.training import TrainConfig, evaluate_model, fit
from npdpsnn.training.files import atomic_write_json

log = logging.getLogger("npdpsnn.neuraldp.compare")

DEFAULT_OUT = Path("docs/results/neuraldp")
_LAYER, _HEAD = 4, "10"
_PROXY = 1000


def run_dpsgd(data: Dataset, kind: str, epsilon: float, args) -> dict:
    """One DP-SGD run at the paper's settings, sigma calibrated to ``epsilon``."""
    cfg = TrainConfig.from_values(data.name, {
        "net": "net2", "model.kind": kind, "dp.target_epsilon": epsilon, "dp.clip": 1.5, "dp.delta": args.delta,
        "dp.accountant": "rdp", "optim.batch_size": 250, "optim.lr": 0.25, "optim.epochs": args.epochs,
        "run.limit_train": args.n_train, "run.seed": args.seed})
    t0 = time.perf_counter()
    res = fit(cfg, data, evaluate_test=False)
    ev = evaluate_model(res.network, data.test_x, data.test_y)
    member = evaluate_model(res.network, data.train_x.head(args.n_mia), data.train_y[: args.n_mia])
    eps = res.trainer.accountant.all_epsilons(args.delta)
    return {"mechanism": "dp-sgd", "labels": "private", "test_accuracy": ev.accuracy,
            "sigma": res.summary["sigma"], **eps, "mia_auc": _mia_auc(member.losses, ev.losses[: args.n_mia]),
            "seconds": time.perf_counter() - t0, "config": cfg.to_dict()}


def run_neuraldp(data: Dataset, kind: str, epsilon: float, labels: str, args, cache: FeatureCache,
                 bounds: tuple[float, float]) -> dict:
    """One NeuralDP run calibrated to ``epsilon`` (replace-one, RDP)."""
    clip, center_clip = bounds
    cfg = NeuralDPConfig.from_values(data.name, {
        "net": "net2", "model.kind": kind, "optim.batch_size": 250, "optim.lr": 0.5, "optim.epochs": args.epochs,
        "optim.lr_schedule": "cosine", "run.limit_train": args.n_train, "run.seed": args.seed,
        "neuraldp.layer": _LAYER, "neuraldp.head": _HEAD, "neuraldp.clip": clip, "neuraldp.center_clip": center_clip,
        "neuraldp.target_epsilon": epsilon, "neuraldp.delta": args.delta, "neuraldp.labels": labels})
    t0 = time.perf_counter()
    res = fit_neuraldp(cfg, data, evaluate_test=False, feature_cache=cache)
    ev = res.model.evaluate(data.test_x, data.test_y, cache=cache)
    member = res.model.evaluate(data.train_x.head(args.n_mia), data.train_y[: args.n_mia], cache=cache)
    s = res.summary
    return {"mechanism": "neuraldp", "labels": labels, "test_accuracy": ev.accuracy, "sigma": s["sigma"],
            "head_sigma": s["head_sigma"], **res.report.values, "refused": res.report.refused,
            "mia_auc": _mia_auc(member.losses, ev.losses[: args.n_mia]), "seconds": time.perf_counter() - t0,
            "clip": clip, "center_clip": center_clip, "config": res.config.to_dict()}


def _mia_auc(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> float:
    losses = np.concatenate([member_losses, nonmember_losses])
    is_member = np.r_[np.ones(len(member_losses), bool), np.zeros(len(nonmember_losses), bool)]
    return float(loss_attack(losses, is_member).auc)


def proxy_bounds(data: Dataset, kind: str, proxy_x, seed: int, cache: FeatureCache) -> tuple[float, float]:
    """``(C, C_c)`` from public proxy images (module docstring)."""
    net = Network(resolve_spec("net2", data.num_classes), data.input_shape, ModelConfig(kind=kind), seed=seed)
    split = split_at(net.layers, _LAYER, _HEAD)
    h = cache.features(net, proxy_x, split).reshape(len(proxy_x), -1)
    centred = np.linalg.norm(h - h.mean(axis=0), axis=1)
    return float(np.median(centred)), float(np.percentile(np.linalg.norm(h, axis=1), 90))


def markdown_table(records: list[dict]) -> str:
    """One row per data set, model and target epsilon: accuracy (%), accounted RDP epsilon, MIA AUC."""
    cols = [("dp-sgd", "private"), ("neuraldp", "private"), ("neuraldp", "public")]
    head = ("| data | model | target eps | DP-SGD acc (eps) | NeuralDP, labels private acc (eps) | "
            "NeuralDP, labels public acc (eps) | MIA AUC (DP-SGD / ND priv / ND pub) |")
    lines = [head, "|" + "---|" * 7]
    keys = sorted({(r["dataset"], r["model"], r["target_epsilon"]) for r in records})
    for ds, model, eps in keys:
        cell, mia = [], []
        for mech, labels in cols:
            r = next((r for r in records if (r["dataset"], r["model"], r["target_epsilon"], r["mechanism"],
                                             r["labels"]) == (ds, model, eps, mech, labels)), None)
            cell.append("-" if r is None else f"{100 * r['test_accuracy']:.1f} % ({r['rdp_epsilon']:.2f})")
            mia.append("-" if r is None else f"{r['mia_auc']:.3f}")
        lines.append(f"| {ds} | {model} | {eps:g} | " + " | ".join(cell) + f" | {' / '.join(mia)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--models", nargs="+", default=["snn", "ann"])
    p.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 3.0, 8.0])
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--n-mia", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--audit", action="store_true", help="add the input-canary audit of a NeuralDP run")
    p.add_argument("--audit-canaries", type=int, default=1000)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("numba").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for name in args.datasets:
        full = load_dataset(name)
        proxy_x = full.test_x[len(full.test_y) - _PROXY :]
        data = replace(full, test_x=full.test_x.head(args.n_test), test_y=full.test_y[: args.n_test])
        cache = FeatureCache()
        bounds = {kind: proxy_bounds(data, kind, proxy_x, args.seed, cache) for kind in {*args.models, "ann"}}
        for kind in args.models:
            for eps in args.epsilons:
                runs = [run_dpsgd(data, kind, eps, args)] + [
                    run_neuraldp(data, kind, eps, labels, args, cache, bounds[kind]) for labels in ("private", "public")]
                for r in runs:
                    r.update({"dataset": name, "model": kind, "target_epsilon": eps, "n_train": args.n_train,
                              "n_test": args.n_test, "epochs": args.epochs})
                    atomic_write_json(args.out / f"{name}-{kind}-{r['mechanism']}-{r['labels']}-eps{eps:g}.json", r)
                    log.info("%s %s eps %g %s (labels %s): acc %.4f rdp %.3f mia %.3f (%.0f s)", name, kind, eps,
                             r["mechanism"], r["labels"], r["test_accuracy"], r["rdp_epsilon"], r["mia_auc"],
                             r["seconds"])
                    records.append(r)
        if args.audit and name == args.datasets[0]:
            records_audit = run_audit(data, args, cache, bounds["ann"])
            atomic_write_json(args.out / f"{name}-audit.json", records_audit)
    table = markdown_table(records)
    (args.out / "table.md").write_text(table + "\n")
    log.info("\n%s", table)


def run_audit(data: Dataset, args, cache: FeatureCache, bounds: tuple[float, float]) -> dict:
    """Input-canary audits of NeuralDP (ANN, labels public, the largest epsilon) and of a non-private
    control (sigma 0.01), each on ``n_train`` examples plus the canary slots."""
    out = {}
    eps = max(args.epsilons)
    kind = "ann"
    for tag, noise in (("neuraldp", {"neuraldp.target_epsilon": eps}), ("control", {"neuraldp.sigma": 0.01})):
        cfg = NeuralDPConfig.from_values(data.name, {
            "net": "net2", "model.kind": kind, "optim.batch_size": 100, "optim.lr": 0.5, "optim.epochs": 20,
            "run.seed": args.seed, "neuraldp.layer": _LAYER, "neuraldp.head": "256-10", "neuraldp.clip": bounds[0],
            "neuraldp.center_clip": bounds[1], "neuraldp.labels": "public", "neuraldp.delta": args.delta, **noise})
        t0 = time.perf_counter()
        run = audit_neuraldp(cfg, data, n_train=args.n_train - args.audit_canaries, m=args.audit_canaries,
                             seed=args.seed, test_limit=None, feature_cache=cache)
        a = run.audit
        out[tag] = {"epsilon_lower_bound": a.epsilon, "n_guesses": a.n_guesses, "n_correct": a.n_correct,
                    "k_pos": a.k_pos, "m": a.m, "alpha": a.alpha, "delta": a.delta, **run.result.report.values,
                    "test_accuracy": run.result.summary["test_accuracy"], "sigma": run.result.summary["sigma"],
                    "seconds": time.perf_counter() - t0}
        log.info("audit %s: eps_lb %.3f, accounted rdp %.3f", tag, a.epsilon, run.result.report.epsilon("rdp"))
    return out


if __name__ == "__main__":
    main()
