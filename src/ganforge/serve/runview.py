"""The live view of a run folder: what ``ganforge report`` shows, followed as ``metrics.jsonl`` grows.

A ``RunWatcher`` reads only the bytes appended since its last look (a run
that resumed and truncated its log is read again from the start) and keeps
whole lines only, so a line the trainer is still writing is read on the next
look. The charts, diagnostics and table are report/'s, so the live page
and the report of the finished run agree.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from ..report.diagnose import diagnose
from ..metrics import registry
from ..report.page import TRAINING, charts, final_metrics, findings_html, last_table, spread
from ..runs.folder import sample_files

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAMPLE = re.compile(r"step-\d{1,12}\.png")


class NotFound(LookupError):
    """No such run or file; its message is shown to the user."""


def is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file()


def list_runs(root: Path) -> list[dict]:
    """The run folders directly under ``root``, newest first: name, last step, steps wanted."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.is_dir() and NAME.fullmatch(p.name) and is_run(p):
            m = p / "metrics.jsonl"
            found.append((m.stat().st_mtime if m.exists() else p.stat().st_mtime, p))
    return [{"name": p.name, "modified": t} for t, p in sorted(found, reverse=True)]


def run_path(root: Path, name: str) -> Path:
    """The run folder ``root/name``; raises NotFound for any other name (no paths, no '..')."""
    if not NAME.fullmatch(name) or ".." in name:
        raise NotFound(f"no run named {name!r}")
    p = root / name
    if not (p.is_dir() and is_run(p)):
        raise NotFound(f"no run named {name!r} under {root}")
    return p


def sample_path(root: Path, name: str, file: str) -> Path:
    p = run_path(root, name) / "samples" / file
    if not SAMPLE.fullmatch(file) or not p.is_file():
        raise NotFound(f"no sample {file!r} in run {name!r}")
    return p


class RunWatcher:
    """Reads a run folder incrementally; ``poll()`` answers the page's update, or None when nothing changed."""

    def __init__(self, run_dir: Path, url: str):
        self.dir, self.url = Path(run_dir), url
        self.offset, self.rows, self.rest = 0, [], b""
        self.seen: Optional[tuple] = None
        import yaml
        text = (self.dir / "config.yaml").read_text()
        self.config_text = text
        cfg = yaml.safe_load(text) or {}
        self.loss = str(cfg.get("loss", ""))
        self.steps = cfg.get("steps")

    def _read(self) -> None:
        path = self.dir / "metrics.jsonl"
        if not path.exists():
            return
        size = path.stat().st_size
        if size < self.offset:                      # truncated by a resume: read it again
            self.offset, self.rows, self.rest = 0, [], b""
        with open(path, "rb") as f:
            f.seek(self.offset)
            new = f.read(size - self.offset)
        self.offset += len(new)
        *lines, self.rest = (self.rest + new).split(b"\n")
        for line in lines:
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict):
                self.rows.append(rec)

    def poll(self) -> Optional[dict]:
        path = self.dir / "metrics.jsonl"
        samples = sample_files(self.dir, ".png")
        stamp = (path.stat().st_size if path.exists() else -1, len(samples), samples[-1][0] if samples else -1)
        if stamp == self.seen:
            return None
        self.seen = stamp
        self._read()
        found = diagnose(self.rows, self.loss)
        marks = [(f.step, f.title) for f in found]
        last = final_metrics(self.rows)
        shown = spread(samples, 6)
        return {"step": last.get("step", 0), "steps": self.steps, "rows": len(self.rows),
                "time": round(float(last.get("time", 0.0)), 1),
                "charts": charts(self.rows, TRAINING, marks) + charts(self.rows, registry.charts(), marks),
                "findings": findings_html(found), "table": last_table(last),
                "samples": [[s, f"{self.url}/samples/{p.name}"] for s, p in shown],
                "latest": [samples[-1][0], f"{self.url}/samples/{samples[-1][1].name}"] if samples else None}
