"""Shared test fixtures.

The datasets come from ``../shared/data`` beside the repository (or from the
``NPDPSNN_DATA`` environment variable when it is already set), never from the
network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_default = REPO.parent / "shared" / "data"
if "NPDPSNN_DATA" not in os.environ and _default.is_dir():
    os.environ["NPDPSNN_DATA"] = str(_default)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = Path(os.environ.get("NPDPSNN_DATA", _default))
    if not (path / "mnist").is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path
