"""R3GAN: a modern residual G and D without normalization, for the regularized relativistic loss.

Huang, Gokaslan, Kuleshov & Tompkin 2024, "The GAN is dead; long live the
GAN! A Modern GAN Baseline" (NeurIPS 2024; their code: github.com/brownvc/R3GAN,
R3GAN/Networks.py). The paper pairs these nets with RpGAN (``loss=relativistic``)
and gamma/2 (R1 + R2) (``penalty=r1+r2``, ``penalty.weight`` = gamma), the
defaults this family sets.

- Residual block (an inverted bottleneck with ResNeXt's grouped conv): x + conv1x1(act(gconv3x3(act(conv1x1(x))))); the first 1x1
  widens the channels ``expansion`` times, the 3x3 is grouped in groups of ``group_width`` channels
  (cardinality = width * expansion / group_width), the last 1x1 narrows back; leaky ReLU (0.2) after a
  bias; no normalization layer of any kind anywhere in G or D.
- Fix-up initialisation (Zhang et al. 2019), as the official code: every weight N(0, gain / sqrt(fan_in));
  in a block the two first layers take gain sqrt(2 / (1 + 0.2^2)) * L^(-1/4), L the number of blocks in
  the whole net (the -1/(2m - 2) power of L for m = 3 layers a branch), and the last layer of every
  residual branch is zero, so that each block starts as the identity; biases start at zero.
- A stage per resolution, ``blocks`` blocks each; G's transition layer is a 1x1 conv (where the width
  changes) then 2x bilinear upsampling, D's is 2x downsampling that low-pass filters (antialiased bilinear:
  the [1, 3, 3, 1] / 8 filter, then every second sample) then the 1x1 conv. The official code builds the
  same [1, 3, 3, 1] kernel from its [1, 2, 1] and runs upfirdn2d with it: up, that is bilinear
  interpolation; down, it filters before it decimates.
- G's basis: a learned s x s constant whose channels are scaled by a linear map of z (the official
  GenerativeBasis); its image is a 1x1 conv of the last stage. D: a 1x1 conv from the image, the stages,
  and its basis: a depthwise s x s conv to one vector per sample and a linear layer to the logit.
- Widths: ``width`` channels at every stage up to ``halve_above`` px, halved at each doubling above it
  (the paper: 768 up to 32 px, then 384, 192, 96 for FFHQ).
- Class conditioning: G joins z with a learned embedding of the class (of z's size, as the official
  code's ConditionEmbeddingDimension = NoiseDimension); D is the shared projection D of nets.conditional on
  its basis vector (``model.d_cond=projection``).

Sides are s * 2^k with s in {4, 7}, as every convolutional family here: 28 px digits have a 7 x 7 basis,
32 and 64 px and up a 4 x 4 one. What differs from the official code, and why:

- resampling at the borders follows torch's bilinear interpolation (up: the edge sample repeated; down: the
  filter renormalized over the samples inside) where upfirdn2d pads with zeros; the resampling is built from
  slices and weighted sums (nets.exact) so that its backward is deterministic on a GPU;
- the conditional D adds the unconditional head to the projection (Miyato & Koyama's form, the one every
  family here shares) where the official D has the projection alone: <W phi(x), e(y)>;
- the biases sit in the convolutions before the activations rather than in a fused bias-and-activation
  (the same function); no per-stage bf16, which ganforge's ``precision`` decides for the whole run;
- ``g_output=tanh`` can end G in tanh as the StyleGAN2 family can; the official G is linear, as this
  default, and ``eval()`` clamps a linear G's samples to [-1, 1]. On the MNIST digits the linear G left a
  grey background and the tanh G scored better (the mnist-r3gan preset's notes).

The family's defaults are small (64 channels); the paper's nets are ``model.width=768`` (about 20.7M weights
in G at 32 px, 22.4M at 64 px with z of 64). The CPU preset mnist-r3gan narrows the 14 and 28 px stages
(``model.halve_above=7``) and applies R1 and R2 lazily (``penalty.every=4``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..schema import opt
from .conditional import lookup
from .dcgan import plan
from .exact import down_bilinear, up_bilinear

SLOPE = 0.2
ACT_GAIN = math.sqrt(2 / (1 + SLOPE ** 2))


@dataclass
class R3GANOptions:
    width: int = opt(64, "channels of every stage of G and D up to model.halve_above px (the paper: 768)", min=1)
    halve_above: int = opt(32, "stages at sides above this have half the channels of the stage before (the "
                           "paper: 32)", min=4)
    blocks: int = opt(2, "residual blocks per stage, one stage per resolution (the paper: 2)", min=1)
    expansion: int = opt(2, "inverted bottleneck: a block's first 1x1 conv widens its channels this many times "
                         "(the paper: 2)", min=1)
    group_width: int = opt(16, "channels per group of a block's grouped 3x3 conv: cardinality = width x expansion / "
                           "group_width (the paper: 16; 32 on ImageNet)", min=1)
    g_output: str = opt("linear", "G's output: linear (the paper's; clamped to [-1, 1] for viewing) or tanh",
                        choices=("linear", "tanh"))


def stages(side: int, o: R3GANOptions) -> tuple[int, list[int]]:
    """(basis size s, channels per stage from s x s to side x side)."""
    s, k = plan(side, "r3gan")
    out = []
    for i in range(k + 1):
        size, halvings = s << i, 0
        while size > o.halve_above:
            size, halvings = size // 2, halvings + 1
        out.append(max(1, o.width >> halvings))
    return s, out


def cardinality(channels: int, group_width: int) -> int:
    """Groups of the 3x3 conv: channels / group_width, or the largest divisor of channels below it."""
    want = max(1, channels // group_width)
    return max(d for d in range(1, want + 1) if channels % d == 0)


def msr_(weight: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """N(0, gain / sqrt(fan_in)) in place (He et al. 2015; the official MSRInitializer); gain 0: zeros."""
    fan_in = weight[0].numel()
    with torch.no_grad():
        return weight.normal_(0.0, gain / math.sqrt(fan_in)) if gain else weight.zero_()


class Block(nn.Module):
    """x + the inverted-bottleneck branch (1x1 widen, grouped 3x3, 1x1 narrow; leaky ReLU after each bias)."""

    def __init__(self, channels: int, expansion: int, group_width: int, total_blocks: int):
        super().__init__()
        wide = channels * expansion
        self.widen = nn.Conv2d(channels, wide, 1)
        self.conv = nn.Conv2d(wide, wide, 3, padding=1, groups=cardinality(wide, group_width))
        self.narrow = nn.Conv2d(wide, channels, 1, bias=False)
        gain = ACT_GAIN * total_blocks ** (-1 / 4)
        for layer in (self.widen, self.conv):
            msr_(layer.weight, gain)
            nn.init.zeros_(layer.bias)
        msr_(self.narrow.weight, 0.0)                   # fix-up: the branch starts at 0, the block as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.widen(x), SLOPE)
        y = F.leaky_relu(self.conv(y), SLOPE)
        return x + self.narrow(y)


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    layer = nn.Conv2d(cin, cout, 1, bias=False)
    msr_(layer.weight)
    return layer


class Up(nn.Module):
    """G's transition: a 1x1 conv where the width changes, then 2x bilinear upsampling."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv1x1(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return up_bilinear(x if self.conv is None else self.conv(x))


class Down(nn.Module):
    """D's transition: 2x downsampling through bilinear's [1, 3, 3, 1] low-pass filter, then a 1x1 conv where
    the width changes."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv1x1(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = down_bilinear(x)
        return x if self.conv is None else self.conv(x)


class R3Generator(nn.Module):
    def __init__(self, z_dim: int, channels: int, side: int, o: R3GANOptions, classes: int = 0):
        super().__init__()
        s, ch = stages(side, o)
        total = o.blocks * len(ch)
        self.z_dim, self.tanh = z_dim, o.g_output == "tanh"
        self.embed = nn.Embedding(classes, z_dim) if classes else None
        if self.embed is not None:
            msr_(self.embed.weight.t())                 # as a linear map of the one-hot label: std 1 / sqrt(classes)
        self.basis = nn.Parameter(torch.randn(ch[0], s, s))
        self.project = nn.Linear(z_dim * (2 if classes else 1), ch[0], bias=False)
        msr_(self.project.weight)
        self.stages = nn.ModuleList()
        for i, c in enumerate(ch):
            layers = [] if i == 0 else [Up(ch[i - 1], c)]
            self.stages.append(nn.Sequential(*layers, *[Block(c, o.expansion, o.group_width, total)
                                                        for _ in range(o.blocks)]))
        self.to_image = conv1x1(ch[-1], channels)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], -1)
        if self.embed is not None:
            if y is None:
                raise RuntimeError("a class-conditional R3GAN generator was called without labels")
            z = torch.cat([z, lookup(self.embed, y).to(z.dtype)], 1)
        x = self.basis[None].to(z.dtype) * self.project(z)[:, :, None, None]
        for stage in self.stages:
            x = stage(x)
        img = self.to_image(x)
        if self.tanh:
            return torch.tanh(img)
        return img if self.training else img.clamp(-1, 1)


class R3Discriminator(nn.Module):
    def __init__(self, channels: int, side: int, o: R3GANOptions):
        super().__init__()
        s, ch = stages(side, o)
        ch = ch[::-1]                                   # from the image side
        total = o.blocks * len(ch)
        self.from_image = conv1x1(channels, ch[0])
        self.stages = nn.ModuleList(
            nn.Sequential(*[Block(c, o.expansion, o.group_width, total) for _ in range(o.blocks)],
                          *([Down(c, ch[i + 1])] if i + 1 < len(ch) else []))
            for i, c in enumerate(ch))
        self.basis = nn.Conv2d(ch[-1], ch[-1], s, groups=ch[-1], bias=False)      # depthwise s x s: one vector
        msr_(self.basis.weight)
        self.out = nn.Linear(ch[-1], 1, bias=False)
        msr_(self.out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The basis vector of each sample (N, channels); a projection D takes its inner product with the label."""
        h = self.from_image(x)
        for stage in self.stages:
            h = stage(h)
        return self.basis(h).flatten(1)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(h).flatten()

    def block_list(self) -> list:
        """One stage per resolution from the input side, the first with the 1x1 conv from the image (FreezeD,
        nets.transfer); the s x s stage with the basis and the linear layer is the head."""
        return [nn.ModuleList([self.from_image, self.stages[0]]), *self.stages[1:-1]]


def build(shape: tuple, z_dim: int, o: R3GANOptions, classes: int = 0):
    if len(shape) != 3 or shape[1] != shape[2]:
        raise UserError(f"model r3gan needs square images, got samples of shape {tuple(shape)}")
    c, side, _ = shape
    return R3Generator(z_dim, c, side, o, classes), R3Discriminator(c, side, o)
