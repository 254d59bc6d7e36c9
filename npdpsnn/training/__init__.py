"""Training: the DP-SGD loop (:func:`fit`), its configuration, callbacks, the run
folder recorder, checkpoints and run records."""

from npdpsnn.training.callbacks import Callback
from npdpsnn.training.config import ConfigError, DPConfig, OptimConfig, RunConfig, TrainConfig
from npdpsnn.training.recorder import RunRecorder
from npdpsnn.training.trainer import Evaluation, FitResult, Trainer, evaluate_model, fit

__all__ = ["Callback", "ConfigError", "DPConfig", "Evaluation", "FitResult", "OptimConfig", "RunConfig",
           "RunRecorder", "TrainConfig", "Trainer", "evaluate_model", "fit"]
