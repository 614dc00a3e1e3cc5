"""Checkpoints that a kill cannot break and that run no code when loaded.

A checkpoint is one ``torch.save`` file of tensors and plain values (weights,
optimizer states, counters, the config as a dict) in ``checkpoints/``, named
``step-NNNNNNN.pt`` and written through the one atomic write (runs.atomic),
so a kill at any moment leaves either the old or the new file (the pattern of
Mimicry and of SQLite's journal). It is read with
``torch.load(weights_only=True)``, which refuses pickled code.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Optional

import torch

from ..errors import UserError
from . import atomic

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
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        why = "an empty file" if empty else f"{type(e).__name__}: {_reason(e)}"
        if "central directory" in why:         # torch's words for a zip cut short
            why += "; the file is cut short"
        raise UserError(f"{path} is not a ganforge checkpoint that loads safely ({why})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise UserError(f"{path} is not a ganforge checkpoint (no format field)")
    if state["format"] > FORMAT:
        raise UserError(f"{path} was written by a newer ganforge (checkpoint format {state['format']}, "
                        f"this version reads up to {FORMAT}); upgrade ganforge")
    return state


def misfit(path, state: dict, model: str, err: Exception) -> UserError:
    """The one line for a checkpoint whose weights do not fit the run's model (``model``: the family's name):
    one written by another family, or by the same family with other sizes; either way another run's file."""
    saved = state.get("config", {}).get("model", {}) if isinstance(state.get("config"), dict) else {}
    other = saved.get("name") if isinstance(saved, dict) else None
    if other and other != model:
        what = f"holds model {other}, but the run's config.yaml says model {model}"
    else:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        what = f"does not fit the run's {model} model ({(lines[1:] or lines or ['?'])[0][:160]})"
    return UserError(f"{path} {what}: it comes from another run; put back this run's own checkpoint, "
                     "or train a new run")


def _warn(message: str) -> None:
    print(f"ganforge: warning: {message}", file=sys.stderr)


def latest(folder: Path, map_location="cpu", warn=_warn) -> Optional[tuple[Path, dict]]:
    """The newest checkpoint that loads, or None when there is none at all. Newer files that do not load
    are named in one warning; when files exist and none loads, a UserError names the newest and why."""
    refused = []
    for p in reversed(list_checkpoints(folder)):
        try:
            found = p, load(p, map_location)
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
