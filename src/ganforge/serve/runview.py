"""The live view of a run folder: what ``ganforge report`` shows, followed as ``metrics.jsonl`` grows.

A ``RunWatcher`` reads only the bytes appended since its last look (a run
that resumed and truncated its log is read again from the start) and keeps
whole lines only, so a line the trainer is still writing is read on the next
look. The charts, diagnostics and table are report/'s, so the live page
and the report of the finished run agree.

Only what lies inside the runs root is shown (serve.files): a run folder, or
a file in one, whose real path leads out of it (a symlink to /etc/passwd, a
run folder linked from elsewhere) is not listed and answers 404, and only
regular files are opened. A damaged line of metrics.jsonl (not UTF-8, not
JSON, an integer past Python's 4300 digits, nested too deep, a step that is
no whole number, a number too large for a float) is skipped and counted;
the log is read in bounded chunks and a line may be at most LINE bytes.
"""
from __future__ import annotations

import math
import os
import re
import reprlib
import stat
from pathlib import Path
from typing import BinaryIO, Optional

from ..report.diagnose import diagnose
from ..metrics import registry
from ..report.page import TRAINING, charts, final_metrics, findings_html, last_table, spread
from ..runs.folder import sample_files
from ..runs.metrics_log import parse
from .files import config_dict, inside, is_folder, is_regular, open_regular, read_regular

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAMPLE = re.compile(r"step-\d{1,12}\.png")
CONFIG_MAX = 1 << 20          # bytes of config.yaml read (a config is a few KB)
CHUNK = 8 << 20               # bytes of metrics.jsonl read per look
LINE = 1 << 20                # bytes a metrics line may have
BIG = 2 ** 63                 # a logged integer at least this large is damage (and no float can show it)


_short = reprlib.Repr()
_short.maxstring = 60
quoted = _short.repr         # a name from the request, quoted and cut to 60 characters


class NotFound(LookupError):
    """No such run or file; its message is shown to the user."""


def is_run(root: Path, path: Path) -> bool:
    """A folder inside ``root`` (real paths) with a regular config.yaml of its own."""
    return is_folder(root, path) and is_regular(path, path / "config.yaml")


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def list_runs(root: Path) -> list[dict]:
    """The run folders directly under ``root``, newest first: name, last step, steps wanted."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if NAME.fullmatch(p.name) and is_run(root, p):
            found.append((max(_mtime(p / "metrics.jsonl"), _mtime(p)), p))
    return [{"name": p.name, "modified": t} for t, p in sorted(found, reverse=True)]


def run_path(root: Path, name: str) -> Path:
    """The run folder ``root/name``; raises NotFound for any other name (no paths, no '..', nothing outside root)."""
    if not NAME.fullmatch(name) or ".." in name:
        raise NotFound(f"no run named {quoted(name)}.")
    p = root / name
    if not is_run(root, p):
        raise NotFound(f"no run named {quoted(name)} under {root}.")
    return p


def open_sample(root: Path, name: str, file: str) -> tuple[BinaryIO, os.stat_result]:
    """A sample grid of a run opened for reading (a regular file inside the run folder) and its stat."""
    run = run_path(root, name)
    opened = open_regular(run, run / "samples" / file) if SAMPLE.fullmatch(file) else None
    if opened is None:
        raise NotFound(f"no sample {quoted(file)} in run {quoted(name)}.")
    return opened


class RunWatcher:
    """Reads a run folder incrementally; ``poll()`` answers the page's update, or None when nothing changed."""

    def __init__(self, run_dir: Path, url: str):
        self.dir, self.url = Path(run_dir), url
        self.offset, self.rows, self.rest, self.skipped, self.long = 0, [], b"", 0, False
        self.seen: Optional[tuple] = None
        raw = read_regular(self.dir, self.dir / "config.yaml", CONFIG_MAX + 1) or b""
        if len(raw) > CONFIG_MAX:
            self.config_text, cfg = f"(config.yaml is over {CONFIG_MAX >> 20} MB; not shown)", {}
        else:
            self.config_text = raw.decode("utf-8", "replace")
            cfg = config_dict(self.config_text)
        loss, steps = cfg.get("loss"), cfg.get("steps")
        self.loss = loss if isinstance(loss, str) else ""
        self.steps = steps if isinstance(steps, int) and not isinstance(steps, bool) and 0 <= steps < BIG else None

    def _log_size(self) -> int:
        """The size of metrics.jsonl when it is a regular file inside the run folder, else -1."""
        real = inside(self.dir, self.dir / "metrics.jsonl")
        try:
            st = os.stat(real) if real else None
        except OSError:
            st = None
        return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else -1

    def _read(self) -> None:
        opened = open_regular(self.dir, self.dir / "metrics.jsonl")
        if opened is None:
            return
        with opened[0] as f:
            size = opened[1].st_size
            if size < self.offset:                      # truncated by a resume: read it again
                self.offset, self.rows, self.rest, self.skipped, self.long = 0, [], b"", 0, False
            f.seek(self.offset)
            new = f.read(min(size - self.offset, CHUNK))
        self.offset += len(new)
        data = self.rest + new
        if self.long:                                   # inside a line too long to keep: drop up to its end
            cut = data.find(b"\n")
            data, self.long = (b"", True) if cut < 0 else (data[cut + 1:], False)
        *lines, self.rest = data.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            rec = parse(line) if len(line) <= LINE else None
            if rec is None:
                self.skipped += 1
            else:
                self.rows.append(rec)
        if len(self.rest) > LINE:
            self.rest, self.long, self.skipped = b"", True, self.skipped + 1

    def _samples(self) -> list:
        return [(s, p) for s, p in sample_files(self.dir, ".png") if is_regular(self.dir, p)]

    def poll(self) -> Optional[dict]:
        samples = self._samples()
        size = self._log_size()
        stamp = (size, len(samples), samples[-1][0] if samples else -1)
        if stamp == self.seen and self.offset >= size:
            return None
        self.seen = stamp
        self._read()
        found = diagnose(self.rows, self.loss)
        marks = [(f.step, f.title) for f in found]
        last = final_metrics(self.rows)
        shown = spread(samples, 6)
        return {"step": last.get("step", 0), "steps": self.steps, "rows": len(self.rows), "skipped": self.skipped,
                "time": round(last.get("time", 0.0), 1) if math.isfinite(last.get("time", 0.0)) else None,
                "charts": charts(self.rows, TRAINING, marks) + charts(self.rows, registry.charts(), marks),
                "findings": findings_html(found), "table": last_table(last),
                "samples": [[s, f"{self.url}/samples/{p.name}"] for s, p in shown],
                "latest": [samples[-1][0], f"{self.url}/samples/{samples[-1][1].name}"] if samples else None}
