"""Tests for npdpsnn.data: IDX/PGM parsing, Yale B, splits, normalisation, paths."""

from __future__ import annotations

import functools
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from npdpsnn.data import DATASETS, Dataset, load_dataset, normalize, resolve_data_dir
from npdpsnn.data.idx import read_idx_images, read_idx_labels
from npdpsnn.data.pgm import read_pgm
from npdpsnn.data.resize import area_resize, area_weights
from npdpsnn.data.split import per_class_split, holdout_count
from npdpsnn.data.yaleb import load_yaleb_mat, load_yaleb_pgm
from npdpsnn.errors import DataError, UserError
from test_hostile_files import within_seconds

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


# --------------------------------------------------------------------------- IDX datasets


@pytest.fixture(scope="module")
def mnist(shared_data_dir: Path) -> Dataset:
    return load_dataset("mnist", shared_data_dir, download=False)


def _check_idx_dataset(ds: Dataset, name: str) -> None:
    assert ds.name == name
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_x.dtype == np.float32 and ds.test_x.dtype == np.float32
    assert ds.train_y.shape == (60000,) and ds.test_y.shape == (10000,)
    assert ds.train_y.dtype == np.int64 and ds.test_y.dtype == np.int64
    assert ds.num_classes == 10 and ds.input_shape == (1, 28, 28)
    assert set(np.unique(ds.train_y)) == set(range(10)) == set(np.unique(ds.test_y))
    assert abs(float(np.asarray(ds.train_x).mean())) < 0.01
    assert abs(float(np.asarray(ds.train_x).std()) - 1.0) < 0.01
    assert "train-images-idx3-ubyte.gz" in ds.source


def test_mnist_loads(mnist: Dataset) -> None:
    _check_idx_dataset(mnist, "mnist")
    assert mnist.normalization == {"mean": 0.1307, "std": 0.3081}
    assert np.bincount(mnist.train_y).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]
    assert np.bincount(mnist.test_y).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009
    ]


def test_fashion_mnist_loads(shared_data_dir: Path) -> None:
    ds = load_dataset("Fashion-MNIST", shared_data_dir, download=False)
    _check_idx_dataset(ds, "fashion-mnist")
    assert ds.normalization == {"mean": 0.2860, "std": 0.3530}
    assert np.bincount(ds.train_y).tolist() == [6000] * 10
    assert np.bincount(ds.test_y).tolist() == [1000] * 10


def test_normalize_reused_for_eval_is_identical(mnist: Dataset, shared_data_dir: Path) -> None:
    raw = read_idx_images(shared_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    assert raw.dtype == np.uint8 and raw.shape == (10000, 28, 28)
    np.testing.assert_array_equal(normalize(raw, mnist.normalization), mnist.test_x[:, 0])
    expected = (raw[:5].astype(np.float64) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(mnist.test_x[:5, 0], expected, rtol=1e-5, atol=1e-5)


def test_normalize_validates() -> None:
    with pytest.raises(UserError, match="uint8"):
        normalize(np.zeros((2, 2), np.float32), {"mean": 0.0, "std": 1.0})
    with pytest.raises(UserError, match="std"):
        normalize(np.zeros((2, 2), np.uint8), {"mean": 0.0, "std": 0.0})
    with pytest.raises(UserError, match="mean"):
        normalize(np.zeros((2, 2), np.uint8), {"std": 1.0})


def test_unknown_dataset_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="mnist, fashion-mnist, yaleb"):
        load_dataset("cifar10", tmp_path)
    assert DATASETS == ("mnist", "fashion-mnist", "yaleb")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="seed"):
        load_dataset("yaleb", tmp_path, seed=-1)
    with pytest.raises(DataError, match="download"):
        load_dataset("mnist", tmp_path, download="no")  # type: ignore[arg-type]
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_dataset("mnist", not_a_dir)


def test_missing_without_download_names_file_and_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("mnist", tmp_path, download=False)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path) in msg
    assert not (tmp_path / "mnist").exists()


# --------------------------------------------------------------------------- corrupt files


@pytest.fixture()
def mnist_copy(shared_data_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the small MNIST files (train images symlinked)."""
    dest = tmp_path / "data" / "mnist"
    dest.mkdir(parents=True)
    for name in MNIST_FILES:
        src = shared_data_dir / "mnist" / name
        if name.startswith("train-images"):
            (dest / name).symlink_to(src)
        else:
            shutil.copyfile(src, dest / name)
    return dest


def test_truncated_gz_fails_checksum(mnist_copy: Path) -> None:
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"checksum mismatch for {path}: expected"):
        load_dataset("mnist", mnist_copy.parent, download=True)


def test_flipped_byte_fails_checksum(mnist_copy: Path) -> None:
    path = mnist_copy / "t10k-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum mismatch for .*t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", mnist_copy.parent)


def _idx_gz(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(gzip.compress(header + payload))
    return path


def test_idx_wrong_magic(tmp_path: Path) -> None:
    path = _idx_gz(tmp_path / "labels.gz", 2051, (3,), bytes([1, 2, 3]))
    with pytest.raises(DataError, match=f"{path}: bad IDX magic number 2051, expected 2049"):
        read_idx_labels(path)


def test_idx_truncated_payload(tmp_path: Path) -> None:
    path = _idx_gz(tmp_path / "images.gz", 2051, (2, 28, 28), bytes(784 + 10))
    with pytest.raises(DataError, match=f"{path} is truncated"):
        read_idx_images(path)
    path = _idx_gz(tmp_path / "short.gz", 2049, (2,), b"")
    with pytest.raises(DataError, match="truncated"):
        read_idx_labels(path)
    path.write_bytes(gzip.compress(b"\x00\x00\x08"))
    with pytest.raises(DataError, match="truncated"):
        read_idx_labels(path)


def test_idx_trailing_bytes(tmp_path: Path) -> None:
    path = _idx_gz(tmp_path / "labels.gz", 2049, (2,), bytes(3))
    with pytest.raises(DataError, match="trailing"):
        read_idx_labels(path)


def test_idx_counts_dims_and_label_range(tmp_path: Path) -> None:
    images = _idx_gz(tmp_path / "images.gz", 2051, (2, 28, 28), bytes(2 * 784))
    assert read_idx_images(images, count=2, image_shape=(28, 28)).shape == (2, 28, 28)
    with pytest.raises(DataError, match="item count is 2, expected 60000"):
        read_idx_images(images, count=60000)
    with pytest.raises(DataError, match="size of dimension 1 is 28, expected 32"):
        read_idx_images(images, image_shape=(32, 32))
    labels = _idx_gz(tmp_path / "labels.gz", 2049, (3,), bytes([0, 9, 10]))
    with pytest.raises(DataError, match=f"{labels}: label 10 out of range 0..9"):
        read_idx_labels(labels, num_classes=10)
    assert read_idx_labels(labels).tolist() == [0, 9, 10]


def test_idx_not_gzip_and_truncated_gzip(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match=f"{junk} is not a valid gzip file"):
        read_idx_labels(junk)
    cut = _idx_gz(tmp_path / "cut.gz", 2049, (5000,), bytes(range(256)) * 19 + bytes(136))
    cut.write_bytes(cut.read_bytes()[:-20])
    with pytest.raises(DataError, match=f"{cut} is not a valid gzip file"):
        read_idx_labels(cut)


def test_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing file"):
        read_idx_labels(tmp_path / "nope.gz")


# --------------------------------------------------------------------------- Yale B


@pytest.fixture(scope="module")
def yaleb_mat(shared_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    path = shared_data_dir / "yaleb" / "YaleB_32x32.mat"
    if not path.is_file():
        pytest.skip("YaleB_32x32.mat not available")
    return load_yaleb_mat(path)


def test_yaleb_from_mat(shared_data_dir: Path, yaleb_mat: tuple[np.ndarray, np.ndarray]) -> None:
    ds = load_dataset("yaleb", shared_data_dir, seed=0)
    assert ds.name == "yaleb" and ds.num_classes == 38 and ds.input_shape == (1, 32, 32)
    assert ds.train_x.shape == (1924, 1, 32, 32) and ds.test_x.shape == (490, 1, 32, 32)
    assert ds.train_x.dtype == np.float32 and ds.train_y.dtype == np.int64
    assert set(np.unique(ds.train_y)) == set(range(38)) == set(np.unique(ds.test_y))
    assert "YaleB_32x32.mat" in ds.source
    # normalisation statistics are measured on the training split
    assert abs(float(np.asarray(ds.train_x).mean())) < 1e-4 and abs(float(np.asarray(ds.train_x).std()) - 1) < 1e-4
    images, labels = yaleb_mat
    counts = np.bincount(labels)
    assert counts.sum() == 2414 and counts.min() == 59 and counts.max() == 64
    test_counts = np.bincount(ds.test_y, minlength=38)
    assert test_counts.tolist() == [holdout_count(int(n), 0.2) for n in counts]
    assert (np.bincount(ds.train_y, minlength=38) + test_counts).tolist() == counts.tolist()


def test_yaleb_split_is_seeded(shared_data_dir: Path) -> None:
    a = load_dataset("yaleb", shared_data_dir, seed=3)
    b = load_dataset("yaleb", shared_data_dir, seed=3)
    c = load_dataset("yaleb", shared_data_dir, seed=4)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.test_y, b.test_y)
    assert a.normalization == b.normalization
    assert not np.array_equal(a.test_x, c.test_x)
    assert len(a.test_y) == len(c.test_y) == 490


def test_per_class_split_disjoint_and_deterministic(
    yaleb_mat: tuple[np.ndarray, np.ndarray],
) -> None:
    _, labels = yaleb_mat
    train, test = per_class_split(labels, 0.2, seed=0)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    again = per_class_split(labels, 0.2, seed=0)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    for cls in range(38):
        n = int((labels == cls).sum())
        assert int((labels[test] == cls).sum()) == holdout_count(n, 0.2)
    assert [holdout_count(n, 0.2) for n in (59, 60, 62, 63, 64)] == [12, 12, 12, 13, 13]
    with pytest.raises(UserError):
        per_class_split(labels, 1.5, seed=0)


def test_yaleb_from_real_pgms(
    shared_data_dir: Path, tmp_path: Path, yaleb_mat: tuple[np.ndarray, np.ndarray]
) -> None:
    cropped = shared_data_dir / "yaleb" / "CroppedYale"
    if not cropped.is_dir():
        pytest.skip("CroppedYale not available")
    (tmp_path / "yaleb").mkdir()
    (tmp_path / "yaleb" / "CroppedYale").symlink_to(cropped)
    ds = load_dataset("yaleb", tmp_path, seed=0)
    assert "CroppedYale" in ds.source and "2414 PGM" in ds.source
    assert ds.train_x.shape == (1924, 1, 32, 32) and ds.test_x.shape == (490, 1, 32, 32)
    assert ds.num_classes == 38
    # same subjects, same image order as Deng Cai's .mat (label k = k-th folder)
    mat_images, mat_labels = yaleb_mat
    mat = load_dataset("yaleb", shared_data_dir, seed=0)
    np.testing.assert_array_equal(ds.train_y, mat.train_y)
    pgm_images, pgm_labels = load_yaleb_pgm(cropped)
    np.testing.assert_array_equal(pgm_labels, mat_labels)
    corr = np.corrcoef(pgm_images[:64].ravel(), mat_images[:64].ravel())[0, 1]
    assert corr > 0.9


def _write_pgm(path: Path, image: np.ndarray, comment: bool = False) -> None:
    header = b"P5\n" + (b"# a comment\n" if comment else b"")
    header += f"{image.shape[1]} {image.shape[0]}\n255\n".encode()
    path.write_bytes(header + image.astype(np.uint8).tobytes())


def test_yaleb_pgm_skips_bad_ambient_and_other_files(tmp_path: Path) -> None:
    root = tmp_path / "yaleb" / "CroppedYale"
    rng = np.random.default_rng(0)
    for subject in [s for s in range(1, 40) if s != 14]:
        folder = root / f"yaleB{subject:02d}"
        folder.mkdir(parents=True)
        for k in range(5):
            img = rng.integers(0, 256, size=(192, 168))
            _write_pgm(folder / f"yaleB{subject:02d}_P00A+{k:03d}E+00.pgm", img, comment=k == 0)
        _write_pgm(folder / f"yaleB{subject:02d}_P00A+999E+00.pgm.bad", np.zeros((192, 168)))
        _write_pgm(folder / f"yaleB{subject:02d}_P00_Ambient.pgm", np.zeros((480, 640)))
        (folder / f"yaleB{subject:02d}_P00.info").write_text("list\n")
        (folder / "WS_FTP.LOG").write_text("log\n")
    images, labels = load_yaleb_pgm(root)
    assert images.shape == (38 * 5, 32, 32) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [5] * 38
    ds = load_dataset("yaleb", tmp_path, seed=1)
    assert len(ds.train_y) == 38 * 4 and len(ds.test_y) == 38 * 1


def test_yaleb_pgm_wrong_size_and_subject_count(tmp_path: Path) -> None:
    root = tmp_path / "CroppedYale"
    (root / "yaleB01").mkdir(parents=True)
    with pytest.raises(DataError, match="found 1 subject folders"):
        load_yaleb_pgm(root)
    for subject in range(2, 39):
        (root / f"yaleB{subject:02d}").mkdir()
        _write_pgm(root / f"yaleB{subject:02d}" / "a.pgm", np.zeros((192, 168)))
    _write_pgm(root / "yaleB01" / "a.pgm", np.zeros((100, 100)))
    with pytest.raises(DataError, match="a.pgm: image is 100x100, expected 168x192"):
        load_yaleb_pgm(root)


def test_yaleb_missing_says_where_to_put_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("yaleb", tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "yaleb" / "YaleB_32x32.mat") in msg
    assert str(tmp_path / "yaleb" / "CroppedYale") in msg and "never downloaded" in msg


def test_yaleb_bad_mat(tmp_path: Path) -> None:
    path = tmp_path / "yaleb" / "YaleB_32x32.mat"
    path.parent.mkdir()
    path.write_bytes(b"garbage" * 100)
    with pytest.raises(DataError, match="YaleB_32x32.mat"):
        load_dataset("yaleb", tmp_path)
    import scipy.io

    scipy.io.savemat(path, {"features": np.zeros((2, 1024), np.uint8)})
    with pytest.raises(DataError, match="fea"):
        load_dataset("yaleb", tmp_path)


def test_yaleb_mat_is_column_major(tmp_path: Path) -> None:
    import scipy.io

    image = np.arange(1024, dtype=np.int64).reshape(32, 32) % 251
    fea = np.stack([image.T.reshape(-1)] * 38).astype(np.uint8)  # MATLAB column-major rows
    gnd = np.arange(1, 39, dtype=np.uint8)[:, None]
    path = tmp_path / "YaleB_32x32.mat"
    scipy.io.savemat(path, {"fea": fea, "gnd": gnd})
    images, labels = load_yaleb_mat(path)
    np.testing.assert_array_equal(images[0], image.astype(np.uint8))
    assert labels.tolist() == list(range(38))


# --------------------------------------------------------------------------- PGM and resize


def test_read_pgm(tmp_path: Path) -> None:
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "a.pgm"
    _write_pgm(path, img, comment=True)
    np.testing.assert_array_equal(read_pgm(path), img)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_pgm(path)
    path.write_bytes(b"P2\n4 3\n255\n" + bytes(12))
    with pytest.raises(DataError, match="not a binary PGM"):
        read_pgm(path)
    path.write_bytes(b"P5\n4 3\n65535\n" + bytes(24))
    with pytest.raises(DataError, match="maxval"):
        read_pgm(path)


def test_area_resize() -> None:
    weights = area_weights(168, 32)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights.sum(axis=0).sum(), 32.0)
    flat = np.full((192, 168), 77, np.uint8)
    assert (area_resize(flat, (32, 32)) == 77).all()
    img = np.random.default_rng(0).integers(0, 256, (12, 12)).astype(np.uint8)
    blocks = img.reshape(2, 6, 2, 6).astype(np.float64).mean(axis=(1, 3))
    np.testing.assert_array_equal(area_resize(img, (2, 2)), np.rint(blocks).astype(np.uint8))
    with pytest.raises(UserError):
        area_weights(10, 20)


# --------------------------------------------------------------------------- data dir


def test_resolve_data_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NPDPSNN_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir("") == tmp_path / "env"
    monkeypatch.delenv("NPDPSNN_DATA")
    assert resolve_data_dir() == tmp_path / "xdg" / "npdpsnn"
    monkeypatch.setenv("NPDPSNN_DATA", "")
    assert resolve_data_dir() == tmp_path / "xdg" / "npdpsnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "npdpsnn"
    assert resolve_data_dir("~/d") == tmp_path / "home" / "d"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir("rel").is_absolute()


def test_load_dataset_uses_env_dir(monkeypatch: pytest.MonkeyPatch, shared_data_dir: Path) -> None:
    monkeypatch.setenv("NPDPSNN_DATA", str(shared_data_dir))
    ds = load_dataset("yaleb")
    assert str(shared_data_dir) in ds.source


def test_normalized_images_read_like_the_normalized_array(shared_data_dir):
    from npdpsnn.data.normalization import NormalizedImages

    ds = load_dataset("mnist", data_dir=shared_data_dir)
    x = ds.train_x
    assert isinstance(x, NormalizedImages) and x.raw.dtype == np.uint8  # 1 byte per pixel in memory
    full = normalize(x.raw, ds.normalization)
    idx = np.array([5, 0, 59999, 123])
    assert np.array_equal(x[idx], full[idx]) and x[idx].dtype == np.float32
    assert np.array_equal(x[10:20], full[10:20])
    assert np.array_equal(np.asarray(x.head(7)), full[:7])
    assert len(x.head(7)) == 7 and x.head(7).shape == (7, 1, 28, 28)


# --------------------------------------------------------------------------- hostile data files (issue 9)


def _data_error(fn, *args, match: str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        within_seconds(20, functools.partial(fn, *args, **kwargs))
    msg = str(info.value)
    assert "\n" not in msg and match in msg, msg
    return msg


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)  # no disk used; must never be read whole
    return path


@pytest.mark.parametrize("where", [0.001, 1 / 3, 1 / 2, 0.999])
def test_bit_flipped_yaleb_mat_is_one_data_error(shared_data_dir: Path, tmp_path: Path, where: float) -> None:
    src = shared_data_dir / "yaleb" / "YaleB_32x32.mat"
    if not src.is_file():
        pytest.skip("YaleB_32x32.mat not available")
    data = bytearray(src.read_bytes())
    data[int(len(data) * where)] ^= 0x10  # inside the zlib streams: zlib.error without the fix
    path = tmp_path / "yaleb" / "YaleB_32x32.mat"
    path.parent.mkdir()
    path.write_bytes(bytes(data))
    _data_error(load_dataset, "yaleb", tmp_path, match=f"cannot read {path} as a MATLAB file")


def test_sparse_60_gb_data_files_are_not_read(mnist_copy: Path, tmp_path: Path) -> None:
    path = _sparse(mnist_copy / "t10k-labels-idx1-ubyte.gz", 60 << 30)
    _data_error(load_dataset, "mnist", mnist_copy.parent, match="more than the limit")
    big = _sparse(tmp_path / "labels.gz", 500 << 20)  # within the cap, far beyond 10,000 labels
    _data_error(read_idx_labels, big, count=10000, match="far more than a gzip")
    header = gzip.compress((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(3))
    big = _sparse(tmp_path / "declared.gz", 200 << 20, header)  # the file's own header says 3 labels
    _data_error(read_idx_labels, big, match="far more than a gzip of the 11 bytes")
    assert path.stat().st_blocks < 1000


def test_gzip_bomb_is_decompressed_only_as_far_as_declared(tmp_path: Path) -> None:
    payload = (2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(40 << 20)
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(payload, compresslevel=9))  # 40 KB that inflate to 40 MB
    assert path.stat().st_size < 64 << 10  # small enough to pass the size check
    _data_error(read_idx_labels, path, match="trailing bytes")
    _data_error(read_idx_labels, path, count=3, match="trailing bytes")


def test_idx_header_declaring_terabytes(tmp_path: Path) -> None:
    path = _idx_gz(tmp_path / "images.gz", 2051, (60000, 65535, 65535), bytes(10))
    _data_error(read_idx_images, path, match="more than the limit")


def test_sparse_pgm_and_mat_are_not_read(tmp_path: Path) -> None:
    pgm = _sparse(tmp_path / "a.pgm", 100 << 20, b"P5\n168 192\n255\n")
    _data_error(read_pgm, pgm, match="has trailing bytes")
    _sparse(pgm, 2 << 30, b"P5\n168 192\n255\n")
    _data_error(read_pgm, pgm, match="more than the limit")
    import scipy.io

    mat = tmp_path / "YaleB_32x32.mat"
    scipy.io.savemat(mat, {"fea": np.zeros((38, 1024), np.uint8), "gnd": np.arange(1, 39)[:, None]},
                     do_compression=True)
    _sparse(mat, 300 << 20, mat.read_bytes())  # zeros after the variables: not a MATLAB file
    _data_error(load_yaleb_mat, mat, match="as a MATLAB file")
    # a last variable whose compressed element claims 300 MB more than its data needs
    scipy.io.savemat(mat, {"fea": np.zeros((38, 1024), np.uint8), "gnd": np.arange(1, 39)[:, None]},
                     do_compression=True)
    data = bytearray(mat.read_bytes())
    pos = last = 128
    while pos < len(data):
        last, pos = pos, pos + 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
    count = int.from_bytes(data[last + 4 : last + 8], "little") + (300 << 20)
    data[last + 4 : last + 8] = count.to_bytes(4, "little")
    _sparse(mat, last + 8 + count, bytes(data))
    _data_error(load_yaleb_mat, mat, match="far more than the")


def test_mat_declaring_huge_variables(tmp_path: Path) -> None:
    import scipy.io

    mat = tmp_path / "YaleB_32x32.mat"
    scipy.io.savemat(mat, {"fea": np.zeros((38, 1024), np.uint8), "gnd": np.arange(1, 39)[:, None]})
    data = bytearray(mat.read_bytes())
    dims = (38).to_bytes(4, "little") + (1024).to_bytes(4, "little")
    at = bytes(data).find(dims)
    assert at > 0
    data[at : at + 4] = (2**31 - 1).to_bytes(4, "little")  # fea declared 2**31 x 1024
    mat.write_bytes(bytes(data))
    _data_error(load_yaleb_mat, mat, match="more than the limit")


def test_fifo_as_a_data_file_does_not_hang(mnist_copy: Path, tmp_path: Path) -> None:
    import os

    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    path.unlink()
    os.mkfifo(path)
    _data_error(read_idx_labels, path, match="not a regular file")
    pgm = tmp_path / "x.pgm"
    os.mkfifo(pgm)
    _data_error(read_pgm, pgm, match="not a regular file")
    _data_error(load_yaleb_mat, pgm, match="not a regular file")


def test_missing_data_dir_is_not_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPDPSNN_MNIST_MIRROR", "http://127.0.0.1:9/")  # never reached
    nope = tmp_path / "typo"
    for name in ("mnist", "yaleb"):
        _data_error(load_dataset, name, nope, match=f"no data in {nope}")
    assert not nope.exists()
    monkeypatch.setenv("NPDPSNN_DATA", str(nope))
    _data_error(load_dataset, "mnist", None, match=f"no data in {nope}")
    assert not nope.exists()


def test_over_long_data_dir_is_one_line(tmp_path: Path) -> None:
    _data_error(load_dataset, "mnist", tmp_path / ("x" * 300), match="File name too long")


def test_failed_download_leaves_no_empty_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPDPSNN_MNIST_MIRROR", "http://127.0.0.1:9/")  # nothing listens: download fails
    monkeypatch.delenv("NPDPSNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # the per-user cache may be created (not "no data in"), but not left behind empty
    _data_error(load_dataset, "mnist", None, match="download of http://127.0.0.1:9/")
    assert not (tmp_path / "xdg").exists()
    named = tmp_path / "data"
    named.mkdir()
    _data_error(load_dataset, "mnist", named, match="download of http://127.0.0.1:9/")
    assert list(named.iterdir()) == []
