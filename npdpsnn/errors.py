"""Exceptions for user-facing errors.

Every error caused by the user's input (a bad file, a bad hyperparameter, a bad
spec string) is a :class:`UserError`.  The CLI prints its message on one line and
exits with status 2; library callers can catch it like any ``ValueError``.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: the message names the problem on one line."""


class DataError(UserError):
    """A dataset file is missing, truncated, corrupt or fails its checksum."""


class SpecError(UserError):
    """A network spec string cannot be parsed or does not fit its input."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, or conflicts with the requested run."""


class BackendError(UserError):
    """A requested compute backend (e.g. CUDA) is not available."""
