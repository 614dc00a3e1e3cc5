"""The feature-extractor registry: a name becomes a network that turns images into features.

Every extractor is an :class:`Extractor` (metrics.extractor): it takes images
as ganforge holds them (float NCHW in [-1, 1], 1 or 3 channels, any size),
prepares them by its recorded ``protocol`` (resize, channel handling,
normalisation) and returns ``(features (N, dim) float32, logits (N, C)
float32 or None)``. Its
``weights_hash`` (first 12 hex digits of the SHA-256 of the weights file)
goes next to every number computed from it, as torch-fidelity's registry
(Obukhov et al. 2020) keys its caches.

Names: ``inception`` (Szegedy et al. 2016, the FID network of Heusel et al.
2017), ``efficientnet-lite0`` (Tan & Le 2019, ImageNet weights shipped in a
package), ``mnist`` (ganforge's own digit classifier), ``dinov2`` (Oquab et al.
2024, the ViT-L/14 of FD_DINOv2 in Stein et al. 2023 and EDM2), ``clip`` (Radford et al.
2021, the ViT image tower whose L2-normalised embeddings CMMD of Jayasumana et al. 2024 and FD_CLIP use). Any ``nn.Module`` that
maps images to (N, D) features can be wrapped with :func:`wrap_module`.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import UserError
from .extractor import Extractor, ModuleExtractor, file_hash, state_hash, wrap_module  # noqa: F401


def _inception(**kw) -> Extractor:
    from .inception import build_inception
    return build_inception(**kw)


def _efficientnet(**kw) -> Extractor:
    from .efficientnet import build_efficientnet_lite0
    return build_efficientnet_lite0(**kw)


def _dinov2(**kw) -> Extractor:
    from .dinov2 import build_dinov2
    return build_dinov2(**kw)


def _clip(**kw) -> Extractor:
    from .clip import build_clip
    return build_clip(**kw)


def _mnist(**kw) -> Extractor:
    from .mnist_net import build_mnist
    return build_mnist(**kw)


EXTRACTORS: dict[str, tuple[Callable[..., Extractor], str]] = {
    "inception": (_inception, "FID Inception-v3 (pt_inception-2015-12-05 weights file), 2,048-d pool3 + 1,008 logits"),
    "efficientnet-lite0": (_efficientnet, "EfficientNet-Lite0, ImageNet weights shipped in a package, 1,280-d"),
    "mnist": (_mnist, "ganforge's digit classifier (weights in the package), penultimate features + 10 logits"),
    "dinov2": (_dinov2, "DINOv2 ViT-L/14 (dinov2_vitl14_pretrain.pth weights file), 1,024-d final-norm CLS token, for FD_DINOv2"),
    "clip": (_clip, "CLIP ViT image tower (OpenAI's ViT-L-14-336px.pt or an open_clip ViT file), L2-normalised embedding, "
                    "for CMMD and FD_CLIP"),
}


def register_extractor(name: str, build: Callable[..., Extractor], description: str = "") -> None:
    """Add a feature extractor under ``name`` (or replace the one of that name): ``build(**options)`` returns an
    :class:`Extractor` (or any ``nn.Module`` mapping images to (N, D) features, wrapped by :func:`wrap_module`).
    From then on ``eval.features=name`` and ``--features name`` use it."""
    EXTRACTORS[name] = (lambda **kw: wrap_module(build(**kw), name), description)


def names() -> list[str]:
    """The registered extractors' names (the choices of eval.features and --features)."""
    return list(EXTRACTORS)


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

