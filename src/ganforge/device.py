"""Which torch device a run or a command uses (``auto`` is the first CUDA GPU when there is one, else the CPU), and
what the CPU is: its model name and feature flags, read once from /proc/cpuinfo."""
from __future__ import annotations

import platform
from functools import lru_cache

import torch

from .errors import UserError


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={spec} but no CUDA GPU is available here; use device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"device={spec} but only {torch.cuda.device_count()} CUDA devices exist")
    elif dev.type != "cpu":
        raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    return dev


@lru_cache(maxsize=None)
def cpu_info() -> tuple[str, frozenset]:
    """(the CPU's model name, its feature flags) from /proc/cpuinfo; ("", {}) where there is none."""
    name, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name, flags


def cpu_name() -> str:
    """The CPU's model name, or what the platform module knows of it where /proc/cpuinfo does not say."""
    return cpu_info()[0] or platform.processor() or platform.machine()
