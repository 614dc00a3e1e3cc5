"""Which torch device a run or a command uses: ``auto`` is the first CUDA GPU when there is one, else the CPU."""
from __future__ import annotations

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
