"""The run's numbers: metrics.jsonl, one JSON object per logged step.

When a run resumes from a checkpoint at step s, lines after s are dropped
(they will be written again, identically), so an interrupted and resumed run
leaves the same values as one that never stopped. Wall-clock fields (``time``, ``img_s``)
are the only ones that differ. A line is appended whole; a reader skips a
torn last line (a kill in the middle of an append).
"""
from __future__ import annotations

import json
from pathlib import Path

from . import atomic

WALL_CLOCK_KEYS = ("time", "img_s")


def read_metrics(path: Path) -> list[dict]:
    """Every whole line of a metrics.jsonl (a torn last line is ignored)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Keep only lines with step <= ``step`` (written atomically)."""
        keep = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        atomic.write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")
