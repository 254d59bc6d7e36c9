"""Extended Yale B: 38 subjects, 32x32 grey faces, from local files only.

Two sources are accepted inside ``<data dir>/yaleb/``, tried in this order:

1. ``YaleB_32x32.mat`` (Deng Cai's version): ``fea`` is ``N x 1024`` with each
   row a 32x32 image stored column-major (so ``row.reshape(32, 32).T``), and
   ``gnd`` holds labels 1..38, mapped here to 0..37.
2. ``CroppedYale/yaleBxx/*.pgm`` (the official cropped images, 168 wide x 192
   high): subject folders ``yaleB01`` .. ``yaleB39`` (no 14) in sorted order get
   labels 0..37; within a folder, files in sorted name order.  ``*.pgm.bad``,
   ``*_Ambient.pgm`` and non-``.pgm`` files are skipped.  Each image is
   downscaled 192x168 -> 32x32 by exact area averaging (:func:`.resize.area_resize`:
   6x6 pixel blocks vertically, 5.25-pixel fractional blocks horizontally),
   rounded to uint8.

Yale B is never downloaded (its terms forbid redistribution).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from npdpsnn.errors import DataError
from npdpsnn.input_files import file_size, open_input_file
from npdpsnn.limits import MAX_DATA_FILE_BYTES, MAX_DATA_RAW_BYTES
from npdpsnn.data.pgm import read_pgm
from npdpsnn.data.registry import (
    YALEB_DIRNAME,
    YALEB_IMAGE_SIZE,
    YALEB_MAT_NAME,
    YALEB_NUM_SUBJECTS,
    YALEB_PGM_DIRNAME,
)
from npdpsnn.data.resize import area_resize

__all__ = ["find_yaleb_source", "load_yaleb_mat", "load_yaleb_pgm", "CROPPED_SHAPE"]

#: (height, width) of the CroppedYale PGM images.
CROPPED_SHAPE = (192, 168)

_SUBJECT_DIR = re.compile(r"^yaleB[0-9]+$")
#: Bytes per element of MATLAB classes as ``scipy.io.whosmat`` names them (others: 8).
_MAT_ITEMSIZE = {"int8": 1, "uint8": 1, "logical": 1, "char": 2, "int16": 2, "uint16": 2,
                 "int32": 4, "uint32": 4, "single": 4, "double": 8, "int64": 8, "uint64": 8}


def find_yaleb_source(data_dir: str | Path) -> Path:
    """Return ``yaleb/YaleB_32x32.mat`` if it exists, else ``yaleb/CroppedYale/``.

    Raises :class:`DataError` saying where to put which files when neither exists.
    """
    base = Path(data_dir) / YALEB_DIRNAME
    mat = base / YALEB_MAT_NAME
    pgm_root = base / YALEB_PGM_DIRNAME
    if mat.is_file():
        return mat
    if pgm_root.is_dir():
        return pgm_root
    raise DataError(
        f"Extended Yale B not found in {base} (it is never downloaded): put Deng Cai's "
        f"{YALEB_MAT_NAME} at {mat}, or the unpacked official CroppedYale folder "
        f"(yaleB01 .. yaleB39 with their .pgm files) at {pgm_root}"
    )


def load_yaleb_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load ``YaleB_32x32.mat``: ``uint8`` images ``(N, 32, 32)`` and ``int64`` labels 0..37."""
    path = Path(path)
    fea, gnd = _read_mat(path)
    return _mat_to_arrays(path, fea, gnd)


def load_yaleb_pgm(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load ``CroppedYale/``: ``uint8`` images ``(N, 32, 32)`` and ``int64`` labels 0..37."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory")
    subjects = sorted(p for p in root.iterdir() if p.is_dir() and _SUBJECT_DIR.match(p.name))
    if len(subjects) != YALEB_NUM_SUBJECTS:
        raise DataError(
            f"{root}: found {len(subjects)} subject folders yaleBxx, "
            f"expected {YALEB_NUM_SUBJECTS}"
        )
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, subject in enumerate(subjects):
        files = _subject_images(subject)
        if not files:
            raise DataError(f"{subject}: no usable .pgm images")
        for file in files:
            images.append(_downscale(file, read_pgm(file)))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _subject_images(subject: Path) -> list[Path]:
    return sorted(
        p
        for p in subject.iterdir()
        if p.suffix == ".pgm" and "Ambient" not in p.name and p.is_file()
    )


def _downscale(path: Path, image: np.ndarray) -> np.ndarray:
    if image.shape != CROPPED_SHAPE:
        raise DataError(
            f"{path}: image is {image.shape[1]}x{image.shape[0]}, expected "
            f"{CROPPED_SHAPE[1]}x{CROPPED_SHAPE[0]} (width x height)"
        )
    return area_resize(image, YALEB_IMAGE_SIZE)


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``fea`` and ``gnd`` of a MATLAB file, after checking from the variables'
    headers that they fit the limits and that the file is not far larger than
    they need; any decoding error (corrupt zlib stream, bad header) is a
    one-line :class:`DataError`."""
    with open_input_file(path, max_bytes=MAX_DATA_FILE_BYTES, error=DataError, what="data file") as f:
        variables = _mat_call(path, "whosmat", f)
        declared = sum(math.prod(shape) * _MAT_ITEMSIZE.get(cls, 8) for _, shape, cls in variables)
        if declared > MAX_DATA_RAW_BYTES:
            raise DataError(f"{path} declares {declared:,} bytes of variables, more than the limit of "
                            f"{MAX_DATA_RAW_BYTES:,}")
        size = file_size(f)
        if size > declared + declared // 100 + 64 * 1024 + 256 * len(variables):
            raise DataError(f"{path} is {size:,} bytes, far more than the {declared:,} bytes of variables it declares")
        missing = [key for key in ("fea", "gnd") if key not in {name for name, _, _ in variables}]
        if missing:
            raise DataError(f"{path}: variables {missing} missing (expected 'fea' and 'gnd')")
        f.seek(0)
        contents = _mat_call(path, "loadmat", f, variable_names=["fea", "gnd"])
    return np.asarray(contents["fea"]), np.asarray(contents["gnd"])


def _mat_call(path: Path, name: str, f, **kwargs):
    """``scipy.io.<name>(f, **kwargs)``; any decoding error becomes a :class:`DataError`."""
    import scipy.io

    try:
        return getattr(scipy.io, name)(f, **kwargs)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types (zlib.error, MatReadError, ...)
        text = str(exc).strip()
        detail = text.splitlines()[0] if text else type(exc).__name__
        raise DataError(f"cannot read {path} as a MATLAB file (corrupt, truncated or not MATLAB 5): {detail}") \
            from None


def _mat_to_arrays(path: Path, fea: np.ndarray, gnd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = YALEB_IMAGE_SIZE
    if fea.ndim != 2 or fea.shape[1] != height * width:
        raise DataError(f"{path}: 'fea' has shape {fea.shape}, expected (N, {height * width})")
    gnd = gnd.reshape(-1)
    if gnd.shape[0] != fea.shape[0]:
        raise DataError(f"{path}: {fea.shape[0]} images but {gnd.shape[0]} labels")
    pixels = _as_uint8_pixels(path, fea)
    labels = gnd.astype(np.int64) - 1
    if not np.array_equal(np.unique(labels), np.arange(YALEB_NUM_SUBJECTS)):
        raise DataError(f"{path}: 'gnd' must hold every label 1..{YALEB_NUM_SUBJECTS}")
    # MATLAB stores each 32x32 image column-major: reshape row-major, then transpose.
    images = pixels.reshape(-1, width, height).transpose(0, 2, 1)
    return np.ascontiguousarray(images), labels


def _as_uint8_pixels(path: Path, fea: np.ndarray) -> np.ndarray:
    if fea.dtype == np.uint8:
        return fea
    if np.issubdtype(fea.dtype, np.number):
        values = fea.astype(np.float64)
        if np.all((values >= 0) & (values <= 255) & (values == np.round(values))):
            return values.astype(np.uint8)
    raise DataError(f"{path}: 'fea' must hold integer pixels 0..255, got dtype {fea.dtype}")
