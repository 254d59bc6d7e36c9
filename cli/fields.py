"""Which configuration field (see :mod:`npdpsnn.training.config`) each command-line option sets.

One map for every command that builds a training configuration (``train``,
``audit canaries``, ``train-neuraldp``); error messages that name fields are
shown with these options instead.
"""

from __future__ import annotations

#: The configuration field (see npdpsnn.training.config) that each option sets.
FIELD_OF_OPTION: dict[str, str] = {
    "model": "model.kind", "net": "net", "neuron": "model.neuron", "surrogate": "model.surrogate", "T": "model.T",
    "threshold": "model.threshold", "leak": "model.leak", "detach_reset": "model.detach_reset",
    "sigma": "dp.sigma", "target_epsilon": "dp.target_epsilon", "clip": "dp.clip", "clipping": "dp.clipping",
    "delta": "dp.delta", "sampling": "dp.sampling", "noise_seed": "dp.noise_seed", "accountant": "dp.accountant",
    "no_dp": "dp.enabled", "batch_size": "optim.batch_size", "lr": "optim.lr", "momentum": "optim.momentum",
    "epochs": "optim.epochs", "physical_batch": "run.physical_batch", "seed": "run.seed", "threads": "run.threads",
    "device": "run.device", "limit_train": "run.limit_train", "validation": "run.validation",
    "lr_schedule": "optim.lr_schedule", "ema": "optim.ema", "init_gain": "optim.init_gain", "noise": "dp.noise",
    "augment_mult": "dp.augment_mult",
    "activation": "model.activation", "reset": "model.reset", "thresholds": "model.thresholds",
    "no_bias": "model.bias", "encoding": "model.encoding", "encoding_seed": "model.encoding_seed",
    "preset": "preset",
}
