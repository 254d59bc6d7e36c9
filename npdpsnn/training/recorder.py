"""The run folder as a callback: checkpoint, release models and records after every epoch.

After every epoch :class:`RunRecorder` writes ``config.json``, ``metrics.csv``,
``summary.json``, ``model.h5`` (and ``model_ema.h5`` with weight averaging,
``model_best.h5`` -- the weights of the best epoch on the validation split --
with ``--validation``) and ``checkpoint.h5`` together: every file is first
written beside its target and flushed, and only then are they renamed into
place, the checkpoint last (:func:`~npdpsnn.training.files.atomic_write_all`).
A full disk or a failing write therefore changes no file; an interruption
between the renames can leave records one epoch ahead of the checkpoint, and
a resumed run rewrites them from the checkpoint when it starts.  Nothing is
written before the first epoch ends, so a run that fails early leaves no
half-filled folder.
"""

from __future__ import annotations

from pathlib import Path

from npdpsnn.training.callbacks import Callback
from npdpsnn.training.checkpoint import CHECKPOINT_NAME, MODEL_NAME, checkpoint_bytes, model_bytes
from npdpsnn.training.files import atomic_write_all, json_text
from npdpsnn.training.records import CONFIG_NAME, METRICS_NAME, SUMMARY_NAME, metrics_csv, write_metrics, \
    write_summary

EMA_MODEL_NAME = "model_ema.h5"
BEST_MODEL_NAME = "model_best.h5"


class RunRecorder(Callback):
    """Keeps ``out_dir`` in step with the trainer's state."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)

    def on_fit_start(self, trainer) -> None:
        if trainer.epoch:  # recover records an interruption left behind the checkpoint
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_metrics(self.out_dir, trainer.metrics)
            write_summary(self.out_dir, trainer.summary())

    def on_epoch_end(self, trainer, row: dict) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        out = self.out_dir
        files = [(out / CONFIG_NAME, json_text(trainer.config.to_dict()).encode()),
                 (out / METRICS_NAME, metrics_csv(trainer.metrics).encode()),
                 (out / SUMMARY_NAME, json_text(trainer.summary()).encode()),
                 (out / MODEL_NAME, model_bytes(trainer.net, trainer.model_description("last")))]
        ema = trainer.ema_network()
        if ema is not None:  # the averaged weights: post-processing, the same guarantee
            files.append((out / EMA_MODEL_NAME, model_bytes(ema, trainer.model_description("ema"))))
        if trainer.is_best_on_validation():  # selected on held-out training data, never on the test set
            files.append((out / BEST_MODEL_NAME, model_bytes(trainer.net, trainer.model_description("best_validation"))))
        files.append((out / CHECKPOINT_NAME, checkpoint_bytes(trainer.state())))
        atomic_write_all(files)
