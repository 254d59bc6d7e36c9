"""The release file describes itself; the documented h5py/NumPy reader and forward pass
match the package; ``npdpsnn predict`` classifies PNG, PGM and .npy images."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.network import Network
from npdpsnn.training.checkpoint import load_model_description, load_network, save_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "model-format.md"


def _doc_namespace() -> dict:
    text = DOC.read_text()
    ns: dict = {}
    for marker in ("reader", "forward"):
        m = re.search(rf"<!-- example:{marker} -->\s*```python\n(.*?)```", text, re.S)
        exec(compile(m.group(1), f"model-format.md:{marker}", "exec"), ns)
    return ns


@pytest.mark.parametrize("spec,opts", [
    ("3C3S1P1-P2S2-4C3S1-A2S2-6-5", dict(kind="snn", neuron="if", T=4)),
    ("3C3S1P1-P2S2-4C3S1-A2S2-6-5", dict(kind="snn", neuron="lif", leak=0.5, T=3, threshold=0.25)),
    ("3C3S1P1-P2S2-4C3S1-A2S2-6-5", dict(kind="ann")),
    ("7-5", dict(kind="snn", T=2)),
])
def test_documented_reader_and_forward_match_the_package(tmp_path, spec, opts):
    net = Network.from_spec(spec, (2, 10, 10), seed=3, **opts)
    save_model(tmp_path / "m.h5", net, {"dataset": "synthetic", "input": {"normalization": {"mean": 0, "std": 1}}})
    ns = _doc_namespace()
    weights, spec_read, options, description = ns["read_model"](tmp_path / "m.h5")
    assert spec_read == spec and description["dataset"] == "synthetic"
    x = np.random.default_rng(0).normal(size=(4, 2, 10, 10)).astype(np.float32)
    ours = np.stack([ns["forward"](weights, spec_read, options, xi) for xi in x])
    np.testing.assert_allclose(ours, net.forward(x, backend="reference"), rtol=1e-9, atol=1e-9)


def _png(img: np.ndarray) -> bytes:
    h, w = img.shape

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_trained_model_describes_itself_and_predicts(tmp_path, shared_data_dir):
    from npdpsnn.data import load_dataset

    run = tmp_path / "r"
    r = CliRunner().invoke(main, ["train", "mnist", "--sigma", "1", "--epochs", "1", "--quiet", "--out", str(run),
                                  "--net", "4C5S2-P2S2-16-10", "-T", "2", "--limit-train", "300",
                                  "--batch-size", "100"])
    assert r.exit_code == 0, r.output
    d = load_model_description(run / "model.h5")
    data = load_dataset("mnist")
    assert d["dataset"] == "mnist" and d["class_names"][3] == "3" and d["input_shape"] == [1, 28, 28]
    assert d["input"]["normalization"] == data.normalization
    summary = json.loads((run / "summary.json").read_text())
    assert d["privacy"]["rdp_epsilon"] == summary["rdp_epsilon"] and "DP-SGD" in d["privacy"]["privacy_statement"]
    # eval needs no dataset argument: the file says which
    r = CliRunner().invoke(main, ["eval", str(run / "model.h5"), "--json", "--firing-examples", "0"])
    assert json.loads(r.stdout)["test_accuracy"] == summary["test_accuracy"]
    # predict: the same image as PNG, PGM (twice the size: downscaled) and .npy give the model's own answer
    img = data.test_x.raw[0, 0]
    (tmp_path / "a.png").write_bytes(_png(img))
    big = np.kron(img, np.ones((2, 2), np.uint8))
    (tmp_path / "b.pgm").write_bytes(b"P5\n56 56\n255\n" + big.tobytes())
    np.save(tmp_path / "c.npy", np.stack([img, data.test_x.raw[1, 0]]))
    r = CliRunner().invoke(main, ["predict", str(run / "model.h5"), str(tmp_path / "a.png"), str(tmp_path / "b.pgm"),
                                  str(tmp_path / "c.npy"), "--json", "--top-k", "2"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 4 and all(len(row["top"]) == 2 for row in rows)
    net = load_network(run / "model.h5")
    expected = str(int(np.argmax(net.forward(data.test_x[:1]))))
    assert rows[0]["top"][0]["class"] == expected == rows[1]["top"][0]["class"] == rows[2]["top"][0]["class"]
    assert abs(sum(t["probability"] for t in rows[0]["top"])) <= 1.0
    r = CliRunner().invoke(main, ["predict", str(run / "model.h5"), str(tmp_path / "missing.png")])
    assert r.exit_code == 2 and r.output.startswith("Error:")
