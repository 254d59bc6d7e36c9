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
import math
import zlib
from pathlib import Path

import numpy as np

from npdpsnn.errors import DataError
from npdpsnn.input_files import file_size, open_input_file
from npdpsnn.limits import MAX_DATA_FILE_BYTES, MAX_DATA_RAW_BYTES

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
    compressed, declared = _read_bytes(path, magic, dims)
    if sha256 is not None:
        got = hashlib.sha256(compressed).hexdigest()
        if got != sha256.lower():
            raise DataError(
                f"checksum mismatch for {path}: expected sha256 {sha256.lower()} got {got}"
            )
    raw = _gunzip(path, compressed, declared)
    return _parse_idx(path, raw, magic, dims)


def _read_bytes(path: Path, magic: int, dims: tuple[int | None, ...]) -> tuple[bytes, int]:
    """The compressed file and how many decompressed bytes to accept (the IDX
    header plus data it must hold).  The file's size from ``stat`` is checked
    against a gzip of that many bytes first: a huge or sparse file is refused
    before it is read."""
    with open_input_file(path, max_bytes=MAX_DATA_FILE_BYTES, error=DataError, what="data file") as f:
        declared = _declared_size(f, magic, dims)
        if declared is None:  # unreadable header: read enough for _parse_idx to say why
            declared = 4 + 4 * len(dims)
        elif declared > MAX_DATA_RAW_BYTES:
            raise DataError(f"{path} declares {declared:,} bytes of IDX data, more than the limit of "
                            f"{MAX_DATA_RAW_BYTES:,}")
        elif file_size(f) > _max_gzip_size(declared):
            raise DataError(f"{path} is {file_size(f):,} bytes, far more than a gzip of the {declared:,} bytes "
                            "of IDX data it should hold")
        f.seek(0)
        try:
            return f.read(), declared
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _declared_size(f, magic: int, dims: tuple[int | None, ...]) -> int | None:
    """Header plus data bytes: from the expected ``dims`` when all are known,
    else from the file's own IDX header (only its first bytes are decompressed);
    ``None`` when that header cannot be read."""
    header_len = 4 + 4 * len(dims)
    if all(d is not None for d in dims):
        return header_len + math.prod(dims)
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            head = gz.read(header_len)
    except (OSError, EOFError, zlib.error):
        return None
    if len(head) < header_len or int.from_bytes(head[:4], "big") != magic:
        return None
    sizes = np.frombuffer(head, dtype=">u4", count=len(dims), offset=4)
    return header_len + math.prod(int(v) for v in sizes)


def _max_gzip_size(raw_bytes: int) -> int:
    """Largest gzip file of ``raw_bytes`` of content: deflate's stored blocks add
    5 bytes per 65,535, and the gzip header and trailer (with a file name) a few KiB."""
    return raw_bytes + 5 * (raw_bytes // 65_535 + 1) + 64 * 1024


def _gunzip(path: Path, compressed: bytes, declared: int) -> bytes:
    """Decompress at most ``declared + 1`` bytes (enough to see trailing data)
    so that a small file cannot expand without bound."""
    inflater = zlib.decompressobj(wbits=31)  # gzip header and CRC checked by zlib
    try:
        raw = inflater.decompress(compressed, declared + 1)
    except zlib.error as exc:
        raise DataError(f"{path} is not a valid gzip file (corrupt or truncated): {exc}") from exc
    if len(raw) > declared:
        return raw  # _parse_idx reports the trailing bytes
    if not inflater.eof:
        raise DataError(f"{path} is not a valid gzip file (corrupt or truncated): the stream ends early")
    if inflater.unused_data.strip(b"\0"):
        raise DataError(f"{path} is not a valid gzip file: data after the end of the gzip stream")
    return raw


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
        raise DataError(f"{path} has trailing bytes after the IDX data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(sizes).copy()
