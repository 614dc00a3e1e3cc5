"""pix2pix networks: the U-Net generator and the PatchGAN discriminator.

Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with Conditional
Adversarial Networks", section 3.2 and appendix 6.1.

- U-Net G: an encoder of 4x4 stride-2 convolutions (C64-C128-C256-C512-...,
  leaky ReLU 0.2, batch norm except on the first and the innermost layer)
  down to 1x1, as the paper's 256 px net: a side that is not a power of two
  is first padded by reflection to the next one (28 px: 2 px each side, 5
  levels) and the output cropped back; ``pad=False`` instead stops at the
  first odd side (7x7 at 28 px: 2 levels, a receptive field too small to
  see a whole digit). Then a decoder of 4x4 stride-2 transposed convolutions (ReLU,
  batch norm) where each layer takes the previous decoder output joined
  with the encoder output of the same size (the skips), ending in tanh;
  ``skips=False`` is the paper's encoder-decoder ablation.
  Dropout 0.5 on the three decoder layers after the innermost one (in a net
  too shallow to have them, such as 28 px: every decoder layer but the last)
  is G's only noise, and it stays on at test time as in the paper
  (``dropout_at_test``).
- PatchGAN D: C64-C128-C256-C512 (4x4 convolutions, stride 2 except the last,
  leaky ReLU 0.2, batch norm except on the first), then a 4x4 convolution to
  one channel: one real/fake logit per overlapping patch. Its input is the
  pair (condition, image) joined on channels; CycleGAN (Zhu et al. 2017)
  uses the same D on one image, with instance norm. With ``layers`` = 3 each logit
  sees a 70x70 patch (1: 16x16, 2: 34x34), the receptive field test checks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..schema import opt
from .exact import reflect_pad
from .layers import dcgan_init


def unet_depth(side: int, most: int = 8) -> int:
    """Stride-2 halvings of ``side`` while it stays even (at most ``most``), or UserError."""
    k = 0
    while side % 2 == 0 and side > 1 and k < most:
        side //= 2
        k += 1
    if k < 2:
        raise UserError(f"the U-Net needs an image side divisible by 4, got {side}")
    return k


def receptive_field(layers: int) -> int:
    """Side of the input patch one PatchGAN logit sees: 4x4 kernels, ``layers`` stride-2 ones then two stride-1."""
    r = 1
    for stride in [1, 1] + [2] * layers:           # walked from the output back to the input
        r = (r - 1) * stride + 4
    return r


class UNetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, side: int, width: int = 64, max_width: int = 512,
                 dropout: float = 0.5, dropout_at_test: bool = True, skips: bool = True, pad: bool = True):
        super().__init__()
        full = 1 << (side - 1).bit_length() if pad else side          # the next power of two
        self.margin = ((full - side) // 2, full - side - (full - side) // 2)
        k = self.depth = unet_depth(full)
        w = [min(width * 2 ** i, max_width) for i in range(k)]
        self.down = nn.ModuleList()
        for i in range(k):
            cin = in_channels if i == 0 else w[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(cin, w[i], 4, 2, 1, bias=i in (0, k - 1)))
            if 0 < i < k - 1:
                layers.append(nn.BatchNorm2d(w[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()                  # up[i] undoes down[i]
        for i in range(k):
            cin = w[i] if i == k - 1 or not skips else 2 * w[i]
            cout = out_channels if i == 0 else w[i - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=i == 0)]
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            self.up.append(nn.Sequential(*layers))
        # the three decoder layers after the innermost one; a net too shallow to have them: all but the last
        self.dropped = {i for i in range(k - 4, k - 1) if i > 0} or set(range(1, k))
        self.p, self.at_test, self.skips = dropout, dropout_at_test, skips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.margin
        if lo or hi:
            x = reflect_pad(x, lo, hi)
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for i in range(len(self.up) - 1, -1, -1):
            if i < len(self.up) - 1 and self.skips:
                x = torch.cat([x, skips[i]], 1)
            x = self.up[i](x)
            if i in self.dropped and self.p > 0:
                x = nn.functional.dropout(x, self.p, training=self.training or self.at_test)
        if lo or hi:
            x = x[..., lo:x.shape[-2] - hi, lo:x.shape[-1] - hi]
        return torch.tanh(x)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """pix2pix's batch norm, or CycleGAN's instance norm (no affine parameters, no running statistics)."""
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels)


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int, width: int = 64, layers: int = 3, max_width: int = 512,
                 norm: str = "batch"):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for i in range(1, layers + 1):
            cout = min(width * 2 ** i, max_width)
            mods += [nn.Conv2d(c, cout, 4, 2 if i < layers else 1, 1, bias=norm != "batch"), norm_layer(norm, cout),
                     nn.LeakyReLU(0.2)]
            c = cout
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        """Logits (N, 1, h, w), one per patch of the images joined on channels: pix2pix's D(condition, image),
        CycleGAN's D(image)."""
        return self.net(torch.cat(images, 1) if len(images) > 1 else images[0])


@dataclass
class Pix2PixOptions:
    g_width: int = opt(64, "channels of the U-Net's first layer (doubling with depth)", min=1)
    max_width: int = opt(512, "cap on the channels of any layer", min=1)
    dropout: float = opt(0.5, "dropout in the decoder layers after the innermost: G's noise", min=0.0, lt=1.0)
    dropout_at_test: bool = opt(True, "keep that dropout on when translating, as the paper does")
    skips: bool = opt(True, "U-Net skip connections; false: the paper's encoder-decoder ablation")
    pad: bool = opt(True, "pad a side that is not a power of two (28 px -> 32) so the U-Net reaches 1x1; "
                    "false: stop at the first odd side (7x7 at 28 px)")
    d_width: int = opt(64, "channels of the PatchGAN's first layer", min=1)
    d_layers: int = opt(3, "PatchGAN depth: 1, 2, 3 see 16, 34, 70 px patches", min=1)
    l1_weight: float = opt(100.0, "lambda of the L1 distance to the target in G's loss", min=0.0)
    gan_weight: float = opt(1.0, "weight of G's adversarial loss; 0: L1 alone (no D is trained)", min=0.0)
    d_noise: float = opt(0.0, "std of Gaussian instance noise on the image side of D's input, real and fake alike "
                         "(images in [-1, 1]); 0: none", min=0.0)


def build(shape: tuple, shape_a: tuple, o: Pix2PixOptions):
    """U-Net G: images of ``shape_a`` -> ``shape``; PatchGAN D on the pair."""
    (ca, h, w), cb = shape_a, shape[0]
    if h != w or tuple(shape[1:]) != (h, w):
        raise UserError(f"pix2pix needs square inputs and outputs of one size, got {h}x{w} -> "
                        f"{shape[1]}x{shape[2]}")
    G = UNetGenerator(ca, cb, h, o.g_width, o.max_width, o.dropout, o.dropout_at_test, o.skips, o.pad)
    D = PatchDiscriminator(ca + cb, o.d_width, o.d_layers, o.max_width)
    dcgan_init(G), dcgan_init(D)
    return G, D
