"""Datasets: MNIST, Fashion-MNIST and Extended Yale B (uint8 images that read as normalised float32).

>>> from npdpsnn.data import load_dataset
>>> ds = load_dataset("mnist")            # doctest: +SKIP
>>> ds.train_x.shape, ds.train_x.dtype    # doctest: +SKIP
((60000, 1, 28, 28), dtype('float32'))

Modules: :mod:`.registry` (names, files, checksums, mirrors, constants),
:mod:`.paths` (data directory), :mod:`.idx` (IDX reader), :mod:`.pgm` (PGM
reader), :mod:`.resize` (area averaging), :mod:`.yaleb` (Yale B sources),
:mod:`.split` (seeded per-class split), :mod:`.normalization`,
:mod:`.download` (mirror downloader), :mod:`.dataset` (:func:`load_dataset`).
See ``docs/data.md``.
"""

from __future__ import annotations

from npdpsnn.data.dataset import Dataset, load_dataset
from npdpsnn.data.normalization import normalize
from npdpsnn.data.paths import resolve_data_dir
from npdpsnn.data.registry import DATASETS

__all__ = ["DATASETS", "Dataset", "load_dataset", "normalize", "resolve_data_dir"]
