"""The run folder as a callback: checkpoint, release model and records after every epoch.

:class:`RunRecorder` writes, after every epoch, ``config.json``,
``checkpoint.h5``, ``model.h5`` (and ``model_ema.h5`` with weight averaging,
``model_best.h5`` -- the weights of the best epoch on the validation split --
with ``--validation``),
``metrics.csv`` and ``summary.json``, each
atomically -- nothing before the first epoch ends, so a run that fails early
leaves no half-filled folder.  When a resumed run starts it rewrites
``metrics.csv`` and ``summary.json`` from the checkpoint, so records that an
interruption between two writes left behind are recovered.
"""

from __future__ import annotations

from pathlib import Path

from npdpsnn.training.callbacks import Callback
from npdpsnn.training.checkpoint import CHECKPOINT_NAME, MODEL_NAME, save_checkpoint, save_model
from npdpsnn.training.records import write_config, write_metrics, write_summary

EMA_MODEL_NAME = "model_ema.h5"
BEST_MODEL_NAME = "model_best.h5"


class RunRecorder(Callback):
    """Keeps ``out_dir`` in step with the trainer's state."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)

    def on_fit_start(self, trainer) -> None:
        if trainer.epoch:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._records(trainer)

    def on_epoch_end(self, trainer, row: dict) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_config(self.out_dir, trainer.config.to_dict())
        save_checkpoint(self.out_dir / CHECKPOINT_NAME, trainer.state())
        save_model(self.out_dir / MODEL_NAME, trainer.net)
        ema = trainer.ema_network()
        if ema is not None:  # the averaged weights: post-processing, the same guarantee
            save_model(self.out_dir / EMA_MODEL_NAME, ema)
        if trainer.is_best_on_validation():  # selected on held-out training data, never on the test set
            save_model(self.out_dir / BEST_MODEL_NAME, trainer.net)
        self._records(trainer)

    def _records(self, trainer) -> None:
        write_metrics(self.out_dir, trainer.metrics)
        write_summary(self.out_dir, trainer.summary())
