"""Reading binary 8-bit PGM (``P5``) images with NumPy only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npdpsnn.errors import DataError
from npdpsnn.input_files import file_size, open_input_file
from npdpsnn.limits import MAX_DATA_FILE_BYTES, MAX_DATA_RAW_BYTES

__all__ = ["read_pgm"]

_WHITESPACE = b" \t\n\r\v\f"
#: The header (with its comments) must fit in the file's first bytes.
_HEADER_MAX = 64 * 1024


def read_pgm(path: str | Path) -> np.ndarray:
    """Read a binary PGM (``P5``, maxval <= 255) into a ``uint8`` array ``(height, width)``.

    Header comments (``# ...``) are allowed.  The pixel data must be exactly
    ``width * height`` bytes; anything else raises :class:`DataError`.  The
    file's size is checked against its header before the pixels are read.
    """
    path = Path(path)
    with open_input_file(path, max_bytes=MAX_DATA_FILE_BYTES, error=DataError, what="data file") as f:
        try:
            head = f.read(_HEADER_MAX)
            width, height, start = _parse_header(path, head, complete=len(head) < _HEADER_MAX)
            _check_pixel_count(path, width, height, file_size(f) - start)
            f.seek(start)
            pixels = f.read()
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    _check_pixel_count(path, width, height, len(pixels))
    return np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)


def _parse_header(path: Path, data: bytes, complete: bool) -> tuple[int, int, int]:
    """Width, height and the offset of the first pixel; ``complete`` says that
    ``data`` is the whole file (else it is its first :data:`_HEADER_MAX` bytes)."""
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        pos = _skip_space_and_comments(data, pos)
        start = pos
        while pos < len(data) and data[pos] not in _WHITESPACE and data[pos] != ord("#"):
            pos += 1
        if pos == start or (pos == len(data) and not complete):
            raise DataError(f"{path}: truncated or malformed PGM header")
        tokens.append(data[start:pos])
    if tokens[0] != b"P5":
        raise DataError(f"{path}: not a binary PGM (magic {tokens[0][:8]!r}, expected b'P5')")
    try:
        width, height, maxval = (int(t) for t in tokens[1:])
    except ValueError as exc:
        raise DataError(f"{path}: malformed PGM header {tokens!r}") from exc
    if width <= 0 or height <= 0 or not 0 < maxval <= 255 or width * height > MAX_DATA_RAW_BYTES:
        raise DataError(f"{path}: unsupported PGM size {width}x{height} maxval {maxval}")
    if pos >= len(data) or data[pos] not in _WHITESPACE:
        raise DataError(f"{path}: truncated PGM header")
    return width, height, pos + 1  # exactly one whitespace byte separates the header from the pixels


def _check_pixel_count(path: Path, width: int, height: int, got: int) -> None:
    expected = width * height
    if got != expected:
        state = "truncated" if got < expected else "has trailing bytes"
        raise DataError(f"{path}: PGM {state}: {got} pixel bytes, expected {expected}")


def _skip_space_and_comments(data: bytes, pos: int) -> int:
    while pos < len(data):
        if data[pos] in _WHITESPACE:
            pos += 1
        elif data[pos] == ord("#"):
            end = data.find(b"\n", pos)
            pos = len(data) if end < 0 else end + 1
        else:
            break
    return pos
