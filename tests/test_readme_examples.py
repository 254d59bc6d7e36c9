"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    text = README.read_text()
    m = re.search(rf"<!-- example:{marker} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README lacks the example {marker}"
    return m.group(1)


def test_fit_example_runs(shared_data_dir, capsys):
    exec(compile(_block("fit"), "README.md:example:fit", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    acc, eps = map(float, out[0].split())
    assert 0.3 < acc <= 1.0 and 0 < eps < 100
    assert "PoissonSampledEvent" in out[1]
