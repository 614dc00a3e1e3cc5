"""Checkpoints that a kill cannot break and that run no code when loaded.

A checkpoint is one ``torch.save`` file of tensors and plain values (weights,
optimizer states, counters, the config as a dict) in ``checkpoints/``, named
``step-NNNNNNN.pt`` and written through the one atomic write (runs.atomic),
so a kill at any moment leaves either the old or the new file (the pattern of
Mimicry and of SQLite's journal). It is read with
``torch.load(weights_only=True)``, which refuses pickled code, and only from
a regular file (a FIFO would block the reader); what it holds is then checked
entry by entry against the run (runs.verify) before any of it is used.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path
from typing import Optional

import torch

from .. import memory
from ..errors import UserError
from . import atomic, regular, verify

FORMAT = 1
_NAME = re.compile(r"^step-(\d+)\.pt$")


def save(folder: Path, state: dict, step: int, keep: int) -> Path:
    """checkpoints/step-N.pt, then all but the newest ``keep`` step files removed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:07d}.pt"
    save_as(path, state)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save_as(path: Path, state: dict) -> None:
    """One checkpoint file under any name (checkpoints/best.pt), with the format field."""
    atomic.save_torch({"format": FORMAT, **state}, path)


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def step_of(path: Path) -> int:
    """The step in a checkpoint's file name (step-0000400.pt: 400)."""
    return int(_NAME.match(Path(path).name).group(1))


def _reason(e: Exception) -> str:
    """The informative line of torch.load's error (for a refused pickle: the global it would have called)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            return "it would run code: " + line.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0]
    first = text.strip().splitlines()[0] if text.strip() else "unreadable"
    return first.split(". ")[0][:200]


def load(path: Path, map_location="cpu") -> dict:
    """A checkpoint file's dict, read without running code; its entries are checked by runs.verify. The file
    is opened without blocking and checked with fstat first: a FIFO or a folder is one line, never a hang."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UserError(f"{path} is not a ganforge checkpoint that loads safely ({e.strerror or e})") from None
    st = os.fstat(fd)
    what = regular.describe(st.st_mode)
    if what:
        os.close(fd)
        raise UserError(f"{path} is not a ganforge checkpoint that loads safely ({what}, not a regular file)")
    with os.fdopen(fd, "rb") as f:
        memory.check(st.st_size, f"loading {path}", "open it on a machine with more memory")
        try:
            with warnings.catch_warnings():     # torch's own (a quantized tensor's deprecation): the checks speak
                warnings.simplefilter("ignore")
                state = torch.load(f, map_location=map_location, weights_only=True)
        except Exception as e:
            why = "an empty file" if st.st_size == 0 else f"{type(e).__name__}: {_reason(e)}"
            if "central directory" in why:         # torch's words for a zip cut short
                why += "; the file is cut short"
            raise UserError(f"{path} is not a ganforge checkpoint that loads safely ({why})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise UserError(f"{path} is not a ganforge checkpoint (no format field)")
    if isinstance(state["format"], bool) or not isinstance(state["format"], int) or state["format"] < 1:
        raise UserError(f"{path}: format is {verify.describe(state['format'])}, not a checkpoint format number "
                        f"(this version reads 1 to {FORMAT}); {verify.ANOTHER}")
    if state["format"] > FORMAT:
        raise UserError(f"{path} was written by a newer ganforge (checkpoint format {state['format']}, "
                        f"this version reads up to {FORMAT}); upgrade ganforge")
    return state


def _warn(message: str) -> None:
    print(f"ganforge: warning: {message}", file=sys.stderr)


def latest(folder: Path, map_location="cpu", warn=_warn, check=None) -> Optional[tuple[Path, dict]]:
    """The newest checkpoint that loads (and passes ``check(path, state)``, which raises UserError when given:
    the guard's rollback skips a checkpoint with NaN weights), or None when there is none at all. Newer
    files that do not load are named in one warning; when files exist and none loads, a UserError names the
    newest and why."""
    refused = []
    for p in reversed(list_checkpoints(folder)):
        try:
            found = p, load(p, map_location)
            if check is not None:
                check(p, found[1])
        except UserError as e:
            refused.append(str(e))
            continue
        if refused and warn is not None:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            warn(f"using {p.name}: {refused[0]}{more}")
        return found
    if refused:
        raise UserError(f"no checkpoint in {folder} loads; the newest: {refused[0]}"
                        + (f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""))
    return None


def pick(run_dir: Path, which: str = "latest") -> tuple[Path, dict]:
    """(file, state) of a run's checkpoint: the newest that loads (``latest``: a refused newer one is named in a
    warning), checkpoints/best.pt kept by eval.best (``best``), or a checkpoint file; never unpickles code."""
    run_dir = Path(run_dir)
    if which == "latest":
        found = latest(run_dir / "checkpoints")
        if found is None:
            raise UserError(f"{run_dir} has no checkpoint yet")
        return found
    path = run_dir / "checkpoints" / "best.pt" if which == "best" else Path(which)
    if which == "best" and not path.is_file():
        raise UserError(f"{run_dir} has no checkpoints/best.pt: train with eval.best=METRIC to keep one")
    if not path.is_file():
        raise UserError(f"--checkpoint takes best, latest or a checkpoint file; {path} is not a file")
    return path, load(path)
