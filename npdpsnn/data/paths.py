"""Where the data directory is: argument, then ``NPDPSNN_DATA``, then a per-user cache."""

from __future__ import annotations

import os
from pathlib import Path

from npdpsnn.errors import DataError

__all__ = ["DATA_ENV", "resolve_data_dir", "is_user_named"]

#: Environment variable naming the data directory.
DATA_ENV = "NPDPSNN_DATA"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory to use (it need not exist yet).

    Order: the ``data_dir`` argument (e.g. ``--data-dir``) when given and not
    empty; else the environment variable ``NPDPSNN_DATA`` when set and not
    empty; else ``$XDG_CACHE_HOME/npdpsnn`` (``~/.cache/npdpsnn`` when
    ``XDG_CACHE_HOME`` is unset or empty).  ``~`` is expanded; the result is
    absolute.
    """
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise DataError(f"data_dir must be a path or None, got {type(data_dir).__name__}")
    if data_dir is not None and os.fspath(data_dir) != "":
        return _absolute(Path(os.fspath(data_dir)))
    env = os.environ.get(DATA_ENV, "")
    if env:
        return _absolute(Path(env))
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache else Path("~") / ".cache"
    return _absolute(base / "npdpsnn")


def is_user_named(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """True when :func:`resolve_data_dir` picks a folder the user named (the
    argument or ``NPDPSNN_DATA``), False for the per-user cache.  Only the cache
    is created when missing; a named folder that does not exist is a mistake."""
    return (data_dir is not None and os.fspath(data_dir) != "") or bool(os.environ.get(DATA_ENV, ""))


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))
