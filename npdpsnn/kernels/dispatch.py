"""Former entry points, kept for existing callers.

New code uses :func:`npdpsnn.kernels.backend.get_backend`,
:func:`npdpsnn.kernels.backend.resolve_device` and an
:class:`npdpsnn.engine.Engine` (``default_engine().set_threads(n)``).
"""

from __future__ import annotations

from npdpsnn.engine import default_engine
from npdpsnn.kernels.backend import resolve_device

__all__ = ["get_threads", "resolve_device", "set_threads"]


def set_threads(n: int) -> None:
    """CPU kernel threads of the default engine: ``default_engine().set_threads(n)``."""
    default_engine().set_threads(n)


def get_threads() -> int:
    """``default_engine().threads``."""
    return default_engine().threads
