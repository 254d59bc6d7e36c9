"""Evidence records reproduce bit for bit (all but the wall-clock columns; the privacy
columns to a relative 1e-9), and a tampered record is caught."""

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


def test_privacy_columns_agree_to_a_relative_tolerance_only():
    from npdpsnn.paper.evidence import PRIVACY_RTOL, _same

    assert _same("pld_epsilon", "3.6053206978389274", "3.605320697846164")  # FFT rounding of two processors
    assert not _same("pld_epsilon", "3.6053", repr(3.6053 * (1 + 100 * PRIVACY_RTOL)))
    assert not _same("test_accuracy", "0.9512", "0.95120000001")  # results stay bit for bit
    assert not _same("pld_epsilon", "3.6", "")
