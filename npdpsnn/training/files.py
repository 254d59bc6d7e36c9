"""Atomic file writes: write a temporary file in the same folder, then rename.

A reader never sees a half-written file, and an interrupted or failed write
leaves the previous version intact.  A write that fails (disk full, read-only
folder, I/O error, name too long) removes its temporary file and raises a
one-line :class:`~npdpsnn.errors.UserError`: ``cannot write <file>: <reason>``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from npdpsnn.errors import UserError

log = logging.getLogger(__name__)


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None], suffix: str = ".tmp") -> None:
    """Call ``writer(tmp_path)`` then move ``tmp_path`` onto ``path``."""
    path = Path(path)
    tmp = _temporary(path, suffix)
    try:
        writer(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise write_error(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, suffix: str = ".tmp") -> None:
    """Write ``data`` to ``path`` atomically (plain Python I/O)."""
    atomic_write(path, lambda tmp: _write_bytes(tmp, data), suffix=suffix)


def atomic_write_all(files: Sequence[tuple[str | os.PathLike, bytes]]) -> None:
    """Write several files so that a failure changes none of them.

    Every file is first written to a temporary file beside it and flushed to
    disk; only when all are written are they renamed into place, in the given
    order (renames need no space, so a full disk fails before any file is
    replaced).  Put the file that marks a step complete (the checkpoint) last.
    """
    staged: list[tuple[Path, str]] = []
    try:
        for target, data in files:
            path = Path(target)
            tmp = _temporary(path, ".tmp")
            staged.append((path, tmp))
            try:
                _write_bytes(tmp, data)
                _fsync_file(tmp)
            except OSError as exc:
                raise write_error(path, exc) from None
        for path, tmp in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise write_error(path, exc) from None
    finally:
        for _, tmp in staged:
            _remove(tmp)
    for folder in {path.parent for path, _ in staged}:
        _fsync_dir(folder)


def write_error(path: Path, exc: OSError) -> UserError:
    """The one-line error for a failed write of ``path``."""
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__)
    return UserError(f"cannot write {path}: {reason}")


def _temporary(path: Path, suffix: str) -> str:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    os.close(fd)
    return tmp


def _write_bytes(tmp: str, data: bytes) -> None:
    with open(tmp, "wb") as f:
        f.write(data)


def _fsync_file(tmp: str) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove temporary file %s: %s", tmp, exc.strerror or exc)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def jsonable(obj):
    """``obj`` with non-finite floats as the strings ``"inf"``, ``"-inf"``, ``"nan"``
    (strict JSON has no infinity; an infinite epsilon is a real answer)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def json_text(obj) -> str:
    """The run folder's JSON format: strict JSON (infinities as strings), indented."""
    return json.dumps(jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json_text(obj))
