"""Class-conditional G and D around any family's nets.

- G by concatenation: a learned label embedding joins z at G's input
  (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets").
- G by conditional batch norm: every batch norm of G normalizes without
  its own scale and shift and takes a per-class gain and bias instead
  (de Vries et al. 2017; Dumoulin et al. 2017; the generator of Miyato &
  Koyama 2018 and BigGAN, Brock et al. 2019).
- D by concatenation: the one-hot label joins the input, as extra channels
  of constant maps for images (Mirza & Osindero 2014).
- D by projection: D(x, y) = head(phi(x)) + <embed(y), pool(phi(x))>, the
  projection discriminator of Miyato & Koyama 2018, "cGANs with Projection
  Discriminator".
- D with an auxiliary classifier: a linear class head on the flattened
  phi(x) beside the real/fake output, trained with cross-entropy on real and fake labels
  (Odena, Olah & Shlens 2017, ACGAN).

A family's D exposes ``features(x)`` (phi, the activations before its last
layer) and ``head(h)`` (that last layer, one output per sample) for the
projection and the auxiliary classifier; concatenation needs nothing from
the family. Labels are int64 class indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

G_MODES = ("concat", "cbn")
D_MODES = ("projection", "concat", "acgan")


@dataclass(frozen=True)
class Conditioning:
    classes: int
    g: str = "cbn"              # concat | cbn
    d: str = "projection"       # projection | concat | acgan
    embed_dim: int = 32         # label embedding joined to z (g=concat)


def lookup(table: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` for int labels (N,), or their mixtures for class weights (N, C): soft labels
    give class interpolation (G only; weights y @ table)."""
    return table(y) if not y.is_floating_point() else y.to(table.weight.dtype) @ table.weight


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up from the label (set by :class:`ConditionalG`)."""

    def __init__(self, bn: nn.BatchNorm2d, classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(bn.num_features, bn.eps, bn.momentum, affine=False)
        self.gain = nn.Embedding(classes, bn.num_features)
        self.bias = nn.Embedding(classes, bn.num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)
        self.label: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.label
        if y is None:
            raise RuntimeError("a conditional generator was called without labels")
        return self.bn(x) * lookup(self.gain, y)[:, :, None, None] + lookup(self.bias, y)[:, :, None, None]


def _swap_batchnorm(module: nn.Module, classes: int) -> list:
    out = []
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            cbn = ConditionalBatchNorm2d(child, classes)
            setattr(module, name, cbn)
            out.append(cbn)
        else:
            out += _swap_batchnorm(child, classes)
    return out


class ConditionalG(nn.Module):
    """G(z, y): ``base`` conditioned by label embedding at the input or by conditional batch norm.
    y: int64 labels (N,), or class weights (N, C) that mix the classes' embeddings."""

    def __init__(self, base: nn.Module, c: Conditioning):
        super().__init__()
        self.base, self.n_classes, self.mode = base, c.classes, c.g
        if c.g == "concat":
            self.embed = nn.Embedding(c.classes, c.embed_dim)
            self._cbn = []
        else:
            self._cbn = _swap_batchnorm(base, c.classes)   # a plain list: deepcopy (EMA) maps it to the copies

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.mode == "concat":
            return self.base(torch.cat([z, lookup(self.embed, y).to(z.dtype)], 1))
        for m in self._cbn:               # the current labels, for every conditional batch norm
            m.label = y
        try:
            return self.base(z)
        finally:
            for m in self._cbn:
                m.label = None


def one_hot_input(x: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    """x with the one-hot label appended: as constant channels for images, as features for vectors."""
    h = F.one_hot(y, classes).to(x.dtype)
    if x.dim() == 4:
        h = h[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return torch.cat([x, h.contiguous(memory_format=torch.channels_last)
                          if x.is_contiguous(memory_format=torch.channels_last) else h], 1)
    return torch.cat([x.reshape(x.shape[0], -1), h], 1)


def pool(h: torch.Tensor) -> torch.Tensor:
    """Sum over space of a feature map (as SNGAN's projection D); vectors stay as they are."""
    return h.flatten(2).sum(2) if h.dim() == 4 else h.reshape(h.shape[0], -1)


class ConditionalD(nn.Module):
    """D(x, y): the real/fake output given the label; with ``with_classes``, also class logits (ACGAN)."""

    def __init__(self, base: nn.Module, c: Conditioning, width: int):
        super().__init__()
        self.base, self.n_classes, self.mode = base, c.classes, c.d
        if c.d == "projection":
            self.embed = nn.Embedding(c.classes, width)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        elif c.d == "acgan":
            self.classify = nn.Linear(width, c.classes)      # on the flattened features, as Odena et al.'s FC

    def forward(self, x: torch.Tensor, y: torch.Tensor, with_classes: bool = False):
        cls = None
        if self.mode == "concat":
            out = self.base(one_hot_input(x, y, self.n_classes))
        else:
            h = self.base.features(x)
            out = self.base.head(h)
            if self.mode == "projection":
                out = out + (self.embed(y).to(h.dtype) * pool(h)).sum(1)
            else:
                cls = self.classify(h.flatten(1))
        return (out, cls) if with_classes else out

    def block_list(self):
        """The family's D's blocks (FreezeD, nets.transfer), None without them; the label's layers are the head's."""
        inner = getattr(self.base, "block_list", None)
        return inner() if callable(inner) else None


def feature_width(D: nn.Module, shape: tuple, flat: bool = False) -> int:
    """Channels (or units) of ``D.features`` for samples of ``shape`` (``flat``: all its values), found by
    one tiny forward pass."""
    with torch.no_grad():
        was = D.training
        D.eval()
        h = D.features(torch.zeros(1, *shape))
        D.train(was)
    return h.flatten(1).shape[1] if flat else pool(h).shape[1]


def build_conditional(build, shape: tuple, z_dim: int, options, c: Conditioning,
                      native_g: bool = False) -> tuple[nn.Module, nn.Module]:
    """The conditional pair from a family's ``build(shape, z_dim, options) -> (G, D)``: G is built with
    room for the label embedding (g=concat), D for the label channels or features (d=concat).
    ``native_g``: the family's G takes labels itself (``build(..., classes=C)`` gives G(z, y); BigGAN)."""
    if native_g:
        G, D = build(shape, z_dim, options, classes=c.classes)
    else:
        G, D = build(shape, z_dim + (c.embed_dim if c.g == "concat" else 0), options)
    if c.d == "concat":
        grown = (shape[0] + c.classes, *shape[1:])
        D = build(grown, z_dim, options)[1]
        width = 0
    else:
        if not hasattr(D, "features"):
            raise UserError(f"this model's D has no feature layer for model.d_cond={c.d}; use model.d_cond=concat")
        width = feature_width(D, shape, flat=c.d == "acgan")
    if native_g:
        return G, ConditionalD(D, c, width)
    G = ConditionalG(G, c)
    if c.g == "cbn" and not G._cbn:
        raise UserError("model.g_cond=cbn needs batch norm in G (DCGAN with g_norm=batch); use model.g_cond=concat")
    return G, ConditionalD(D, c, width)
