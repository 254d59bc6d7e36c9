"""Downloading the MNIST and Fashion-MNIST files (Yale B is never downloaded).

Each file is fetched from ``<mirror base URL><original file name>`` with
``urllib.request``.  The mirror base defaults to a well-known public mirror and
can be overridden per dataset with ``NPDPSNN_MNIST_MIRROR`` or
``NPDPSNN_FASHION_MNIST_MIRROR``.  The bytes are hashed (SHA-256) while they
are written to a temporary file in the destination directory; only when the
length and the checksum are right is the temporary file renamed onto the final
name with :func:`os.replace`, so a half-written file never appears under that
name.  Any failure raises a one-line :class:`~npdpsnn.errors.DataError` and
removes the temporary file.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from npdpsnn.errors import DataError
from npdpsnn.data.registry import IDX_DATASETS, IdxFileSpec

__all__ = ["mirror_base", "download_file", "download_missing"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16
_USER_AGENT = "npdpsnn (+https://pypi.org/project/npdpsnn)"
DEFAULT_TIMEOUT_S = 60.0


def mirror_base(name: str) -> str:
    """Base URL for dataset ``name``: its environment variable if set, else the default."""
    if name not in IDX_DATASETS:
        raise DataError(f"dataset {name!r} cannot be downloaded; only {sorted(IDX_DATASETS)}")
    spec = IDX_DATASETS[name]
    base = os.environ.get(spec.mirror_env, "").strip() or spec.default_mirror
    return base if base.endswith("/") else base + "/"


def download_missing(
    name: str,
    directory: str | Path,
    files: Iterable[IdxFileSpec],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[Path]:
    """Download ``files`` of dataset ``name`` into ``directory`` (created if needed,
    and removed again if the download fails and it is still empty).

    Returns the final paths, each verified against its pinned SHA-256.
    """
    directory = Path(directory)
    base = mirror_base(name)
    files = list(files)
    created = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create data directory {directory}: {exc.strerror or exc}") from exc
    try:
        return [
            download_file(base + f.filename, directory / f.filename, f.sha256, timeout=timeout)
            for f in files
        ]
    except BaseException:
        _remove_empty(created)  # a failed download leaves no empty folders behind
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def download_file(
    url: str, dest: str | Path, sha256: str, *, timeout: float = DEFAULT_TIMEOUT_S
) -> Path:
    """Fetch ``url`` to ``dest`` atomically, checking its SHA-256 and length.

    Args:
        url: what to fetch (any scheme ``urllib`` knows).
        dest: final path; its directory must exist.  Replaced only on success.
        sha256: expected hex SHA-256 of the content.
        timeout: socket timeout in seconds for connecting and each read.

    Raises:
        DataError: HTTP or network error, a transfer shorter than its
            ``Content-Length``, or a checksum mismatch.  No file is left behind.
    """
    dest = Path(dest)
    if not isinstance(url, str) or not url:
        raise DataError(f"bad download URL {url!r}")
    if not (isinstance(sha256, str) and len(sha256) == 64):
        raise DataError(f"bad expected sha256 {sha256!r}")
    if not dest.parent.is_dir():
        raise DataError(f"download directory {dest.parent} does not exist")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise DataError(f"timeout must be positive, got {timeout!r}")
    logger.info("downloading %s -> %s", url, dest)
    return _download(url, dest, sha256.lower(), float(timeout))


def _download(url: str, dest: Path, sha256: str, timeout: float) -> Path:
    tmp: Path | None = None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected_len = _content_length(response)
            fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            tmp = Path(name)
            with os.fdopen(fd, "wb") as out:
                got_sha, received = _stream(response, out, url, expected_len)
                out.flush()
                os.fsync(out.fileno())
        if expected_len is not None and received != expected_len:
            raise DataError(f"download of {url} truncated: got {received} of {expected_len} bytes")
        if got_sha != sha256:
            raise DataError(
                f"checksum mismatch for {dest} (downloaded from {url}): "
                f"expected sha256 {sha256} got {got_sha}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        tmp = None
    except DataError:
        raise
    except urllib.error.HTTPError as exc:
        raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise DataError(f"download of {url} failed: {exc.reason}") from exc
    except http.client.IncompleteRead as exc:
        raise DataError(
            f"download of {url} truncated: connection closed after {len(exc.partial)} more bytes"
        ) from exc
    except (http.client.HTTPException, OSError) as exc:
        # Covers RemoteDisconnected, socket timeouts, resets and local write errors.
        raise DataError(f"download of {url} failed: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # malformed URL
        raise DataError(f"download of {url} failed: {exc}") from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    logger.info("downloaded %s (%d bytes, sha256 ok)", dest, received)
    return dest


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length") if response.headers else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _stream(response, out, url: str, expected_len: int | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    received = 0
    next_report = 0.1
    while chunk := response.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
        received += len(chunk)
        if expected_len and received / expected_len >= next_report:
            logger.debug("%s: %d%% (%d bytes)", url, int(100 * received / expected_len), received)
            next_report += 0.1
    return digest.hexdigest(), received
