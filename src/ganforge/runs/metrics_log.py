"""The run's numbers: metrics.jsonl, one JSON object per logged step.

When a run resumes from a checkpoint at step s, lines after s are dropped
(they will be written again, identically), so an interrupted and resumed run
leaves the same values as one that never stopped. Wall-clock fields (``time``, ``img_s``,
``data_wait``: the share of the interval a streamed run waited for images) are the only ones that
differ. A line is appended whole; a reader skips a torn last line (a kill in the middle of an append) and empty lines without a
word, and every other line that is not a record ganforge writes (not UTF-8,
not JSON, a number too long to read or too large for a float, no whole step
>= 0) with one warning that counts them; a truncation drops them and says so.
Only a regular file is read (runs.regular): a FIFO or a folder is one line.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Optional

from . import atomic, regular

WALL_CLOCK_KEYS = ("time", "img_s", "data_wait")
DAMAGED = "not a JSON object with a whole step >= 0, as ganforge writes"


def _warn(message: str) -> None:
    print(f"ganforge: warning: {message}", file=sys.stderr)


def parse(line: bytes) -> Optional[dict]:
    """One line of metrics.jsonl as its record, or None when it is not one that ganforge writes."""
    try:
        rec = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):     # bad UTF-8 or JSON, an integer of over 4300 digits; deep nesting
        return None
    if not isinstance(rec, dict):
        return None
    step = rec.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < 2 ** 63:
        return None
    try:
        for v in rec.values():
            if isinstance(v, int):
                float(v)                     # an integer no float holds breaks every chart
    except OverflowError:
        return None
    return rec


def scan(path: Path) -> tuple[list[dict], int]:
    """(the records of a metrics.jsonl, how many damaged lines were skipped); no file: ([], 0)."""
    data = regular.read_bytes(Path(path))
    if data is None:
        return [], 0
    *lines, torn = data.split(b"\n")          # torn: b"" after the last newline, or a cut-off append
    rows, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        rec = parse(line)
        if rec is None:
            bad += 1
        else:
            rows.append(rec)
    rec = parse(torn) if torn.strip() else None
    if rec is not None:
        rows.append(rec)
    return rows, bad


def _lines(n: int) -> str:
    return f"{n} damaged line{'s' if n != 1 else ''}"


def read_metrics(path: Path, warn: Optional[Callable[[str], None]] = _warn) -> list[dict]:
    """Every record of a metrics.jsonl; damaged lines are skipped and counted in one warning."""
    rows, bad = scan(path)
    if bad and warn is not None:
        warn(f"{path}: {_lines(bad)} skipped ({DAMAGED})")
    return rows


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Keep only lines with step <= ``step`` (written atomically)."""
        rows, bad = scan(self.path)
        keep = [r for r in rows if r["step"] <= step]
        if bad:
            last = f" up to step {keep[-1]['step']}" if keep else ""
            _warn(f"{self.path}: {_lines(bad)} dropped ({DAMAGED}); the {len(keep)} good line{'s' if len(keep) != 1 else ''}{last} kept")
        atomic.write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")
