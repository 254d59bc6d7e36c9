"""A lock on a run folder, so that two runs never write into one folder.

``with RunLock(folder): ...`` takes an exclusive, non-blocking ``flock`` on
``folder/.lock`` and writes the holder's process id into it.  A second writer
(another process, or another ``RunLock`` in this one) is refused at once with
``run folder X is in use by process N``.  The kernel releases a ``flock`` when
its process dies, so a lock file left by a killed run is not a lock: the next
run takes it over.  On release the lock file is removed (while still locked,
and a taker checks that the file it locked is still the one named ``.lock``, so
two processes can never both hold the lock); a folder that the lock created and
that is still empty is removed too.

``flock`` is advisory and local: it does not protect a folder shared over NFS
between machines.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

from npdpsnn.errors import UserError

__all__ = ["LOCK_NAME", "RunLock"]

log = logging.getLogger(__name__)

#: Name of the lock file inside the run folder.
LOCK_NAME = ".lock"
_ATTEMPTS = 20


class RunLock:
    """Exclusive lock on the run folder ``folder`` (created when missing if ``create``)."""

    def __init__(self, folder: str | os.PathLike, create: bool = True):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.create = create
        self._fd: int | None = None
        self._created: list[Path] = []

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`UserError` naming the holder."""
        if self._fd is not None:
            raise UserError(f"run folder {self.folder} is already locked by this RunLock")
        if self.create:
            self._make_folder()
        try:
            for _ in range(_ATTEMPTS):
                fd = self._open()
                if self._lock(fd):
                    self._fd = fd
                    self._write_pid(fd)
                    return
        except BaseException:
            self._remove_created()
            raise
        self._remove_created()
        raise UserError(f"cannot lock run folder {self.folder}: the lock file keeps changing")

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.warning("could not remove lock file %s: %s", self.path, exc.strerror or exc)
        finally:
            os.close(fd)
        self._remove_created()

    # ------------------------------------------------------------ helpers
    def _make_folder(self) -> None:
        missing = []
        for folder in (self.folder, *self.folder.parents):
            if folder.exists():
                break
            missing.append(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create run folder {self.folder}: {exc.strerror or exc}") from None
        self._created = missing  # deepest first

    def _remove_created(self) -> None:
        for folder in self._created:
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
        self._created = []

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise UserError(f"cannot lock run folder {self.folder}: {exc.strerror or exc}") from None

    def _lock(self, fd: int) -> bool:
        """True when ``fd`` is locked and still the file named ``.lock``; False to retry."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise UserError(f"run folder {self.folder} is in use by {who}") from None
        except OSError as exc:
            os.close(fd)
            raise UserError(f"cannot lock run folder {self.folder}: {exc.strerror or exc}") from None
        try:
            named = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            named = None
        mine = os.fstat(fd)
        if named is None or (named.st_dev, named.st_ino) != (mine.st_dev, mine.st_ino):
            os.close(fd)  # the holder removed it between our open and our lock
            return False
        stale = _read_pid(fd)
        if stale and stale != os.getpid():
            log.info("taking over the lock of %s left by process %d, which no longer holds it", self.folder, stale)
        return True

    def _write_pid(self, fd: int) -> None:
        data = f"{os.getpid()}\n".encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as exc:
            self.release()
            raise UserError(f"cannot lock run folder {self.folder}: {exc.strerror or exc}") from None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
