"""Tests for the MNIST / Fashion-MNIST downloader against a local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from npdpsnn.data import load_dataset
from npdpsnn.data.download import download_file, mirror_base
from npdpsnn.errors import DataError

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``routes``: path -> (body, declared Content-Length or None for the true one)."""

    routes: dict[str, tuple[bytes, int | None]] = {}
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.requests.append(self.path)
        if self.path not in self.routes:
            self.send_error(404, "Not Found")
            return
        body, declared = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) if declared is None else declared))
        self.end_headers()
        self.wfile.write(body)
        if declared is not None:
            self.close_connection = True  # hang up before the promised length

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, type[_Handler]]]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    handler = type("Handler", (_Handler,), {"routes": {}, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_mnist_end_to_end(
    server: tuple[str, type[_Handler]],
    shared_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, handler = server
    for name in MNIST_FILES:
        handler.routes[f"/m/{name}"] = ((shared_data_dir / "mnist" / name).read_bytes(), None)
    monkeypatch.setenv("NPDPSNN_MNIST_MIRROR", f"{url}/m")  # no trailing slash on purpose
    caplog.set_level(logging.INFO, logger="npdpsnn.data.download")
    (tmp_path / "new").mkdir()  # a named data folder must exist (only the user cache is created)
    ds = load_dataset("mnist", tmp_path / "new", download=True)
    assert ds.train_x.shape == (60000, 1, 28, 28)
    assert _leftovers(tmp_path / "new" / "mnist") == sorted(MNIST_FILES)
    for name in MNIST_FILES:
        got = (tmp_path / "new" / "mnist" / name).read_bytes()
        assert got == (shared_data_dir / "mnist" / name).read_bytes()
    assert sorted(handler.requests) == sorted(f"/m/{n}" for n in MNIST_FILES)
    assert "downloading" in caplog.text and "sha256 ok" in caplog.text
    # second load: everything present, nothing fetched
    handler.requests.clear()
    ds2 = load_dataset("mnist", tmp_path / "new", download=True)
    assert handler.requests == []
    np.testing.assert_array_equal(ds.test_y, ds2.test_y)


def test_only_missing_files_are_fetched(
    server: tuple[str, type[_Handler]],
    shared_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, handler = server
    directory = tmp_path / "fashion-mnist"
    directory.mkdir()
    src = shared_data_dir / "fashion-mnist"
    for name in MNIST_FILES[:3]:
        (directory / name).symlink_to(src / name)
    last = MNIST_FILES[3]
    handler.routes[f"/f/{last}"] = ((src / last).read_bytes(), None)
    monkeypatch.setenv("NPDPSNN_FASHION_MNIST_MIRROR", f"{url}/f/")
    ds = load_dataset("fashion-mnist", tmp_path)
    assert handler.requests == [f"/f/{last}"]
    assert ds.test_y.shape == (10000,)


def test_checksum_mismatch_leaves_nothing(
    server: tuple[str, type[_Handler]],
    shared_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, handler = server
    directory = tmp_path / "mnist"
    directory.mkdir()
    for name in MNIST_FILES:
        if name != "t10k-labels-idx1-ubyte.gz":
            (directory / name).symlink_to(shared_data_dir / "mnist" / name)
    data = bytearray((shared_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[100] ^= 0x01
    handler.routes["/t10k-labels-idx1-ubyte.gz"] = (bytes(data), None)
    monkeypatch.setenv("NPDPSNN_MNIST_MIRROR", url + "/")
    with pytest.raises(DataError, match=r"checksum mismatch for .*t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" not in _leftovers(directory)
    assert not [n for n in _leftovers(directory) if n.endswith(".part")]
    assert len(_leftovers(directory)) == 3


def test_truncated_transfer_leaves_nothing(
    server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    body = b"x" * 5000
    handler.routes["/short.gz"] = (body, 20000)
    dest = tmp_path / "short.gz"
    with pytest.raises(DataError, match="truncated") as info:
        download_file(f"{url}/short.gz", dest, _sha(body))
    assert "\n" not in str(info.value)
    assert _leftovers(tmp_path) == []


def test_http_404(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(DataError, match="HTTP 404"):
        download_file(f"{url}/missing.gz", tmp_path / "missing.gz", "0" * 64)
    assert _leftovers(tmp_path) == []


def test_http_404_through_load_dataset(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setenv("NPDPSNN_MNIST_MIRROR", url + "/nothing/")
    with pytest.raises(DataError, match="HTTP 404"):
        load_dataset("mnist", tmp_path, download=True)
    assert _leftovers(tmp_path / "mnist") == []


def test_download_small_file_ok_and_mismatch(
    server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    body = bytes(range(256)) * 300
    handler.routes["/ok.bin"] = (body, None)
    dest = download_file(f"{url}/ok.bin", tmp_path / "ok.bin", _sha(body).upper())
    assert dest.read_bytes() == body
    mismatch = "checksum mismatch for .*other.bin.*expected sha256 0+ got"
    with pytest.raises(DataError, match=mismatch):
        download_file(f"{url}/ok.bin", tmp_path / "other.bin", "0" * 64)
    assert _leftovers(tmp_path) == ["ok.bin"]


def test_existing_file_kept_when_download_fails(
    server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    dest = tmp_path / "keep.bin"
    dest.write_bytes(b"old")
    handler.routes["/keep.bin"] = (b"new content", None)
    with pytest.raises(DataError):
        download_file(f"{url}/keep.bin", dest, "0" * 64)
    assert dest.read_bytes() == b"old"


def test_network_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataError, match="download of .* failed") as info:
        download_file(f"http://127.0.0.1:{port}/x.gz", tmp_path / "x.gz", "0" * 64, timeout=5)
    assert "\n" not in str(info.value)
    assert _leftovers(tmp_path) == []
    with pytest.raises(DataError, match="failed"):
        download_file("notaurl", tmp_path / "y.gz", "0" * 64)


def test_mirror_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NPDPSNN_MNIST_MIRROR", raising=False)
    monkeypatch.delenv("NPDPSNN_FASHION_MNIST_MIRROR", raising=False)
    assert mirror_base("mnist") == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert mirror_base("fashion-mnist").startswith("http://fashion-mnist.s3-website")
    monkeypatch.setenv("NPDPSNN_MNIST_MIRROR", "http://example.invalid/a")
    monkeypatch.setenv("NPDPSNN_FASHION_MNIST_MIRROR", "http://example.invalid/b/")
    assert mirror_base("mnist") == "http://example.invalid/a/"
    assert mirror_base("fashion-mnist") == "http://example.invalid/b/"
    with pytest.raises(DataError, match="cannot be downloaded"):
        mirror_base("yaleb")
