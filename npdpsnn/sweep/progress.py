"""Progress of a sweep as text: runs done, failures and the estimated time left.

The estimate is the wall time since the sweep started divided by the runs it
has completed, times the runs still to go (so concurrent workers are
accounted for); runs skipped as already finished take no time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

__all__ = ["SweepProgress", "format_duration"]


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


@dataclass
class SweepProgress:
    """Counts of a sweep of ``total`` runs, ``skipped`` of which were finished before it started."""

    total: int
    skipped: int = 0
    completed: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        """Runs finished, including the skipped ones."""
        return self.skipped + self.completed

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def eta_seconds(self) -> float | None:
        if self.remaining == 0:
            return 0.0
        if self.completed == 0:
            return None
        return (time.monotonic() - self.started) / self.completed * self.remaining

    def bar(self, width: int = 24) -> str:
        """``[#######.....] 3/10 runs (2 skipped, 1 failed) ETA 1m20s``."""
        filled = int(width * self.done / self.total) if self.total else width
        extra = [f"{n} {what}" for n, what in ((self.skipped, "skipped"), (self.failed, "failed")) if n]
        more = f" ({', '.join(extra)})" if extra else ""
        return (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} runs{more} "
                f"ETA {format_duration(self.eta_seconds())}")

    def run_line(self, name: str, result: dict | None, error: BaseException | None, eta: bool = True) -> str:
        """One line for a run that just ended (``result`` from run_one, or its ``error``), with the ETA."""
        head = f"[{self.done + self.failed}/{self.total}] {name}"
        if error is not None:
            return f"{head} FAILED: {' '.join(str(error).split()) or type(error).__name__}"
        summary = result["record"]["summary"]
        how = result["status"]
        if how == "resumed":
            how = f"resumed at epoch {result['started_at_epoch']}"
        acc, best = summary.get("test_accuracy"), summary.get("best_test_accuracy")
        eps = summary.get("rdp_epsilon")
        acc_text = "-" if acc is None else f"{acc:.4f}"
        best_text = "" if best is None else f" (best {best:.4f} at epoch {summary.get('best_epoch')})"
        eps_text = "" if eps is None else f", eps_rdp {_number(eps)}"
        tail = f" | ETA {format_duration(self.eta_seconds())}" if eta else ""
        took = format_duration(result["seconds"])
        return f"{head} {how} in {took}: test accuracy {acc_text}{best_text}{eps_text}{tail}"


def _number(value) -> str:
    return str(value) if isinstance(value, str) else f"{value:.4g}"
