"""Sealed HDF5 files: written in memory with a checksum, read without trusting them.

Checkpoints and released models are HDF5 files, and a file can be crafted:
HDF5 can store a dataset's bytes in *another* file (external storage), map it
onto datasets of other files (virtual datasets), or link to objects elsewhere
(external and soft links).  Followed blindly, a "model" could read any local
file -- or a FIFO, and hang -- and a declared shape of ``2**40`` could ask for
terabytes.  This module is the one way npdpsnn reads its HDF5 files:

* only a regular file within a size cap is opened (:mod:`npdpsnn.input_files`);
* every link is walked without being followed; only hard links (objects stored
  in this file) are accepted, at most :data:`~npdpsnn.limits.MAX_HDF5_OBJECTS`;
* every dataset is checked from its metadata before any read: contiguous,
  compact or chunked layout (not virtual), no external storage, no filters
  (npdpsnn writes none), a float32/float64 type, a declared size within the cap,
  and, when read, exactly the expected shape;
* root attributes must be scalar integers or *fixed-length* strings of at most
  :data:`~npdpsnn.limits.MAX_ATTR_BYTES`; JSON is parsed from them with that cap.
  Variable-length strings are refused: they live in HDF5's global heap, and
  reading a corrupt one can send the HDF5 library into an endless loop (found
  by flipping bits in checkpoints), which no timeout in Python can interrupt;
* the file carries a checksum (attribute ``checksum``, JSON): the SHA-256 of the
  root attributes and one SHA-256 per dataset, so silent bit flips are caught.
  The attribute digest and the list of datasets are verified on opening, each
  dataset's digest when it is read -- a reader that needs only the weights never
  reads the optimiser state;
* float values must stay finite after the conversion to the requested type
  (a float64 of 1e300 becomes inf as float32 and is refused).

Writing goes through :func:`hdf5_image`: the file is built in memory (h5py's
``core`` driver, no backing store) and sealed, and its bytes are returned for
ordinary Python I/O -- a full disk is then a plain ``OSError``, never an HDF5
library crash.  Files use the HDF5 1.8 format (readable by any h5py), whose
dense attribute storage holds string attributes above 64 KiB.  With h5py, the
string attributes read as ``bytes`` (``json.loads`` accepts them).

Checksum layout: ``attrs`` is the SHA-256 of the root attributes except
``checksum`` as compact JSON with sorted keys (integers as numbers, strings as
strings); ``datasets[path]`` is the SHA-256 of the JSON ``[path, dtype, shape]``
(little-endian dtype string, e.g. ``"<f4"``) followed by the array's bytes in
little-endian C order.  Every error is a one-line
:class:`~npdpsnn.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from npdpsnn.errors import CheckpointError, UserError
from npdpsnn.input_files import open_input_file
from npdpsnn.limits import MAX_ATTR_BYTES, MAX_ATTRS, MAX_CHECKPOINT_BYTES, MAX_HDF5_OBJECTS

__all__ = ["CHECKSUM_ATTR", "SafeHdf5", "hdf5_image", "open_hdf5", "read_format", "seal"]

#: Root attribute holding the checksum JSON.
CHECKSUM_ATTR = "checksum"
_ALGORITHM = "sha256"
_STORED_LAYOUTS = frozenset({h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT, h5py.h5d.CHUNKED})  # data inside the file
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OverflowError, AttributeError)
_MEMORY_NAME = "npdpsnn-in-memory.h5"  # never created: the core driver keeps the file in memory
_LIBVER = ("v108", "v108")  # HDF5 1.8 file format: dense storage for large attributes, readable everywhere


class SafeHdf5:
    """An open, checked HDF5 file (see the module docstring); made by :func:`open_hdf5`.

    ``attrs`` holds the root attributes (``str`` or ``int``), already verified
    against the checksum; ``datasets`` maps each dataset's path to its shape.
    """

    def __init__(self, path: Path, f: h5py.File, max_bytes: int):
        self.path = path
        self._datasets = _walk(f, path, max_bytes)
        self.attrs = _read_attrs(f, path)
        self.datasets = {name: tuple(d.shape) for name, d in self._datasets.items()}
        self._digests: dict[str, str] = {}

    def _verify_checksum(self) -> None:
        p = self.path
        manifest = self.json(CHECKSUM_ATTR, dict)
        if manifest.get("algorithm") != _ALGORITHM or not isinstance(manifest.get("datasets"), dict):
            raise CheckpointError(f"{p}: malformed checksum attribute")
        if manifest.get("attrs") != _attrs_digest(self.attrs):
            raise CheckpointError(f"{p}: checksum mismatch in the attributes (the file is corrupt or was edited)")
        listed = manifest["datasets"]
        if set(listed) != set(self._datasets) or not all(isinstance(v, str) for v in listed.values()):
            raise CheckpointError(f"{p}: the datasets do not match the checksum's list (the file is corrupt or "
                                  "was edited)")
        self._digests = listed

    # ---------------------------------------------------------------- attributes
    def text(self, key: str) -> str:
        """The string attribute ``key``."""
        value = self._attr(key)
        if not isinstance(value, str):
            raise CheckpointError(f"{self.path}: attribute {key!r} is not a string")
        return value

    def integer(self, key: str) -> int:
        """The integer attribute ``key``."""
        value = self._attr(key)
        if not isinstance(value, int):
            raise CheckpointError(f"{self.path}: attribute {key!r} is not an integer")
        return value

    def json(self, key: str, kind: type | tuple[type, ...]) -> Any:
        """The JSON in string attribute ``key``; its top level must be of ``kind``."""
        text = self.text(key)
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise CheckpointError(f"{self.path}: attribute {key!r} is not valid JSON") from None
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise CheckpointError(f"{self.path}: attribute {key!r} is not a JSON {names}")
        return value

    def _attr(self, key: str) -> str | int:
        if key not in self.attrs:
            raise CheckpointError(f"{self.path} lacks attribute {key!r}")
        return self.attrs[key]

    # ---------------------------------------------------------------- datasets
    def read(self, name: str, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
        """Dataset ``name`` as a finite ``dtype`` array of exactly ``shape``.

        The shape is checked from the metadata before anything is read; the
        bytes read are checked against the checksum."""
        p = self.path
        dset = self._datasets.get(name)
        if dset is None:
            raise CheckpointError(f"{p} lacks dataset {name!r}")
        shape = tuple(int(s) for s in shape)
        if tuple(dset.shape) != shape:
            raise CheckpointError(f"{p}: dataset {name!r} has shape {tuple(dset.shape)}, expected {shape}")
        raw = np.empty(shape, dset.dtype)
        if raw.size:
            dset.read_direct(raw)
        if self._digests.get(name) != _array_digest(name, raw):
            raise CheckpointError(f"{p}: checksum mismatch in dataset {name!r} (the file is corrupt or was edited)")
        with np.errstate(over="ignore", invalid="ignore"):
            out = raw.astype(dtype)
        if not np.all(np.isfinite(out)):
            raise CheckpointError(f"{p}: dataset {name!r} contains NaN or infinity (as {np.dtype(dtype).name})")
        return out


@contextmanager
def open_hdf5(path: str | os.PathLike, *, formats: Collection[str], version: int,
              max_bytes: int = MAX_CHECKPOINT_BYTES, kind: str = "checkpoint") -> Iterator[SafeHdf5]:
    """Open a sealed npdpsnn HDF5 file for reading and check it (module docstring).

    Its ``format`` attribute must be one of ``formats`` and its
    ``format_version`` equal ``version``; ``kind`` names the file in messages.
    Any defect -- including one raised by the body of the ``with`` block as a
    :class:`ValueError` or h5py error -- becomes a :class:`CheckpointError`
    naming the file.
    """
    p = Path(path)
    with open_input_file(p, max_bytes=max_bytes, error=CheckpointError, what=kind) as fobj:
        try:
            with h5py.File(fobj, "r") as f:
                h = SafeHdf5(p, f, max_bytes)
                _check_format(h, formats, version, kind)
                h._verify_checksum()
                yield h
        except CheckpointError:
            raise
        except UserError as exc:
            raise CheckpointError(f"{p}: {exc}") from None
        except _H5_ERRORS as exc:
            raise CheckpointError(f"cannot read {kind} {p}: {_first_line(exc)}") from None


def read_format(path: str | os.PathLike, max_bytes: int = MAX_CHECKPOINT_BYTES) -> str | None:
    """The ``format`` attribute of the HDF5 file at ``path`` (``None`` when it has
    none), read with the same care as :func:`open_hdf5` but without verifying
    the rest of the file."""
    p = Path(path)
    with open_input_file(p, max_bytes=max_bytes, error=CheckpointError, what="model or checkpoint") as fobj:
        try:
            with h5py.File(fobj, "r") as f:
                if "format" not in f.attrs:
                    return None
                value = _read_attr(f, "format", p)
        except CheckpointError:
            raise
        except _H5_ERRORS as exc:
            raise CheckpointError(f"cannot read {p}: {_first_line(exc)}") from None
    return value if isinstance(value, str) else None


def hdf5_image(build: Callable[[h5py.File], None]) -> bytes:
    """The bytes of a sealed HDF5 file built in memory by ``build(f)``.

    ``build`` writes root attributes (strings or integers) and float datasets
    with default (contiguous, unfiltered) storage; :func:`seal` then adds the
    checksum.  Nothing touches the disk."""
    with h5py.File(_MEMORY_NAME, "w", driver="core", backing_store=False, libver=_LIBVER) as f:
        build(f)
        seal(f)
        f.flush()
        return bytes(f.id.get_file_image())


def seal(f: h5py.File) -> None:
    """Write the checksum attribute of the open, writable file ``f`` (after
    every other attribute and dataset is in place).  String attributes are
    first rewritten as fixed-length UTF-8 strings (h5py writes ``str`` as
    variable-length ones, which readers refuse).  Tests that edit a file on
    purpose call it to re-seal the file."""
    path = Path(f.filename)
    datasets = _walk(f, path, MAX_CHECKPOINT_BYTES)
    if CHECKSUM_ATTR in f.attrs:
        del f.attrs[CHECKSUM_ATTR]
    for name in list(f.attrs):
        _fix_string_length(f, name)
    manifest = {
        "algorithm": _ALGORITHM,
        "attrs": _attrs_digest(_read_attrs(f, path)),
        "datasets": {name: _array_digest(name, d[()]) for name, d in sorted(datasets.items())},
    }
    _put_text(f, CHECKSUM_ATTR, json.dumps(manifest, sort_keys=True))


def _fix_string_length(f: h5py.File, name: str) -> None:
    info = h5py.check_string_dtype(h5py.h5a.open(f.id, name.encode()).dtype)
    if info is not None and info.length is None:
        value = f.attrs[name]
        del f.attrs[name]
        _put_text(f, name, value.decode("utf-8") if isinstance(value, bytes) else str(value))


def _put_text(f: h5py.File, name: str, text: str) -> None:
    data = text.encode("utf-8")
    f.attrs.create(name, np.bytes_(data), dtype=h5py.string_dtype("utf-8", max(1, len(data))))


# -------------------------------------------------------------------- helpers
def _check_format(h: SafeHdf5, formats: Collection[str], version: int, kind: str) -> None:
    if h.attrs.get("format") not in formats:
        raise CheckpointError(f"{h.path} is not an npdpsnn {kind}")
    found = h.attrs.get("format_version")
    if found != version:
        raise CheckpointError(f"{h.path} has file format version {found}; this npdpsnn reads version {version} "
                              f"only (retrain, or use the npdpsnn release that wrote it)")


def _walk(f: h5py.File, path: Path, max_bytes: int) -> dict[str, h5py.Dataset]:
    """Every dataset of ``f`` by path, after checking every link and dataset."""
    datasets: dict[str, h5py.Dataset] = {}
    stack: list[tuple[str, h5py.Group]] = [("", f)]
    count = 0
    while stack:
        prefix, group = stack.pop()
        for name in group:
            full = prefix + name
            count += 1
            if count > MAX_HDF5_OBJECTS:
                raise CheckpointError(f"{path} holds more than {MAX_HDF5_OBJECTS} objects")
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise CheckpointError(f"{path}: {full!r} is a {type(link).__name__}; only objects stored in "
                                      "the file are read")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((full + "/", obj))
            elif isinstance(obj, h5py.Dataset):
                _check_dataset(obj, full, path, max_bytes)
                datasets[full] = obj
            else:
                raise CheckpointError(f"{path}: {full!r} is neither a group nor a dataset")
    return datasets


def _check_dataset(dset: h5py.Dataset, name: str, path: Path, max_bytes: int) -> None:
    """Metadata checks: stored in this file, unfiltered, float, of bounded size."""
    plist = dset.id.get_create_plist()
    layout = plist.get_layout()
    if layout not in _STORED_LAYOUTS:
        what = "a virtual dataset" if layout == h5py.h5d.VIRTUAL else f"of unknown layout {layout}"
        raise CheckpointError(f"{path}: dataset {name!r} is {what}; only data stored in the file is read")
    if plist.get_external_count() > 0:
        raise CheckpointError(f"{path}: dataset {name!r} is stored in an external file; only data stored in "
                              "the file is read")
    if plist.get_nfilters() > 0:
        raise CheckpointError(f"{path}: dataset {name!r} uses HDF5 filters (compression); npdpsnn writes none")
    dtype = dset.dtype
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise CheckpointError(f"{path}: dataset {name!r} has type {dtype}, not float32 or float64")
    if dset.shape is None:
        raise CheckpointError(f"{path}: dataset {name!r} has no shape")
    nbytes = math.prod(dset.shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise CheckpointError(f"{path}: dataset {name!r} declares shape {dset.shape} ({nbytes:,} bytes), more "
                              f"than the limit of {max_bytes:,}")
    if layout != h5py.h5d.CHUNKED and dset.id.get_storage_size() != nbytes:
        raise CheckpointError(f"{path}: dataset {name!r} stores {dset.id.get_storage_size():,} of its "
                              f"{nbytes:,} bytes")


def _read_attrs(f: h5py.File, path: Path) -> dict[str, str | int]:
    names = list(f.attrs)
    if len(names) > MAX_ATTRS:
        raise CheckpointError(f"{path} has {len(names)} attributes, more than the limit of {MAX_ATTRS}")
    return {name: _read_attr(f, name, path) for name in names}


def _read_attr(f: h5py.File, name: str, path: Path) -> str | int:
    """A scalar integer or fixed-length string attribute, its size checked before reading."""
    aid = h5py.h5a.open(f.id, name.encode())
    dtype = aid.dtype
    if aid.shape != ():
        raise CheckpointError(f"{path}: attribute {name!r} is not a single value")
    string = h5py.check_string_dtype(dtype)
    if string is not None:
        if string.length is None:
            raise CheckpointError(f"{path}: attribute {name!r} is a variable-length string; npdpsnn writes "
                                  "fixed-length strings only")
        if string.length > MAX_ATTR_BYTES:
            raise CheckpointError(f"{path}: attribute {name!r} is {string.length:,} bytes long, more than the "
                                  f"limit of {MAX_ATTR_BYTES:,}")
        value = f.attrs[name]
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    if dtype.kind in "iu" and dtype.itemsize <= 8:
        return int(f.attrs[name])
    raise CheckpointError(f"{path}: attribute {name!r} has type {dtype}, not a string or an integer")


def _attrs_digest(attrs: dict[str, str | int]) -> str:
    payload = {k: v for k, v in attrs.items() if k != CHECKSUM_ATTR}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _array_digest(name: str, arr: np.ndarray) -> str:
    le = arr.dtype.newbyteorder("<")
    digest = hashlib.sha256(json.dumps([name, le.str, list(arr.shape)]).encode("utf-8"))
    digest.update(memoryview(np.ascontiguousarray(arr, dtype=le)).cast("B"))
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
