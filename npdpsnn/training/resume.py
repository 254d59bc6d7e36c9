"""Resuming a run: which settings may change, and a ledger checked from first principles.

A resumed run must continue the *same* private computation, so its privacy
ledger is not trusted as stored: :func:`check_resume` rebuilds the ledger that
the configuration implies -- ``step`` repetitions of the sampling scheme's step
event at the configured sigma (or a non-private phase without DP) -- and
refuses the checkpoint unless the stored ledger equals it, ``step`` equals
``epoch x steps per epoch`` and the metrics end at that step.  A crafted ledger
can therefore never lower the epsilon that a resumed run reports.
"""

from __future__ import annotations

from typing import Any

from npdpsnn.errors import CheckpointError
from npdpsnn.privacy.accountants import PrivacyAccountant
from npdpsnn.privacy.events import NonPrivateEvent
from npdpsnn.training.config import ConfigError, TrainConfig

#: Settings a resumed run may change: how long it trains and where it computes.
RESUMABLE_CHANGES: tuple[str, ...] = ("optim.epochs", "run.threads", "run.device")


def resume_config(saved: TrainConfig, requested: dict[str, Any]) -> TrainConfig:
    """``saved`` with the ``requested`` (dotted path -> value) settings applied.

    Only :data:`RESUMABLE_CHANGES` may differ from the checkpoint; a requested
    value equal to the saved one is accepted.  With a calibrated sigma
    (``dp.target_epsilon``) neither ``dp.sigma`` nor the epoch count may change:
    sigma was calibrated for that many epochs."""
    changes: dict[str, Any] = {}
    for path, value in requested.items():
        if path in RESUMABLE_CHANGES:
            changes[path] = value
        elif path == "dp.sigma" and saved.dp.target_epsilon is not None:
            raise ConfigError(path, "conflicts with the checkpoint (it calibrated sigma from dp.target_epsilon)")
        elif saved.get(path) != value:
            raise ConfigError(path, f"= {value!r} conflicts with the checkpoint ({saved.get(path)!r})")
    epochs = changes.get("optim.epochs", saved.optim.epochs)
    if saved.optim.lr_schedule != "constant" and epochs != saved.optim.epochs:
        raise ConfigError("optim.epochs", f"cannot change to {epochs} on resume: the {saved.optim.lr_schedule} "
                                          f"learning-rate schedule spans {saved.optim.epochs} epochs")
    if saved.dp.target_epsilon is not None and epochs != saved.optim.epochs:
        raise ConfigError("optim.epochs", f"cannot change to {epochs} on resume: sigma was calibrated for epsilon "
                                          f"{saved.dp.target_epsilon} over {saved.optim.epochs} epochs")
    return saved.with_values(changes)


def expected_ledger(config: TrainConfig, scheme, steps: int) -> PrivacyAccountant:
    """The ledger ``steps`` steps of ``config`` produce (``scheme`` from
    :func:`npdpsnn.privacy.sampling.make_sampler`)."""
    acc = PrivacyAccountant(sampling=config.dp.sampling)
    if config.dp.enabled:
        acc.record(scheme.step_event(config.dp.sigma), steps)
    else:
        acc.record(NonPrivateEvent(), steps)
    return acc


def check_resume(config: TrainConfig, scheme, ledger: PrivacyAccountant, epoch: int, step: int,
                 metrics: list[dict]) -> None:
    """Refuse (:class:`CheckpointError`) a checkpoint whose progress or ledger
    is not exactly what ``config`` implies."""
    if epoch < 0 or step != epoch * scheme.steps_per_epoch:
        raise CheckpointError(f"cannot resume: the checkpoint records step {step} after {epoch} epochs, but "
                              f"{epoch} epochs are {epoch * scheme.steps_per_epoch} steps of this configuration")
    if len(metrics) != epoch or (metrics and metrics[-1].get("step") != step):
        raise CheckpointError("cannot resume: the checkpoint's metrics do not end at its step")
    if ledger != expected_ledger(config, scheme, step):
        raise CheckpointError("cannot resume: the checkpoint's privacy ledger does not match its configuration "
                              f"({step} steps, sigma {config.dp.sigma}, rate {scheme.sample_rate:.6g}, "
                              f"{config.dp.sampling} sampling, DP {'on' if config.dp.enabled else 'off'})")
