"""The PrivateSNN pipeline end to end, with its records.

``python -m npdpsnn.conversion.experiment --dataset mnist --scale small`` trains
the ReLU / average-pool / bias-free ANN (no DP), generates class impressions,
converts with thresholds balanced on them only, evaluates against ``T`` on the
real test set, fine-tunes the SNN on the synthetic images, and measures class
leakage (inverted class representatives scored by an independent judge and by
SSIM to real class means), data leakage (loss-attack membership AUC) and the
energy proxy.  Writes ``<out>/<dataset>-<scale>.json`` and ``.md``.

Everything runs on the reference backend (float64; the Numba and CUDA kernels
also compute the conversion options, all but Poisson input, in float32).
Scales are sized for a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from npdpsnn.audit.membership import loss_audit
from npdpsnn.conversion.balance import as_ann, convert, with_T
from npdpsnn.conversion.energy import energy
from npdpsnn.conversion.finetune import finetune, teacher_labels
from npdpsnn.conversion.impressions import class_impressions, pixel_box
from npdpsnn.conversion.leakage import class_means, invert_classes, score_images
from npdpsnn.conversion.optimize import InputSearch
from npdpsnn.data import load_dataset
from npdpsnn.training import TrainConfig, fit

log = logging.getLogger(__name__)

SPEC = "16C7S1-A2S2-32C4S1-A2S2-32-10"
JUDGE_SPEC = "8C5S2-64-10"


@dataclass(frozen=True)
class Scale:
    train: int  # real training examples of the ANN (and of the judge, a disjoint slice)
    ann_epochs: int
    per_class: int  # class impressions per class
    iterations: int  # Adam steps of the impressions
    Ts: tuple[int, ...]
    test: int  # real test examples evaluated
    ft_T: int
    ft_epochs: int
    ft_lr: float
    invert_per_class: int
    invert_iterations: int
    invert_T: int
    membership: int
    energy_n: int


SCALES = {
    "tiny": Scale(2000, 1, 4, 30, (25, 50), 300, 10, 1, 0.01, 1, 20, 10, 200, 20),
    "small": Scale(20000, 3, 50, 200, (25, 50, 100, 200), 1000, 25, 3, 0.005, 2, 150, 25, 500, 100),
}


def _acc(net, x, y) -> float:
    return float(np.mean(net.predict(x, backend="reference", batch_size=250) == y))


def run(dataset: str, scale: str, seed: int = 0) -> dict:
    sc = SCALES[scale]
    data = load_dataset(dataset)
    t0 = time.time()
    rec: dict = {"dataset": dataset, "scale": scale, "settings": sc.__dict__ | {"Ts": list(sc.Ts)},
                 "spec": SPEC, "seed": seed}
    test_x = np.asarray(data.test_x[: sc.test])
    test_y = data.test_y[: sc.test]

    # 1. the ANN (real data, no DP)
    ann_cfg = TrainConfig.from_values(dataset, {
        "net": SPEC, "model.kind": "ann", "model.activation": "relu", "model.bias": False, "dp.enabled": False,
        "dp.sampling": "shuffle", "optim.batch_size": 64, "optim.lr": 0.05, "optim.momentum": 0.9,
        "optim.epochs": sc.ann_epochs, "run.limit_train": sc.train, "run.seed": seed, "run.physical_batch": 64})
    ann = fit(ann_cfg, data, backend="reference", evaluate_test=False).network
    rec["ann_accuracy"] = _acc(ann, test_x, test_y)
    log.info("ANN: %.4f (%.0f s)", rec["ann_accuracy"], time.time() - t0)

    # judge: another architecture on a disjoint slice of the training set
    lo = sc.train
    judge_data = replace(data, train_x=data.train_x[lo : lo + sc.train], train_y=data.train_y[lo : lo + sc.train])
    judge_cfg = TrainConfig.from_values(dataset, {
        "net": JUDGE_SPEC, "model.kind": "ann", "dp.enabled": False, "dp.sampling": "shuffle",
        "optim.batch_size": 64, "optim.lr": 0.05, "optim.momentum": 0.9, "optim.epochs": sc.ann_epochs,
        "run.seed": seed + 1, "run.physical_batch": 64})
    judge = fit(judge_cfg, judge_data, backend="reference", evaluate_test=False).network
    rec["judge_accuracy"] = _acc(judge, test_x, test_y)

    # 2. class impressions (no data)
    box = pixel_box(data.normalization)
    imp = class_impressions(ann, sc.per_class, box, InputSearch(iterations=sc.iterations), seed=seed)
    rec["impressions"] = {"n": len(imp.y), "ann_agrees": float(np.mean(ann.predict(imp.x, "reference") == imp.y))}
    log.info("impressions: %d (%.0f s)", len(imp.y), time.time() - t0)

    # 3. conversion, accuracy against T
    conv = convert(ann, imp.x, T=max(sc.Ts))
    rec["thresholds"] = list(conv.thresholds)
    rec["converted_accuracy"] = {}
    for T in sc.Ts:
        rec["converted_accuracy"][str(T)] = _acc(with_T(conv.snn, T), test_x, test_y)
        log.info("converted, T=%d: %.4f (%.0f s)", T, rec["converted_accuracy"][str(T)], time.time() - t0)

    # 4. fine-tuning on the synthetic images
    # labels: the ANN's classes of the impressions (the intended class agrees for ~37 %, see finetune)
    y_teacher = teacher_labels(ann, imp.x)
    snn_start = with_T(conv.snn, sc.ft_T)
    rec["finetune_start"] = {"synthetic_accuracy": _acc(snn_start, imp.x, y_teacher)}
    snn_ft = finetune(snn_start, data, imp.x, y_teacher, sc.ft_epochs, sc.ft_lr, 25, seed=seed)
    rec["finetune_end"] = {"synthetic_accuracy": _acc(with_T(snn_ft, sc.ft_T), imp.x, y_teacher)}
    rec["finetuned_T"] = sc.ft_T
    rec["finetuned_accuracy"] = {str(T): _acc(with_T(snn_ft, T), test_x, test_y)
                                 for T in sorted({sc.ft_T, *sc.Ts})}
    rec["converted_accuracy_at_ft_T"] = _acc(with_T(conv.snn, sc.ft_T), test_x, test_y)
    log.info("fine-tuned: %s (%.0f s)", rec["finetuned_accuracy"], time.time() - t0)

    # 5. class leakage
    means = class_means(data.train_x[: sc.train], data.train_y[: sc.train], data.num_classes)
    search = InputSearch(iterations=sc.invert_iterations)
    rec["leakage"] = {}
    for name, net in (("ann", ann), ("converted_as_ann", as_ann(conv.snn)), ("finetuned_as_ann", as_ann(snn_ft)),
                      ("converted_snn", with_T(conv.snn, sc.invert_T)), ("finetuned_snn", with_T(snn_ft, sc.invert_T))):
        xi, yi = invert_classes(net, sc.invert_per_class, box, search, seed=seed)
        rec["leakage"][name] = score_images(xi, yi, judge, means, data.normalization).to_dict()
        log.info("leakage %s: %s", name, rec["leakage"][name])

    # 6. data leakage of conversion (members: the ANN's training examples)
    mia = {}
    for name, net in (("ann", ann), ("converted", with_T(conv.snn, 100)), ("finetuned", with_T(snn_ft, 100))):
        mia[name] = loss_audit(net, data, ann_cfg, n=sc.membership, seed=seed, backend="reference").loss.auc
    rec["membership_auc"] = mia

    # 7. energy
    rec["energy"] = {"converted_T100": energy(with_T(conv.snn, 100), test_x[: sc.energy_n]).to_dict(),
                     "finetuned_T%d" % sc.ft_T: energy(with_T(snn_ft, sc.ft_T), test_x[: sc.energy_n]).to_dict()}
    rec["seconds"] = time.time() - t0
    return rec


def markdown(rec: dict) -> str:
    Ts = rec["settings"]["Ts"]
    ft_T = rec["finetuned_T"]
    lk = rec["leakage"]
    lines = [f"# PrivateSNN pipeline: {rec['dataset']}, scale {rec['scale']}", "",
             f"Network `{rec['spec']}` (ReLU, average pooling, no bias); IF neurons, reset by subtraction, "
             f"per-layer thresholds balanced (99.9th percentile) on {rec['impressions']['n']} class impressions "
             f"only; direct input.  ANN trained on {rec['settings']['train']} real examples "
             f"({rec['settings']['ann_epochs']} epochs, no DP); accuracy on the first {rec['settings']['test']} "
             f"test images.  Judge: `{JUDGE_SPEC}` tanh ANN on a disjoint slice "
             f"({100 * rec['judge_accuracy']:.2f} % test accuracy).  {rec['seconds'] / 60:.1f} min on 2 CPU cores.", "",
             "| model | " + " | ".join(f"acc T={T}" for T in Ts) + f" | acc at fine-tuning T={ft_T} | judge conf. (weights as ANN) "
             "| judge conf. (surrogate inversion) | SSIM margin (as ANN) | membership AUC | energy ratio ANN/SNN |",
             "| --- | " + " | ".join("---" for _ in Ts) + " | --- | --- | --- | --- | --- | --- |"]
    e_c = rec["energy"]["converted_T100"]["ratio"]
    e_f = rec["energy"][f"finetuned_T{ft_T}"]["ratio"]
    a = lk["ann"]
    lines.append(f"| ANN | {100 * rec['ann_accuracy']:.2f} (T=1) | " + " | ".join("" for _ in Ts[1:])
                 + f" | | {a['judge_confidence']:.3f} | | {a['ssim_margin']:.4f} | {rec['membership_auc']['ann']:.3f} | 1 |")
    c, cs = lk["converted_as_ann"], lk["converted_snn"]
    lines.append("| converted SNN | " + " | ".join(f"{100 * rec['converted_accuracy'][str(T)]:.2f}" for T in Ts)
                 + f" | {100 * rec['converted_accuracy_at_ft_T']:.2f} | {c['judge_confidence']:.3f} | "
                 f"{cs['judge_confidence']:.3f} | {c['ssim_margin']:.4f} | {rec['membership_auc']['converted']:.3f} "
                 f"| {e_c:.2f} (T=100) |")
    f, fs = lk["finetuned_as_ann"], lk["finetuned_snn"]
    lines.append("| fine-tuned SNN | " + " | ".join(f"{100 * rec['finetuned_accuracy'][str(T)]:.2f}" for T in Ts)
                 + f" | {100 * rec['finetuned_accuracy'][str(ft_T)]:.2f} | {f['judge_confidence']:.3f} | "
                 f"{fs['judge_confidence']:.3f} | {f['ssim_margin']:.4f} | {rec['membership_auc']['finetuned']:.3f} "
                 f"| {e_f:.2f} (T={ft_T}) |")
    lines += ["", "Thresholds: " + ", ".join(f"{t:.3f}" for t in rec["thresholds"]) + ".", ""]
    st = rec["settings"]
    if "finetune_start" in rec:
        lines += [f"Fine-tuning: surrogate-gradient BPTT at T={ft_T}, {st['ft_epochs']} epochs, SGD lr {st['ft_lr']}, "
                  f"batch 25, on the {rec['impressions']['n']} impressions labelled with the ANN's predictions (the "
                  f"class an impression was made for agrees with the ANN for "
                  f"{100 * rec['impressions']['ann_agrees']:.1f} % of them), in the unit-threshold form of the "
                  f"network; agreement with those labels {100 * rec['finetune_start']['synthetic_accuracy']:.1f} % "
                  f"before, {100 * rec['finetune_end']['synthetic_accuracy']:.1f} % after.", ""]
    lines += [f"Class leakage: {st['invert_per_class']} images per class inverted from uniform noise "
              f"({st['invert_iterations']} Adam steps); weights as ANN = the ReLU ANN of the SNN's rates "
              f"(hidden layers divided by their thresholds; for the converted SNN, its ANN); surrogate = BPTT "
              f"through the SNN at T={st['invert_T']}.  Chance: judge confidence 0.1, SSIM margin 0.", "",
              "| inverted from | judge confidence | judge accuracy | SSIM to class mean | SSIM margin |",
              "| --- | --- | --- | --- | --- |"]
    for key, label in (("ann", "ANN"), ("converted_as_ann", "converted, weights as ANN"),
                       ("finetuned_as_ann", "fine-tuned, weights as ANN"), ("converted_snn", "converted, surrogate"),
                       ("finetuned_snn", "fine-tuned, surrogate")):
        v = lk[key]
        lines.append(f"| {label} | {v['judge_confidence']:.3f} | {v['judge_accuracy']:.2f} | "
                     f"{v['ssim_to_class_mean']:.4f} | {v['ssim_margin']:.4f} |")
    seed = "" if rec["seed"] == 0 else f" --seed {rec['seed']}"
    lines += ["", f"Command: `python -m npdpsnn.conversion.experiment --dataset {rec['dataset']} "
              f"--scale {rec['scale']}{seed}`.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    p.add_argument("--scale", default="small", choices=tuple(SCALES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/results/privatesnn")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rec = run(a.dataset, a.scale, a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{a.dataset}-{a.scale}"
    (out / f"{stem}.json").write_text(json.dumps(rec, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(rec))
    log.info("wrote %s", out / f"{stem}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
