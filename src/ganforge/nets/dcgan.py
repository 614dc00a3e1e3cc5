"""DCGAN: transposed-convolution G with batch norm, strided-convolution D.

Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with
Deep Convolutional GANs". The side of the image must be s * 2**k with
s in {4, 7} and k >= 1 (8, 14, 16, 28, 32, 56, 64, 128, ...): G projects z
to an s x s map and doubles it k times with 4x4 stride-2 transposed convs;
D mirrors it and ends with an s x s convolution to one logit.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..schema import opt
from .layers import NORMS, dcgan_init, norm2d


@dataclass
class DCGANOptions:
    g_width: int = opt(64, "channels of G's last hidden layer (doubling towards the input)", min=1)
    d_width: int = opt(64, "channels of D's first layer (doubling with depth)", min=1)
    max_width: int = opt(512, "cap on the channels of any layer", min=1)
    g_norm: str = opt("batch", "normalization in G", choices=NORMS)
    d_norm: str = opt("none", "normalization in D ('batch' is the paper's; avoid it with gp/r1)", choices=NORMS)
    pack: int = opt(1, "PacGAN packing: D judges this many samples at once (Lin et al. 2018)", min=1)


def plan(side: int, family: str = "dcgan") -> tuple[int, int]:
    """(start size s, number of doublings k) for an image side, or UserError."""
    for s in (4, 7):
        k, r = 0, side
        while r > s and r % 2 == 0:
            r //= 2
            k += 1
        if r == s and k >= 1:
            return s, k
    raise UserError(f"model {family} cannot build {side}x{side} images: the side must be 4 or 7 times a power of two "
                    f"(8, 14, 16, 28, 32, 56, 64, 128, 256); set data.resolution to one of them")


def _widths(width: int, k: int, cap: int) -> list[int]:
    """Channels from the smallest map (index 0) to the largest hidden one."""
    return [min(width * 2 ** (k - 1 - i), cap) for i in range(k)]


class ProjectZ(nn.ConvTranspose2d):
    """G's first layer: a stride-1 unpadded s x s transposed convolution of the 1 x 1 map z, which is one matrix
    product, (N, z) @ (z, C*s*s), computed as one (the convolution took 3-6 times as long on the CPUs here);
    the same parameters, so a checkpoint of either loads into the other."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (1, 1) or self.stride != (1, 1) or self.padding != (0, 0):
            return super().forward(x)
        w, (n, c, (s, t)) = self.weight, (x.shape[0], self.out_channels, self.kernel_size)
        if w.is_contiguous(memory_format=torch.channels_last):      # memory (z, s, t, C): a view, and so is out
            out = (x.flatten(1) @ w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)).view(n, s, t, c).permute(0, 3, 1, 2)
        else:
            out = (x.flatten(1) @ w.flatten(1)).view(n, c, s, t)
        return out if self.bias is None else out + self.bias[:, None, None]


class Head(nn.Conv2d):
    """D's last layer: an s x s unpadded convolution of an s x s map to one logit, which is a dot product with
    the flattened map, computed as one (the same parameters as the convolution)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.kernel_size or self.padding != (0, 0) or self.out_channels != 1:
            return super().forward(x)
        w = self.weight
        if w.is_contiguous(memory_format=torch.channels_last) and x.is_contiguous(memory_format=torch.channels_last):
            out = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1) @ w.permute(0, 2, 3, 1).reshape(1, -1).T
        else:
            out = x.flatten(1) @ w.flatten(1).T
        return (out if self.bias is None else out + self.bias).view(x.shape[0], 1, 1, 1)


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, side: int, width: int, cap: int, norm: str):
        super().__init__()
        s, k = plan(side)
        w = _widths(width, k, cap)
        layers: list[nn.Module] = [ProjectZ(z_dim, w[0], s, 1, 0, bias=norm == "none"),
                                   norm2d(norm, w[0]), nn.ReLU(True)]
        for i in range(1, k):
            layers += [nn.ConvTranspose2d(w[i - 1], w[i], 4, 2, 1, bias=norm == "none"), norm2d(norm, w[i]), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(w[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, channels: int, side: int, width: int, cap: int, norm: str, pack: int = 1):
        super().__init__()
        s, k = plan(side)
        w = _widths(width, k, cap)[::-1]
        self.pack = pack
        layers: list[nn.Module] = [nn.Conv2d(channels * pack, w[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i in range(1, k):
            layers += [nn.Conv2d(w[i - 1], w[i], 4, 2, 1, bias=norm == "none"), norm2d(norm, w[i]), nn.LeakyReLU(0.2, True)]
        layers.append(Head(w[-1], 1, s, 1, 0))
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden map (before the final s x s convolution)."""
        if self.pack > 1:
            n, c, h, wd = x.shape
            x = x.reshape(n // self.pack, self.pack * c, h, wd)
        return self.net[:-1](x)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.net[-1](h).flatten()

    def block_list(self) -> list:
        """The blocks from the input side (FreezeD, nets.transfer): the first conv with its activation, then
        each strided conv with its norm and activation; the last s x s conv is the head."""
        return [self.net[:2]] + [self.net[i:i + 3] for i in range(2, len(self.net) - 1, 3)]


def build(shape: tuple, z_dim: int, o: DCGANOptions):
    if len(shape) != 3:
        raise UserError(f"model dcgan needs image data, got samples of shape {tuple(shape)}; use model=mlp for toy data")
    c, h, w = shape
    if h != w:
        raise UserError(f"model dcgan needs square images, got {h}x{w}")
    G = DCGANGenerator(z_dim, c, h, o.g_width, o.max_width, o.g_norm)
    D = DCGANDiscriminator(c, h, o.d_width, o.max_width, o.d_norm, o.pack)
    return G, D
