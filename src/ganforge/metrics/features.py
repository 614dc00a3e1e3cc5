"""The feature-extractor registry: a name becomes a network that turns images into features.

Every extractor is an :class:`Extractor`: it takes images as ganforge holds
them (float NCHW in [-1, 1], 1 or 3 channels, any size), prepares them by its
recorded ``protocol`` (resize, channel handling, normalisation) and returns
``(features (N, dim) float32, logits (N, C) float32 or None)``. Its
``weights_hash`` (first 12 hex digits of the SHA-256 of the weights file)
goes next to every number computed from it, as torch-fidelity's registry
(Obukhov et al. 2020) keys its caches.

Names: ``inception`` (Szegedy et al. 2016, the FID network of Heusel et al.
2017), ``efficientnet-lite0`` (Tan & Le 2019, ImageNet weights shipped in a
package), ``mnist`` (ganforge's own digit classifier). Any ``nn.Module`` that
maps images to (N, D) features can be wrapped with :func:`wrap_module`.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Optional

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


def _inception(**kw) -> Extractor:
    from .inception import build_inception
    return build_inception(**kw)


def _efficientnet(**kw) -> Extractor:
    from .efficientnet import build_efficientnet_lite0
    return build_efficientnet_lite0(**kw)


def _mnist(**kw) -> Extractor:
    from .mnist_net import build_mnist
    return build_mnist(**kw)


EXTRACTORS: dict[str, tuple[Callable[..., Extractor], str]] = {
    "inception": (_inception, "FID Inception-v3 (pt_inception-2015-12-05 weights file), 2,048-d pool3 + 1,008 logits"),
    "efficientnet-lite0": (_efficientnet, "EfficientNet-Lite0, ImageNet weights shipped in a package, 1,280-d"),
    "mnist": (_mnist, "ganforge's digit classifier (weights in the package), penultimate features + 10 logits"),
}


def get_extractor(name, **kw) -> Extractor:
    """The extractor a name (or module) stands for; options go to its builder."""
    if isinstance(name, nn.Module):
        return wrap_module(name)
    if name not in EXTRACTORS:
        raise UserError(f"unknown feature extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name][0](**kw)


def default_extractor(shape: tuple) -> str:
    """The offline default for images of this (C, H, W): mnist for one-channel 28x28 digits, else efficientnet-lite0."""
    return "mnist" if tuple(shape) == (1, 28, 28) else "efficientnet-lite0"

