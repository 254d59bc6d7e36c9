"""Evidence records reproduce bit for bit (all but the wall-clock columns), and a
tampered record is caught."""

from __future__ import annotations

import shutil
from pathlib import Path

from npdpsnn.paper.evidence import verify

RECORD = Path(__file__).resolve().parents[1] / "docs" / "results" / "evidence" / "tiny-mnist-snn"


def test_committed_tiny_record_reproduces(shared_data_dir):
    assert verify(RECORD) == []


def test_a_changed_figure_is_caught(tmp_path, shared_data_dir):
    copy = tmp_path / "r"
    shutil.copytree(RECORD, copy)
    text = (copy / "metrics.csv").read_text().splitlines()
    cells = text[1].split(",")
    cells[4] = "0.9999"  # test_accuracy of epoch 1
    text[1] = ",".join(cells)
    (copy / "metrics.csv").write_text("\n".join(text) + "\n")
    problems = verify(copy)
    assert any("test_accuracy" in p for p in problems)
