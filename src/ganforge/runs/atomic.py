"""The one atomic write: every file ganforge writes goes through :func:`write_bytes` or :func:`write_with`.

The bytes go to a temporary file beside the target (``.NAME.tmp-PID``), which
is flushed and fsynced, renamed over the target, and then the folder is
fsynced, so a kill or a power cut at any moment leaves either the old or the
new whole file under the name, never a torn one (the pattern of SQLite's
journal and of every careful checkpointer; Pillai et al., OSDI 2014, show
what goes wrong without the fsyncs). A write that fails (a full disk)
removes its temporary file and raises; a killed writer leaves it, and
:func:`remove_stale` deletes such leftovers when the run folder is opened again.

Pause points for crash tests: with ``GANFORGE_FAULT_PAUSE=checkpoints:N`` (or
``samples:N``) the N-th file written into a folder of that name stops
halfway (the first half of its bytes flushed to the temporary file), prints
``ganforge-fault-pause: <folder> <file>`` on stderr and sleeps
``GANFORGE_FAULT_PAUSE_S`` seconds, so a harness (tests/kill_harness.py) can
SIGKILL it exactly there. Without the variable a write costs one dictionary
lookup more.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import UserError

ENV, ENV_S = "GANFORGE_FAULT_PAUSE", "GANFORGE_FAULT_PAUSE_S"
_count: dict = {}


def _due(folder: str) -> bool:
    want = os.environ.get(ENV)
    if not want:
        return False
    kind, _, nth = want.partition(":")
    if kind != folder:
        return False
    _count[folder] = _count.get(folder, 0) + 1
    return _count[folder] == int(nth or 1)


def _pause(folder: str, name: str) -> None:
    sys.stderr.write(f"ganforge-fault-pause: {folder} {name}\n")
    sys.stderr.flush()
    end = time.monotonic() + float(os.environ.get(ENV_S, "30"))
    while time.monotonic() < end:      # short sleeps: a SIGINT that the kernel gave another thread (torch's) is
        time.sleep(0.05)               # still acted on within 50 ms, not when one long sleep ends


class _PausingFile:
    """A binary file whose first write past ``half`` bytes flushes, then pauses (see the module doc)."""

    def __init__(self, f, folder: str, name: str, half: int = 4096):
        self.f, self.folder, self.name, self.half, self.n, self.done = f, folder, name, half, 0, False

    def write(self, data) -> int:
        out = self.f.write(data)
        self.n += len(data)
        if not self.done and self.n >= self.half:
            self.done = True
            self.f.flush()
            _pause(self.folder, self.name)
        return out

    def flush(self) -> None:
        self.f.flush()


def write_through(f, data: bytes, path: Path) -> None:
    """``f.write(data)`` for the file that will become ``path``, pausing halfway when this write is the one
    GANFORGE_FAULT_PAUSE names (tests replace this function to make a write fail)."""
    folder = Path(path).parent.name
    if _due(folder):
        half = len(data) // 2
        f.write(data[:half])
        f.flush()
        _pause(folder, Path(path).name)
        f.write(data[half:])
    else:
        f.write(data)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where the file system cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(path: Path, fill: Callable) -> None:
    """Write ``path`` atomically: ``fill(file)`` writes the content into the temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:            # a full disk names no file (a write to a descriptor): name the target
        if e.filename in (None, str(tmp)) and e.errno is not None:
            raise type(e)(e.errno, e.strerror, str(path)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_with(path, lambda f: write_through(f, data, path))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, obj, indent=None) -> None:
    write_bytes(path, (json.dumps(obj, indent=indent) + "\n").encode())


def save_torch(obj, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a full disk gives the OSError, not torch's wrapper)."""
    import torch
    path = Path(path)

    def fill(f):
        try:
            torch.save(obj, _PausingFile(f, path.parent.name, path.name) if _due(path.parent.name) else f)
        except RuntimeError as e:          # torch wraps a failed write (a full disk) in its own error
            err = e.__context__
            if isinstance(err, OSError):
                raise OSError(err.errno, err.strerror, str(path)) from None
            raise
    write_with(path, fill)


def save_npz(path: Path, **arrays) -> None:
    """``np.savez_compressed`` to ``path`` atomically."""
    import io

    import numpy as np
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())


def is_temporary(name: str, of: str) -> bool:
    """Whether the file name ``name`` is the temporary file of a write of ``of`` (one a killed writer left)."""
    return re.fullmatch(re.escape(f".{of}.tmp-") + r"\d+", name) is not None


def remove_stale(folder: Path) -> int:
    """Delete the temporary files a killed writer left in ``folder``; how many."""
    n = 0
    if Path(folder).is_dir():
        for p in Path(folder).glob(".*.tmp-*"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def check_out(out: Path, force: bool, suffixes: dict | tuple = (), flag: str = "--out", folder: bool = False) -> Path:
    """The one rule for what a command writes: the right suffix (``suffixes``: a tuple, or a dict of suffix to
    what it holds), a file where a file goes and a folder where a folder goes (``folder``), nothing existing
    replaced unless ``force``, no file where a parent folder must be."""
    out = Path(out)
    if suffixes and out.suffix.lower() not in suffixes:
        kinds = [f"{s} ({what})" if isinstance(suffixes, dict) and what else s
                 for s, what in (suffixes.items() if isinstance(suffixes, dict) else ((s, "") for s in suffixes))]
        raise UserError(f"{flag} must end in {' or '.join(kinds)}, got {out.name}")
    if out.exists() and out.is_dir() != folder:
        raise UserError(f"{out} is a file, not a folder" if folder else f"{flag} {out} is a folder; give a file name")
    if out.exists() and not force:
        raise UserError(f"{out} exists; choose another {flag} or add --force to replace it")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {out} cannot be written: {parent} is a file, not a folder")
            break
    return out
