"""PrivateSNN's "encryption": fine-tune the converted SNN with surrogate-gradient
BPTT on the synthetic images only (their target classes as labels), through the
engine's :func:`~npdpsnn.training.fit` -- optionally under DP-SGD.

The weights move away from the ANN's because the temporal rule follows the
spike dynamics, which PrivateSNN argues hides the class features the ANN's
weights carry (measured in :mod:`.leakage`).
"""

from __future__ import annotations

import numpy as np

from npdpsnn.data.dataset import Dataset
from npdpsnn.network import Network
from npdpsnn.training import TrainConfig, fit
from npdpsnn.training.callbacks import Callback


class StartFrom(Callback):
    """Starts a run from the weights ``theta`` (and its EMA, if any)."""

    def __init__(self, theta: np.ndarray):
        self.theta = np.asarray(theta, np.float32)

    def on_fit_start(self, trainer) -> None:
        if trainer.step == 0:
            trainer.net.theta[:] = self.theta
            if getattr(trainer.optimizer, "ema", None) is not None:
                trainer.optimizer.ema[:] = self.theta


def synthetic_dataset(real: Dataset, x: np.ndarray, y: np.ndarray) -> Dataset:
    """The synthetic images as a training set, the real test set kept for evaluation."""
    return Dataset(f"{real.name}", np.asarray(x, np.float32), np.asarray(y, np.int64), real.test_x, real.test_y,
                   real.num_classes, real.input_shape, real.normalization, f"synthetic ({real.source})")


def finetune(snn: Network, data: Dataset, x_syn: np.ndarray, y_syn: np.ndarray, epochs: int, lr: float,
             batch_size: int, sigma: float | None = None, clip: float = 1.5, seed: int = 0,
             backend: str = "reference", physical_batch: int = 25, callbacks=()) -> Network:
    """``snn`` fine-tuned on ``(x_syn, y_syn)`` (no DP unless ``sigma``); returns the new network."""
    values = {"net": snn.spec, "optim.epochs": int(epochs), "optim.lr": float(lr),
              "optim.batch_size": int(batch_size), "run.seed": int(seed), "run.physical_batch": int(physical_batch),
              "dp.sampling": "shuffle" if sigma is None else "poisson"}
    values.update({"dp.enabled": False} if sigma is None else {"dp.sigma": float(sigma), "dp.clip": float(clip)})
    for key, value in snn.config.to_dict().items():
        values[f"model.{key}"] = tuple(value) if isinstance(value, list) else value
    config = TrainConfig.from_values(data.name, values)
    result = fit(config, synthetic_dataset(data, x_syn, y_syn), backend=backend, evaluate_test=False,
                 callbacks=[StartFrom(snn.theta), *callbacks])
    return result.network
