"""pix2pix networks: the U-Net generator and the PatchGAN discriminator.

Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with Conditional
Adversarial Networks", section 3.2 and appendix 6.1.

- U-Net G: an encoder of 4x4 stride-2 convolutions (C64-C128-C256-C512-...,
  leaky ReLU 0.2, batch norm except on the first and the innermost layer)
  down to the smallest map the side allows (1x1 at 256 px; 7x7 at 28 px, as 7
  is odd), and a decoder of 4x4 stride-2 transposed convolutions (ReLU,
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
  pair (condition, image) joined on channels. With ``layers`` = 3 each logit
  sees a 70x70 patch (1: 16x16, 2: 34x34), the receptive field test checks.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError


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
                 dropout: float = 0.5, dropout_at_test: bool = True, skips: bool = True):
        super().__init__()
        k = unet_depth(side)
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
        return torch.tanh(x)


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int, width: int = 64, layers: int = 3, max_width: int = 512):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for i in range(1, layers + 1):
            cout = min(width * 2 ** i, max_width)
            mods += [nn.Conv2d(c, cout, 4, 2 if i < layers else 1, 1, bias=False), nn.BatchNorm2d(cout),
                     nn.LeakyReLU(0.2)]
            c = cout
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Logits (N, 1, h, w), one per patch of the pair."""
        return self.net(torch.cat([condition, image], 1))
