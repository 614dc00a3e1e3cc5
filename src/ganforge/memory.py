"""Memory bounds: what a run or a command will hold, compared with what the machine has, before allocating it.

A size that a user types (``batch_size=10**9``, ``data.resolution=100000``,
``sample -n 10**9``) or that a file declares would otherwise meet an
out-of-memory traceback, a half-made run folder, or a machine whose memory is
filled. :func:`check` compares an estimate in bytes with the memory available
now (Linux: ``MemAvailable`` of /proc/meminfo; a CUDA device: its free memory)
and refuses with one line that gives both, unless the user insists
(``--insist``, or ``GANFORGE_INSIST=1``), in which case it only warns.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import torch

from .errors import UserError

INSIST_ENV = "GANFORGE_INSIST"


def human(n: float) -> str:
    """Bytes in the unit a person reads (1.5 GB, 200 TB)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"   # pragma: no cover


def available(device: Optional[torch.device] = None) -> Optional[int]:
    """Bytes that can be allocated now on ``device`` (None: the CPU); None where it cannot be told."""
    if device is not None and torch.device(device).type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:
            return None
    free = [v for v in (_meminfo(), _cgroup_room()) if v is not None]
    if free:
        return min(free)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _meminfo() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> Optional[int]:
    """What a container's memory limit (cgroup v2: memory.max less memory.current) leaves, if there is one."""
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int(open("/sys/fs/cgroup/memory.current").read()))
    except (OSError, ValueError):
        return None


def insisting() -> bool:
    return os.environ.get(INSIST_ENV, "") not in ("", "0")


def check(need: float, what: str, fix: str, device: Optional[torch.device] = None) -> None:
    """Refuse (``UserError``) when ``need`` bytes exceed what ``device`` has free: "WHAT needs about X of
    memory and this machine has Y free; FIX, or add --insist to try anyway". Insisting turns it into a warning."""
    free = available(device)
    if free is None or need <= free:
        return
    where = "this GPU has" if device is not None and torch.device(device).type == "cuda" else "this machine has"
    line = f"{what} needs about {human(need)} of memory and {where} {human(free)} free"
    if insisting():
        print(f"ganforge: warning: {line}; going on as asked (--insist)", file=sys.stderr)
        return
    raise UserError(f"{line}; {fix}, or add --insist to try anyway")


def tensor_bytes(n: float, shape, dtype_bytes: int = 4) -> float:
    """Bytes of ``n`` items of ``shape`` (float32 unless told); a float, so that absurd sizes do not overflow."""
    size = float(n) * dtype_bytes
    for s in shape:
        size *= float(s)
    return size
