"""PrivateSNN's "encryption": fine-tune the converted SNN with surrogate-gradient
BPTT on the synthetic images only (their target classes as labels), through the
engine's :func:`~npdpsnn.training.fit` -- optionally under DP-SGD.

The weights move away from the ANN's because the temporal rule follows the
spike dynamics, which PrivateSNN argues hides the class features the ANN's
weights carry (measured in :mod:`.leakage`).

Two things make or break it (MNIST, small scale: 98 % -> 19 % before, 98-99 % after):

* **Unit thresholds.**  Training runs on :func:`~.balance.unit_thresholds` of
  the network -- the same spikes, with the surrogate relative to each layer's
  threshold -- and the result is written back with the original thresholds.
  With the balanced thresholds themselves (conv1: ``theta ~ 9``) BPTT through
  reset by subtraction multiplies the gradient by ``1 - theta g' = -8`` per
  step (conv1's gradient ~1e18 at ``T = 25``).  Detaching the reset is no cure
  for IF neurons: without the reset term the membrane carries every later
  step's gradient back, ~``T/2`` too much per layer (conv1 ~1000x its weights),
  and one epoch takes the network to chance.
* **Labels the network agrees with.**  An impression is made for class ``k``
  with a Dirichlet soft label over similar classes; the ANN assigns only about
  37 % of them to ``k``.  Hard labels ``k`` then train the other 63 % towards
  the wrong classes.  Pass the teacher's labels (the ANN's predictions on the
  impressions, :func:`teacher_labels`): still no real data.
"""

from __future__ import annotations

import numpy as np

from npdpsnn.conversion.balance import rescale_thresholds, thresholds_of, unit_thresholds
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


def teacher_labels(teacher: Network, x_syn: np.ndarray, backend: str = "reference") -> np.ndarray:
    """The class ``teacher`` (the ANN, or the converted SNN) predicts for each synthetic image."""
    return np.asarray(teacher.predict(np.asarray(x_syn), backend=backend, batch_size=250), np.int64)


def finetune(snn: Network, data: Dataset, x_syn: np.ndarray, y_syn: np.ndarray, epochs: int, lr: float,
             batch_size: int, sigma: float | None = None, clip: float = 1.5, seed: int = 0,
             backend: str = "reference", physical_batch: int = 25, callbacks=()) -> Network:
    """``snn`` fine-tuned on ``(x_syn, y_syn)`` (no DP unless ``sigma``); returns the new network,
    with ``snn``'s thresholds.  ``y_syn`` should be :func:`teacher_labels` (module docstring)."""
    thresholds = thresholds_of(snn)
    snn = unit_thresholds(snn)
    values = {"net": snn.spec, "optim.epochs": int(epochs), "optim.lr": float(lr),
              "optim.batch_size": int(batch_size), "run.seed": int(seed), "run.physical_batch": int(physical_batch),
              "dp.sampling": "shuffle" if sigma is None else "poisson"}
    values.update({"dp.enabled": False} if sigma is None else {"dp.sigma": float(sigma), "dp.clip": float(clip)})
    for key, value in snn.config.to_dict().items():
        values[f"model.{key}"] = tuple(value) if isinstance(value, list) else value
    config = TrainConfig.from_values(data.name, values)
    result = fit(config, synthetic_dataset(data, x_syn, y_syn), backend=backend, evaluate_test=False,
                 callbacks=[StartFrom(snn.theta), *callbacks])
    return rescale_thresholds(result.network, thresholds)
