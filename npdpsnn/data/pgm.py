"""Reading binary 8-bit PGM (``P5``) images with NumPy only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npdpsnn.errors import DataError

__all__ = ["read_pgm"]

_WHITESPACE = b" \t\n\r\v\f"


def read_pgm(path: str | Path) -> np.ndarray:
    """Read a binary PGM (``P5``, maxval <= 255) into a ``uint8`` array ``(height, width)``.

    Header comments (``# ...``) are allowed.  The pixel data must be exactly
    ``width * height`` bytes; anything else raises :class:`DataError`.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _parse_pgm(path, data)


def _parse_pgm(path: Path, data: bytes) -> np.ndarray:
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        pos = _skip_space_and_comments(data, pos)
        start = pos
        while pos < len(data) and data[pos] not in _WHITESPACE and data[pos] != ord("#"):
            pos += 1
        if pos == start:
            raise DataError(f"{path}: truncated or malformed PGM header")
        tokens.append(data[start:pos])
    if tokens[0] != b"P5":
        raise DataError(f"{path}: not a binary PGM (magic {tokens[0][:8]!r}, expected b'P5')")
    try:
        width, height, maxval = (int(t) for t in tokens[1:])
    except ValueError as exc:
        raise DataError(f"{path}: malformed PGM header {tokens!r}") from exc
    if width <= 0 or height <= 0 or not 0 < maxval <= 255:
        raise DataError(f"{path}: unsupported PGM size {width}x{height} maxval {maxval}")
    if pos >= len(data) or data[pos] not in _WHITESPACE:
        raise DataError(f"{path}: truncated PGM header")
    pos += 1  # exactly one whitespace byte separates the header from the pixels
    expected = width * height
    got = len(data) - pos
    if got != expected:
        state = "truncated" if got < expected else "has trailing bytes"
        raise DataError(f"{path}: PGM {state}: {got} pixel bytes, expected {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=pos).reshape(height, width)


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
