"""Reading 8-bit PNG images with zlib and NumPy only (for ``npdpsnn predict``).

Supported: non-interlaced PNGs of bit depth 8, colour types 0 (grey), 2 (RGB),
4 (grey + alpha) and 6 (RGBA), with the five scanline filters of the PNG
specification (W3C PNG 2003, section 9).  Colour images are converted to grey
with the ITU-R BT.601 weights; alpha is dropped.  Anything else is a one-line
:class:`~npdpsnn.errors.DataError`.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from npdpsnn.errors import DataError
from npdpsnn.limits import MAX_DATA_FILE_BYTES

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_MAX_PIXELS = 1 << 26


def read_png(path: str | Path) -> np.ndarray:
    """The image as ``uint8`` ``(H, W)`` grey levels."""
    from npdpsnn.input_files import open_input_file

    p = Path(path)
    with open_input_file(p, max_bytes=MAX_DATA_FILE_BYTES, error=DataError, what="image") as f:
        data = f.read()
    if not data.startswith(_SIGNATURE):
        raise DataError(f"{p} is not a PNG file")
    try:
        return _decode(data)
    except (struct.error, zlib.error, ValueError, IndexError) as exc:
        raise DataError(f"{p}: corrupt PNG ({exc})") from None


def _decode(data: bytes) -> np.ndarray:
    pos, header, chunks = len(_SIGNATURE), None, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        raise ValueError(f"only 8-bit, non-interlaced grey/RGB(A) PNGs are read (depth {depth}, colour {colour})")
    if width * height > _MAX_PIXELS:
        raise ValueError(f"{width} x {height} pixels is too large")
    ch = _CHANNELS[colour]
    stride = width * ch
    raw = zlib.decompressobj().decompress(b"".join(chunks), height * (stride + 1))
    if len(raw) != height * (stride + 1):
        raise ValueError("truncated image data")
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int32)
    for y in range(height):
        _unfilter(int(rows[y, 0]), rows[y, 1:].astype(np.int32), out[y - 1] if y else np.zeros(stride, np.int32),
                  ch, out[y])
    img = out.reshape(height, width, ch).astype(np.float64)
    if ch >= 3:
        grey = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    else:
        grey = img[..., 0]
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def _unfilter(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int, out: np.ndarray) -> None:
    """Undo one scanline filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth) into ``out``."""
    if kind == 0:
        out[:] = line
    elif kind == 2:
        out[:] = (line + prev) & 0xFF
    elif kind in (1, 3, 4):
        for i in range(line.size):
            a = int(out[i - bpp]) if i >= bpp else 0
            b = int(prev[i])
            c = int(prev[i - bpp]) if i >= bpp else 0
            if kind == 1:
                pred = a
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (int(line[i]) + pred) & 0xFF
    else:
        raise ValueError(f"unknown PNG filter {kind}")
