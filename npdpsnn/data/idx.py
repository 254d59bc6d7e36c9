"""Reading gzip-compressed IDX files (the MNIST format) with NumPy only.

An IDX file is a big-endian header followed by raw data:

* magic number: two zero bytes, a type code (``0x08`` = unsigned byte) and the
  number of dimensions, so images have magic 2051 (``0x00000803``) and labels
  2049 (``0x00000801``);
* one 32-bit big-endian size per dimension;
* the data, row-major, exactly ``prod(sizes)`` bytes.

Every check failure raises :class:`~npdpsnn.errors.DataError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from npdpsnn.errors import DataError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "read_idx_images", "read_idx_labels"]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def read_idx_images(
    path: str | Path,
    *,
    count: int | None = None,
    image_shape: tuple[int, int] | None = None,
    sha256: str | None = None,
) -> np.ndarray:
    """Read a gzip IDX image file into a ``uint8`` array of shape ``(N, H, W)``.

    Args:
        path: the ``.gz`` file.
        count: expected number of images ``N`` (not checked when ``None``).
        image_shape: expected ``(H, W)`` (not checked when ``None``).
        sha256: expected SHA-256 of the compressed file (not checked when ``None``).
    """
    path = Path(path)
    dims = _expected_dims(count, image_shape, 3)
    return _read_idx(path, IMAGES_MAGIC, dims, sha256)


def read_idx_labels(
    path: str | Path,
    *,
    count: int | None = None,
    num_classes: int | None = None,
    sha256: str | None = None,
) -> np.ndarray:
    """Read a gzip IDX label file into an ``int64`` array of shape ``(N,)``.

    Args:
        path: the ``.gz`` file.
        count: expected number of labels (not checked when ``None``).
        num_classes: when given, every label must be in ``0 .. num_classes-1``.
        sha256: expected SHA-256 of the compressed file (not checked when ``None``).
    """
    path = Path(path)
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    labels = _read_idx(path, LABELS_MAGIC, _expected_dims(count, None, 1), sha256)
    if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
        raise DataError(
            f"{path}: label {int(labels.max())} out of range 0..{num_classes - 1}"
        )
    return labels.astype(np.int64)


def _expected_dims(
    count: int | None, shape: tuple[int, ...] | None, ndim: int
) -> tuple[int | None, ...]:
    if count is not None and (not isinstance(count, int) or count < 0):
        raise ValueError(f"count must be a non-negative int, got {count!r}")
    tail: tuple[int | None, ...] = (None,) * (ndim - 1) if shape is None else tuple(shape)
    if len(tail) != ndim - 1:
        raise ValueError(f"expected a shape of {ndim - 1} dims, got {shape!r}")
    return (count, *tail)


def _read_idx(
    path: Path, magic: int, dims: tuple[int | None, ...], sha256: str | None
) -> np.ndarray:
    compressed = _read_bytes(path)
    if sha256 is not None:
        got = hashlib.sha256(compressed).hexdigest()
        if got != sha256.lower():
            raise DataError(
                f"checksum mismatch for {path}: expected sha256 {sha256.lower()} got {got}"
            )
    raw = _gunzip(path, compressed)
    return _parse_idx(path, raw, magic, dims)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"missing file {path}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _gunzip(path: Path, compressed: bytes) -> bytes:
    try:
        return gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as exc:
        # BadGzipFile is an OSError; a truncated stream raises EOFError.
        raise DataError(f"{path} is not a valid gzip file (corrupt or truncated): {exc}") from exc


def _parse_idx(
    path: Path, raw: bytes, magic: int, dims: tuple[int | None, ...]
) -> np.ndarray:
    ndim = len(dims)
    header_len = 4 + 4 * ndim
    if len(raw) < 4:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, no IDX header")
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise DataError(f"{path}: bad IDX magic number {got_magic}, expected {magic}")
    if len(raw) < header_len:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, header needs {header_len}")
    sizes = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    for axis, (want, got) in enumerate(zip(dims, sizes)):
        if want is not None and want != got:
            what = "item count" if axis == 0 else f"size of dimension {axis}"
            raise DataError(f"{path}: {what} is {got}, expected {want}")
    expected_len = header_len + int(np.prod(sizes, dtype=np.int64))
    if len(raw) < expected_len:
        raise DataError(
            f"{path} is truncated: {len(raw)} bytes after decompression, expected {expected_len}"
        )
    if len(raw) > expected_len:
        raise DataError(
            f"{path} has {len(raw) - expected_len} trailing bytes after the IDX data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(sizes).copy()
