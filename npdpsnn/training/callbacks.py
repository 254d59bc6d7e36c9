"""Callbacks of :func:`npdpsnn.training.trainer.fit`: progress, records, stopping.

A callback sees the :class:`~npdpsnn.training.trainer.Trainer` (its state) at
fixed points of the loop; the loop itself writes no file.
"""

from __future__ import annotations


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer) -> None:
        """Before the first step (of a new or resumed run)."""

    def on_step(self, trainer, info: dict) -> None:
        """After every optimiser step; ``info`` has epoch, batch, batches,
        step, examples_per_second, loss (running mean) and accountant."""

    def on_epoch_end(self, trainer, row: dict) -> None:
        """After an epoch and its evaluation; ``row`` is its metrics row."""

    def on_fit_end(self, trainer) -> None:
        """After the last epoch (not on an interruption)."""

    def should_stop(self, trainer) -> bool:
        """Polled between steps: True stops the run at that step boundary with
        :class:`KeyboardInterrupt`, leaving the last complete epoch's state."""
        return False
