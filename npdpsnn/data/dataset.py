"""The :class:`Dataset` container and :func:`load_dataset`, the single entry point."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npdpsnn.errors import DataError
from npdpsnn.data.download import download_missing
from npdpsnn.data.idx import read_idx_images, read_idx_labels
from npdpsnn.data.normalization import NormalizedImages, pixel_stats
from npdpsnn.data.paths import is_user_named, resolve_data_dir
from npdpsnn.data.registry import (
    DATASETS,
    IDX_DATASETS,
    YALEB_NUM_SUBJECTS,
    YALEB_TEST_FRACTION,
    IdxDatasetSpec,
)
from npdpsnn.data.split import per_class_split
from npdpsnn.data.yaleb import find_yaleb_source, load_yaleb_mat, load_yaleb_pgm

__all__ = ["Dataset", "load_dataset"]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A loaded, normalised dataset.

    Attributes:
        name: one of :data:`DATASETS`.
        train_x, test_x: :class:`NormalizedImages` ``(N, 1, H, W)``: uint8
            storage that reads as float32 normalised with :func:`normalize` and
            :attr:`normalization` (``x[idx]`` and ``np.asarray(x)`` give float32).
        train_y, test_y: ``int64`` labels ``(N,)`` in ``0 .. num_classes-1``.
        num_classes: number of classes.
        input_shape: ``(1, H, W)``.
        normalization: ``{"mean": float, "std": float}`` of ``pixel/255``.
        source: which files the data came from.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    input_shape: tuple[int, int, int]
    normalization: dict[str, float]
    source: str

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.train_y)}, test={len(self.test_y)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"normalization={self.normalization}, source={self.source!r})"
        )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    seed: int = 0,
) -> Dataset:
    """Load dataset ``name`` from the data directory.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"`` or ``"yaleb"`` (case-insensitive).
        data_dir: data directory; ``None`` means :func:`resolve_data_dir` decides
            (``NPDPSNN_DATA``, else the per-user cache).  A folder named here or
            in ``NPDPSNN_DATA`` must exist (only the cache is created).
        download: fetch missing MNIST / Fashion-MNIST files from the mirror.
            Yale B is never downloaded.
        seed: seed of the Yale B per-subject train/test split (ignored for the
            IDX datasets, which have fixed splits).

    Raises:
        DataError: unknown name, missing / corrupt / mismatching files, or a
            failed download; the message names the file.
    """
    key = _dataset_key(name)
    if not isinstance(download, bool):
        raise DataError(f"download must be True or False, got {download!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative int, got {seed!r}")
    root = resolve_data_dir(data_dir)
    try:
        exists = root.exists()
    except OSError as exc:  # e.g. a name too long
        raise DataError(f"cannot use data directory {root}: {exc.strerror or exc}") from None
    if exists and not root.is_dir():
        raise DataError(f"data directory {root} is not a directory")
    if not exists and is_user_named(data_dir):
        raise DataError(f"no data in {root}: the folder does not exist")
    if key in IDX_DATASETS:
        return _load_idx_dataset(IDX_DATASETS[key], root, download)
    return _load_yaleb(root, int(seed))


def _dataset_key(name: object) -> str:
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return key


def _load_idx_dataset(spec: IdxDatasetSpec, root: Path, download: bool) -> Dataset:
    directory = root / spec.dirname
    missing = [f for f in spec.files if not (directory / f.filename).is_file()]
    if missing and not download:
        names = ", ".join(f.filename for f in missing)
        raise DataError(
            f"{spec.name}: missing {names} in {directory} (data dir {root}); "
            f"put the original files there or allow downloading"
        )
    if missing:
        download_missing(spec.name, directory, missing)
    train_x = _read_images(spec, directory, train=True)
    train_y = _read_labels(spec, directory, train=True)
    test_x = _read_images(spec, directory, train=False)
    test_y = _read_labels(spec, directory, train=False)
    for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "test")):
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{spec.name} {split}: {images.shape[0]} images but {labels.shape[0]} labels "
                f"in {directory}"
            )
    norm = {"mean": spec.mean, "std": spec.std}
    return _make(
        spec.name, train_x, train_y, test_x, test_y, spec.num_classes, norm,
        source=", ".join(str(directory / f.filename) for f in spec.files),
    )


def _read_images(spec: IdxDatasetSpec, directory: Path, *, train: bool) -> np.ndarray:
    f = spec.train_images if train else spec.test_images
    return read_idx_images(
        directory / f.filename, count=f.count, image_shape=spec.image_shape, sha256=f.sha256
    )


def _read_labels(spec: IdxDatasetSpec, directory: Path, *, train: bool) -> np.ndarray:
    f = spec.train_labels if train else spec.test_labels
    return read_idx_labels(
        directory / f.filename, count=f.count, num_classes=spec.num_classes, sha256=f.sha256
    )


def _load_yaleb(root: Path, seed: int) -> Dataset:
    source = find_yaleb_source(root)
    if source.is_file():
        images, labels = load_yaleb_mat(source)
        what = f"{source} (32x32 .mat)"
    else:
        images, labels = load_yaleb_pgm(source)
        what = f"{source} ({len(labels)} PGM images, area-averaged to 32x32)"
    train_idx, test_idx = per_class_split(labels, YALEB_TEST_FRACTION, seed)
    norm = pixel_stats(images[train_idx])
    return _make(
        "yaleb", images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
        YALEB_NUM_SUBJECTS, norm, source=f"{what}, split seed {seed}",
    )


def _make(
    name: str,
    train_u8: np.ndarray,
    train_y: np.ndarray,
    test_u8: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    norm: dict[str, float],
    *,
    source: str,
) -> Dataset:
    height, width = train_u8.shape[1:]
    return Dataset(
        name=name,
        train_x=NormalizedImages(train_u8[:, None, :, :], norm),
        train_y=np.ascontiguousarray(train_y, dtype=np.int64),
        test_x=NormalizedImages(test_u8[:, None, :, :], norm),
        test_y=np.ascontiguousarray(test_y, dtype=np.int64),
        num_classes=num_classes,
        input_shape=(1, int(height), int(width)),
        normalization=dict(norm),
        source=source,
    )
