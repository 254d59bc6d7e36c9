"""Opening the files we read: regular files only, of bounded size.

A FIFO, a device or a folder given where a file is expected must not hang or
stream forever, and a huge (perhaps sparse) file must not be read whole.  The
file is opened without blocking (``O_NONBLOCK``: opening a FIFO returns at once),
then checked with ``fstat`` on the open descriptor -- so what is checked is what
is read, whatever happens to the name in between.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from npdpsnn.errors import UserError

__all__ = ["open_input_file", "file_size"]

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def open_input_file(path: str | os.PathLike, *, max_bytes: int, error: type[UserError] = UserError,
                    what: str = "file") -> BinaryIO:
    """Open ``path`` for binary reading after checking that it is a regular file
    of at most ``max_bytes`` bytes; any other case raises ``error`` (a one-line
    :class:`~npdpsnn.errors.UserError`) naming the file.  ``what`` names the kind
    of file in the size message (``"checkpoint"``, ``"data file"``)."""
    path = Path(path)
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise error(f"missing file {path}") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise error(f"{path} is {info.st_size:,} bytes, more than the limit of {max_bytes:,} for a {what}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(f: BinaryIO) -> int:
    """Size in bytes of an open file."""
    return os.fstat(f.fileno()).st_size
