"""Experiment: Net2 SNN or ANN, sigma = 1.0, 60 epochs on MNIST, pixels scaled to [0, 1]
instead of the default mean/std normalisation.

    NPDPSNN_DATA=../shared/data python -m npdpsnn.paper.input_scaling snn [numba|cuda]
    NPDPSNN_DATA=../shared/data python -m npdpsnn.paper.input_scaling ann [numba|cuda]

Prints one JSON line: final and best test accuracy and the learning curve.
"""

import json
import sys
from dataclasses import replace

from npdpsnn.data import load_dataset
from npdpsnn.data.normalization import NormalizedImages
from npdpsnn.training.config import TrainConfig
from npdpsnn.training.trainer import fit


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "snn"
    backend = sys.argv[2] if len(sys.argv) > 2 else "numba"
    ds = load_dataset("mnist")
    unit = {"mean": 0.0, "std": 1.0}
    ds01 = replace(ds, train_x=NormalizedImages(ds.train_x.raw, unit), test_x=NormalizedImages(ds.test_x.raw, unit),
                   normalization=unit)
    cfg = TrainConfig.from_values("mnist", {"model.kind": model, "dp.sigma": 1.0, "optim.epochs": 60,
                                            "dp.accountant": "rdp"})
    result = fit(cfg, ds01, backend=backend)
    s = result.summary
    print(json.dumps({"model": model, "scaling": "[0,1]", "test_accuracy": s["test_accuracy"],
                      "best": s["best_test_accuracy"], "best_epoch": s["best_epoch"],
                      "curve": [round(r["test_accuracy"], 4) for r in result.metrics]}))


if __name__ == "__main__":
    main()
