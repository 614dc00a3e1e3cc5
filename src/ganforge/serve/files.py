"""The files of a run folder as the server may read them: regular files inside the folder, bounded, never blocking.

A run folder may come from anywhere (copied, unpacked, shared), so what the
server opens in it is checked first: the real path (every symlink followed)
must lie inside the folder's real path, and the file must be a regular file
(a FIFO would block ``open()`` forever, a device or a directory is no
image). Files are opened with O_NONBLOCK and checked again with ``fstat``
on the open descriptor, so a file swapped for a FIFO after the first look
still cannot hold a thread. A config is parsed by schema.load_yaml_text,
which refuses aliases (a few hundred bytes of nested aliases stand for
billions of values); PyYAML reads about 100 KB a second, so a config over
PARSE_MAX is not parsed and the last few parsed are kept (each stream
connection would parse it again).
"""
from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import BinaryIO, Optional

from ..errors import UserError
from ..schema import load_yaml_text

PARSE_MAX = 64 << 10      # characters of YAML parsed at most (ganforge writes configs of a few KB)


def inside(folder: Path, path: Path) -> Optional[str]:
    """The real path of ``path`` when it lies inside the real path of ``folder`` (or is it), else None."""
    base, real = os.path.realpath(folder), os.path.realpath(path)
    if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
        return real
    return None


def is_regular(folder: Path, path: Path) -> bool:
    """``path`` is a regular file whose real path lies inside ``folder``."""
    real = inside(folder, path)
    try:
        return real is not None and stat.S_ISREG(os.stat(real).st_mode)
    except OSError:
        return False


def is_folder(folder: Path, path: Path) -> bool:
    """``path`` is a directory whose real path lies inside ``folder`` (not ``folder`` itself)."""
    real = inside(folder, path)
    return real is not None and real != os.path.realpath(folder) and os.path.isdir(real)


def open_regular(folder: Path, path: Path) -> Optional[tuple[BinaryIO, os.stat_result]]:
    """``path`` opened for reading and its stat when it is a regular file inside ``folder``; None otherwise."""
    real = inside(folder, path)
    if real is None:
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb"), st


def read_regular(folder: Path, path: Path, limit: int) -> Optional[bytes]:
    """The first ``limit`` bytes of a regular file inside ``folder`` (None when it is not one)."""
    opened = open_regular(folder, path)
    if opened is None:
        return None
    with opened[0] as f:
        return f.read(limit)


@functools.lru_cache(maxsize=16)
def _parsed(text: str) -> tuple:
    try:
        data = load_yaml_text(text, "config.yaml")
    except UserError:
        return ()
    return tuple(data.items()) if isinstance(data, dict) else ()


def config_dict(text: str) -> dict:
    """The mapping a config.yaml holds; {} when it is not one, uses aliases, is nested past the parser or is
    longer than PARSE_MAX."""
    return dict(_parsed(text)) if len(text) <= PARSE_MAX else {}
