"""The model registry: a family name maps to its options and a builder.

A family is one file in this folder with an options dataclass (its config
keys under ``model.``) and ``build(shape, z_dim, options) -> (G, D)``. G maps
z of shape (N, z_dim) to samples of ``shape``; D maps samples to one raw
output per sample, shape (N,). Adding a family is one file and one line here.
A family's ``defaults`` are config values that choosing it sets unless the
preset or command line sets them (SNGAN: the hinge loss, spectral norm).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from torch import nn

from . import biggan, dcgan, mlp, sngan, stylegan
from ..errors import UserError
from .conditional import Conditioning, build_conditional
from .layers import apply_spectral_norm


@dataclass(frozen=True)
class Family:
    options: type
    build: Callable
    convolutional: bool
    truncation: str = ""        # "z": sampling draws truncated normal z; "w": G(z, truncation=psi) pulls w to its mean
    defaults: tuple = ()        # (dotted key, value) pairs
    native_conditional: bool = False   # G takes labels itself: build(..., classes=C)

    @property
    def supports_truncation(self) -> bool:
        return bool(self.truncation)


FAMILIES: dict[str, Family] = {
    "mlp": Family(mlp.MLPOptions, mlp.build, convolutional=False),
    "dcgan": Family(dcgan.DCGANOptions, dcgan.build, convolutional=True),
    "sngan": Family(sngan.SNGANOptions, sngan.build, convolutional=True,
                    defaults=(("loss", "hinge"), ("model.spectral_norm", True))),
    "biggan": Family(biggan.BigGANOptions, biggan.build, convolutional=True, truncation="z", native_conditional=True,
                     defaults=(("loss", "hinge"), ("model.spectral_norm", True), ("model.g_spectral_norm", True))),
    "stylegan": Family(stylegan.StyleGANOptions, stylegan.build, convolutional=True, truncation="w",
                       native_conditional=True,
                       defaults=(("penalty.every", 16), ("optim.g.lr", 0.0025), ("optim.d.lr", 0.0025))),
}


def build_nets(model_cfg, shape: tuple, classes: int = 0) -> tuple[nn.Module, nn.Module]:
    """G and D for data of ``shape`` ((C, H, W) images or (d,) vectors); with ``model.conditional``,
    G(z, y) and D(x, y) over ``classes`` labels (nets.conditional)."""
    family = FAMILIES[model_cfg.name]
    if model_cfg.conditional:
        if classes < 2:
            raise UserError("model.conditional=true needs labelled data with at least 2 classes "
                            "(image folders: data.labels=true with one sub-folder per class)")
        if getattr(model_cfg.arch, "pack", 1) > 1:
            raise UserError("model.conditional=true does not combine with PacGAN packing (model.pack)")
        c = Conditioning(classes, model_cfg.g_cond, model_cfg.d_cond, model_cfg.embed_dim)
        G, D = build_conditional(family.build, tuple(shape), model_cfg.z_dim, model_cfg.arch, c,
                                 native_g=family.native_conditional)
    else:
        G, D = family.build(tuple(shape), model_cfg.z_dim, model_cfg.arch)
    if model_cfg.spectral_norm:
        apply_spectral_norm(D)
    if model_cfg.g_spectral_norm:
        apply_spectral_norm(G)
    G.z_dim = model_cfg.z_dim
    G.n_classes = classes if model_cfg.conditional else 0
    return G, D


def option_names(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(FAMILIES[name].options)]
