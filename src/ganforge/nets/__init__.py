"""The model registry: a family name maps to its options and a builder.

A family is one file in this folder with an options dataclass (its config
keys under ``model.``) and ``build(shape, z_dim, options) -> (G, D)``. G maps
z of shape (N, z_dim) to samples of ``shape``; D maps samples to one raw
output per sample, shape (N,). Adding a family is one file and one line here.
A family's ``defaults`` are config values that choosing it sets unless the
preset or command line sets them (SNGAN: the hinge loss, spectral norm).
:func:`register_family` adds one from outside the package.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from torch import nn

from . import biggan, cyclegan, dcgan, mlp, pix2pix, r3gan, sngan, stylegan
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
    game: str = "gan"           # gan: G(z) against data; pair (pix2pix) and cycle (CycleGAN) translate images

    @property
    def supports_truncation(self) -> bool:
        return bool(self.truncation)


# Isola et al. and Zhu et al. (their shared code): Adam(2e-4, betas 0.5, 0.999), the rate constant for the first
# half of training and then decayed linearly to 0, no EMA; held-out pairs measure the translations
TRANSLATION_DEFAULTS = (("penalty", "none"), ("optim.g.lr", 2e-4), ("optim.d.lr", 2e-4), ("optim.g.beta1", 0.5),
                        ("optim.d.beta1", 0.5), ("optim.g.beta2", 0.999), ("optim.d.beta2", 0.999),
                        ("ema.enabled", False), ("data.holdout", 0.1), ("optim.schedule", "linear"),
                        ("optim.decay_start", 0.5))

# Huang et al. 2024 (R3GAN): RpGAN with gamma/2 (R1 + R2) on every D step, Adam with beta1 0 (beta2 0.99: the end
# of their 0.9 -> 0.99 ramp), 2e-4 (the start of their decay to 5e-5) for both nets
R3GAN_DEFAULTS = (("loss", "relativistic"), ("penalty", "r1+r2"), ("penalty.every", 1), ("optim.g.lr", 2e-4),
                  ("optim.d.lr", 2e-4), ("optim.g.beta1", 0.0), ("optim.d.beta1", 0.0), ("optim.g.beta2", 0.99),
                  ("optim.d.beta2", 0.99))

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
    "r3gan": Family(r3gan.R3GANOptions, r3gan.build, convolutional=True, native_conditional=True,
                    defaults=R3GAN_DEFAULTS),
    "pix2pix": Family(pix2pix.Pix2PixOptions, pix2pix.build, convolutional=True, game="pair",
                      defaults=TRANSLATION_DEFAULTS),
    "cyclegan": Family(cyclegan.CycleGANOptions, cyclegan.build, convolutional=True, game="cycle",
                       defaults=(("loss", "least-squares"), *TRANSLATION_DEFAULTS)),
}


def build_nets(model_cfg, shape: tuple, classes: int = 0, shape_a: tuple = ()) -> tuple[nn.Module, nn.Module]:
    """G and D for data of ``shape`` ((C, H, W) images or (d,) vectors); with ``model.conditional``,
    G(z, y) and D(x, y) over ``classes`` labels (nets.conditional). An image-to-image family (pix2pix,
    cyclegan) maps images of ``shape_a`` (domain A) to ``shape``."""
    family = FAMILIES[model_cfg.name]
    if family.game != "gan":
        if not shape_a:
            raise UserError(f"model={model_cfg.name} translates images: choose image-to-image data "
                            "(ganforge data list: a task such as edges2digits, or pairs:PATH, unpaired:PATH)")
        if model_cfg.conditional:
            raise UserError(f"model={model_cfg.name} is conditioned on its input image: model.conditional does "
                            "not apply")
        G, D = family.build(tuple(shape), tuple(shape_a), model_cfg.arch)
        if model_cfg.spectral_norm:
            apply_spectral_norm(D)
        G.z_dim, G.n_classes = 0, 0
        return G, D
    if shape_a:
        raise UserError(f"this data is image-to-image (an input domain A beside the images): train it with "
                        f"model=pix2pix (paired) or model=cyclegan, not {model_cfg.name}")
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


def register_family(name: str, family: Family) -> Family:
    """Add a network family under ``name`` (or replace the one of that name): ``family.options`` is a dataclass
    of its config keys (fields made with ganforge.schema.opt), ``family.build(shape, z_dim, options) -> (G, D)``.
    ``model=name`` then trains it and its options become ``model.*`` keys."""
    if not name or "=" in name or "." in name:
        raise ValueError(f"a family needs a plain name, got {name!r}")
    if not dataclasses.is_dataclass(family.options):
        raise TypeError(f"family {name}: options must be a dataclass of its config keys")
    FAMILIES[name] = family
    return family


def option_names(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(FAMILIES[name].options)]
