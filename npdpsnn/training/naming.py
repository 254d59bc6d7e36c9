"""Readable run names that say what differs from the defaults.

``mnist-snn-sigma1-seed0`` for the paper's settings;
``mnist-ann-sigma1-lr0.1-epochs5-limit_train2000-seed0`` when options differ.
The base is the dataset, the model kind and the privacy setting; then one
``field<value>`` token for every setting that differs from the dataset's
defaults (those that change results only: not threads, device, micro-batch
size or which accountants are reported; for an ANN not the spiking options).
"""

from __future__ import annotations

import re

from npdpsnn.training.config import DATASET_DEFAULTS, TrainConfig, field_paths

#: Settings that do not change what is computed, and so stay out of names.
_NOT_IN_NAMES = {"spec", "run.threads", "run.device", "run.physical_batch", "dp.accountant", "dp.enabled",
                 "dp.sigma", "dp.target_epsilon", "model.kind", "run.seed", "dataset"}
#: Options that only spiking networks use.
SNN_ONLY = ("model.neuron", "model.surrogate", "model.T", "model.threshold", "model.leak", "model.detach_reset")


def _token(path: str, value) -> str:
    name = path.split(".")[-1]
    if isinstance(value, bool):
        return name if value else f"no_{name}"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", f"{name}{text}")[:40]


def run_name(config: TrainConfig) -> str:
    """The run's name (a folder name: ASCII letters, digits, ``._+-``)."""
    dp = config.dp
    privacy = "nodp" if not dp.enabled else (f"sigma{dp.sigma:g}" if dp.sigma is not None else
                                             f"eps{dp.target_epsilon:g}")
    reference = TrainConfig.from_values(config.dataset, {**DATASET_DEFAULTS[config.dataset], "dp.enabled": False}) \
        if config.dataset in DATASET_DEFAULTS else None
    skip = _NOT_IN_NAMES | (set(SNN_ONLY) if config.model.kind == "ann" else set())
    tokens = []
    for path in field_paths():
        if path in skip:
            continue
        value = config.get(path)
        if reference is None or value != reference.get(path):
            tokens.append(_token(path, value))
    return "-".join([config.dataset, config.model.kind, privacy, *tokens, f"seed{config.run.seed}"])
