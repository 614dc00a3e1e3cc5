"""Only regular files: what a run folder's readers and writers check before they open a file of the run.

A FIFO where metrics.jsonl belongs blocks its reader forever (no writer
will ever come), a folder or a device has no content ganforge wrote, and
replacing any of them would delete something ganforge did not make. So a
reader opens without blocking and checks with fstat before it reads one
byte; a writer checks that the name is free or a regular file; anything
else is one line that names the path and what it is.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

from ..errors import UserError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def describe(mode: int) -> Optional[str]:
    """None for a regular file's ``st_mode``, else what the file is ("a FIFO", "a folder", ...)."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def kind(path: Path, follow: bool = True) -> Optional[str]:
    """What stands at ``path`` when it is not a regular file ("a FIFO", "a folder", ...); None when it is
    one (with ``follow``, a link to one counts) or when nothing is there."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except (OSError, ValueError):        # missing, a broken link, a name the OS cannot hold
        return None
    return describe(st.st_mode)


def refusal(path: Path, what: str) -> UserError:
    return UserError(f"{path} is {what}, not a regular file: ganforge reads and writes only regular files "
                     "there; move it away")


def check(path: Path) -> None:
    """Refuse in one line when ``path`` exists and is not a regular file (before a write replaces it)."""
    what = kind(path)
    if what:
        raise refusal(path, what)


def read_bytes(path: Path) -> Optional[bytes]:
    """The bytes of the regular file at ``path``, or None when there is none; anything else is refused in
    one line without blocking (opened non-blocking, checked with fstat before any read)."""
    check(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        what = describe(os.fstat(fd).st_mode)       # a FIFO put there since the check above
        if what:
            raise refusal(path, what)
        try:
            return f.read()
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def read_text(path: Path) -> Optional[str]:
    """read_bytes as UTF-8 text (None when there is no file); a file that is not UTF-8 is one line."""
    data = read_bytes(path)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {e.start}); ganforge writes it as UTF-8") from None
