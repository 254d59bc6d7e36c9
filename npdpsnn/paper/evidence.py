"""Evidence records: a run folder's ``config.json``, ``metrics.csv`` and ``summary.json``
committed beside the README figure they back, and the check that they reproduce.

``python -m npdpsnn.paper.evidence verify FOLDER...`` retrains each recorded
configuration from scratch (the same code path as ``npdpsnn train``) and compares:
the training data's fingerprint (pixels, labels, normalisation) and every
``metrics.csv`` column except the two wall-clock ones, bit for bit -- but the
privacy columns, which must agree to a relative :data:`PRIVACY_RTOL`: the PLD
accountant convolves with FFTs whose last bits depend on the processor's SIMD
code path (3.6053206978389274 on one machine, 3.605320697846164 on another).
Exit status 1 when any record does not reproduce.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import tempfile
from pathlib import Path

from npdpsnn.errors import UserError

#: Columns that measure time, not results.
WALL_CLOCK = ("seconds", "examples_per_second")
#: Relative agreement required of the privacy columns (FFT rounding differs between processors).
PRIVACY_RTOL = 1e-9


def _same(key: str, recorded: str, fresh: str | None) -> bool:
    from npdpsnn.privacy.accountants.analyses import metric_columns

    if recorded == fresh:
        return True
    if key not in metric_columns() or not recorded or not fresh:
        return False
    return math.isclose(float(recorded), float(fresh), rel_tol=PRIVACY_RTOL)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in csv.DictReader(f)]


def verify(folder: str | Path, data_dir: str | Path | None = None) -> list[str]:
    """The differences between the record in ``folder`` and a fresh run of its configuration."""
    from npdpsnn.data import load_dataset
    from npdpsnn.training import RunRecorder, TrainConfig, fit

    folder = Path(folder)
    for name in ("config.json", "metrics.csv", "summary.json"):
        if not (folder / name).is_file():
            raise UserError(f"{folder} is not an evidence record (no {name})")
    config = TrainConfig.from_dict(json.loads((folder / "config.json").read_text()))
    summary = json.loads((folder / "summary.json").read_text())
    data = load_dataset(config.dataset, data_dir=data_dir, seed=config.run.split_seed)
    recorded = _rows(folder / "metrics.csv")
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(config, data, callbacks=[RunRecorder(tmp)])
        fresh = _rows(Path(tmp) / "metrics.csv")
    problems = []
    if result.summary["data_fingerprint"] != summary.get("data_fingerprint"):
        problems.append("the training data differ from the record's (fingerprint)")
    for i, (a, b) in enumerate(zip(recorded, fresh)):
        for key in a:
            if not _same(key, a[key], b.get(key)):
                problems.append(f"epoch {i + 1}: {key} recorded {a[key]}, now {b.get(key)}")
    if len(recorded) != len(fresh):
        problems.append(f"{len(recorded)} epochs recorded, {len(fresh)} now")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "verify":
        print("usage: python -m npdpsnn.paper.evidence verify FOLDER...", file=sys.stderr)
        return 2
    failed = 0
    for folder in argv[1:]:
        problems = verify(folder)
        print(f"{folder}: " + ("reproduced bit for bit" if not problems else "DIFFERS: " + "; ".join(problems[:5])))
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
