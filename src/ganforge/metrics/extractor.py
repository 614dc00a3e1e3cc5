"""The base of every feature extractor, a wrapper for any module, and the hashes that name their weights.

An :class:`Extractor` takes images as ganforge holds them (float NCHW in
[-1, 1], 1 or 3 channels, any size), prepares them by its recorded
``protocol`` and returns ``(features (N, dim) float32, logits (N, C) float32
or None)``; ``describe()`` is written next to every number computed from it.
:func:`load_weights` reads a weights file into a network with one line for
each way that fails. The registry of names is metrics.features.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import UserError


class Extractor(nn.Module):
    """Base class: subclasses set ``name``, ``dim``, ``protocol``, ``weights_hash`` and define ``forward``."""

    name: str = "?"
    dim: int = 0
    protocol: str = ""
    weights_hash: str = ""
    has_logits: bool = False
    fd_name: str = "FID"          # what the Fréchet distance in these features is called (dinov2: FD_DINOv2)

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, mode: bool = True):
        """Always in eval mode: an extractor is a fixed function (batch-norm statistics and dropout frozen)."""
        return super().train(False)

    def describe(self) -> dict:
        """What produced a number: written next to it in every JSON file."""
        return {"extractor": self.name, "dim": self.dim, "protocol": self.protocol, "weights_hash": self.weights_hash}


class ModuleExtractor(Extractor):
    """A user's ``nn.Module`` (images -> (N, D) features), used as it is."""

    def __init__(self, module: nn.Module, name: str = "custom", protocol: str = "as given", logits: Optional[nn.Module] = None):
        super().__init__()
        self.module, self.head = module, logits
        self.name, self.protocol, self.has_logits = name, protocol, logits is not None
        self.weights_hash = state_hash(module.state_dict())
        self.dim = 0                                   # known after the first batch

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        f = self.module(x)
        if f.dim() != 2:
            f = f.flatten(1)
        self.dim = f.shape[1]
        return f.float(), (self.head(f).float() if self.head is not None else None)


def wrap_module(module: nn.Module, name: str = "custom", protocol: str = "as given") -> Extractor:
    """An :class:`Extractor` from any module; an Extractor is returned unchanged."""
    return module if isinstance(module, Extractor) else ModuleExtractor(module, name, protocol)


def file_hash(path, n: int = 12) -> str:
    """First ``n`` hex digits of the SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


def state_hash(state: dict, n: int = 12) -> str:
    """First ``n`` hex digits of a SHA-256 over a state dict's names and values."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        h.update(k.encode())
        if isinstance(v, Tensor):
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                     if v.numel() else b"")
    return h.hexdigest()[:n]


def find_file(given, flag: str, env_var: str, places, what: str, missing: str) -> Path:
    """A weights file, never downloaded: ``given`` (named ``flag`` in messages), else $``env_var``, else the
    first of ``places`` that exists. A given path that is no file is one line naming ``what`` the file is;
    none found is the line ``missing``. The one lookup of the inception, dinov2 and clip extractors."""
    for value, name in ((given, flag), (os.environ.get(env_var) or None, env_var)):
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise UserError(f"{name} {str(path)!r}: no such file ({what})")
            return path
    for place in places:
        if place.is_file():
            return place
    raise UserError(missing)


def check_layout(state: dict, want: dict, bad: str) -> None:
    """The tensor names and shapes of ``state`` against ``want`` ({name: shape}); a missing, extra or misshapen
    tensor is one line beginning with ``bad`` (what the file is not)."""
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or extra:
        raise UserError(f"{bad}: {len(missing)} tensors missing (e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]})")
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(s)}" for k, s in want.items() if state[k].shape != s]
    if wrong:
        raise UserError(f"{bad}: {len(wrong)} tensors have the wrong shape, e.g. {wrong[0]}")


def hub_checkpoints() -> Path:
    """The torch hub cache's checkpoints folder, where torch.hub, pytorch-fid and torch-fidelity put weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_weights(net: nn.Module, path: Path, what: str, fix: str, to_float: bool = False) -> nn.Module:
    """``net`` with the state dict in ``path`` (strictly; read without unpickling code); ``what`` names the weights
    and ``fix`` says how to get good ones, in the one line a missing, unreadable or misfitting file gives."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:                                  # a corrupt or foreign file: say which
        raise UserError(f"cannot read the {what} weights {path} ({type(e).__name__}); {fix}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state dict of the {what} weights; {fix}")
    if to_float:
        state = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"the {what} weights {path} do not fit the network ({first}); {fix}") from None
    return net
