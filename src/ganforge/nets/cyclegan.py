"""CycleGAN's ResNet generator.

Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", appendix 7.2 (after Johnson et al.
2016): c7s1-64, d128, d256, ``blocks`` residual blocks of two 3x3
convolutions at 256 channels, u128, u64, c7s1-3 and tanh. c7s1-k is a 7x7
convolution with stride 1, dk a 3x3 stride-2 convolution, uk a 3x3
stride-1/2 transposed convolution; each but the last is followed by
instance norm and ReLU, and the convolutions pad by reflection. The paper
uses 6 blocks at 128 px and 9 at 256 px. The discriminators are pix2pix's
PatchGAN on one image with instance norm (nets.pix2pix).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..schema import opt
from .exact import ReflectPad
from .layers import dcgan_init
from .pix2pix import PatchDiscriminator


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ReflectPad(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(),
            ReflectPad(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, width: int = 64, blocks: int = 6, downsamplings: int = 2):
        super().__init__()
        layers: list[nn.Module] = [ReflectPad(3), nn.Conv2d(in_channels, width, 7), nn.InstanceNorm2d(width),
                                   nn.ReLU()]
        c = width
        for _ in range(downsamplings):
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU()]
            c *= 2
        layers += [ResidualBlock(c) for _ in range(blocks)]
        for _ in range(downsamplings):
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c // 2), nn.ReLU()]
            c //= 2
        layers += [ReflectPad(3), nn.Conv2d(c, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CyclePair(nn.Module):
    """The two generators of CycleGAN as one module: ``ab`` maps A to B, ``ba`` B to A; calling it maps A to B."""

    def __init__(self, ab: nn.Module, ba: nn.Module):
        super().__init__()
        self.ab, self.ba = ab, ba

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ab(x)


class Judges(nn.ModuleDict):
    """CycleGAN's two discriminators: ``a`` judges images of domain A, ``b`` those of domain B."""

    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__({"a": a, "b": b})


@dataclass
class CycleGANOptions:
    g_width: int = opt(64, "channels of each G's first layer (doubling at each downsampling)", min=1)
    blocks: int = opt(6, "residual blocks in each G (the paper: 6 at 128 px, 9 at 256 px)", min=0)
    downsamplings: int = opt(2, "stride-2 steps of each G", min=0)
    d_width: int = opt(64, "channels of each PatchGAN's first layer", min=1)
    d_layers: int = opt(3, "PatchGAN depth: 1, 2, 3 see 16, 34, 70 px patches", min=1)
    cycle_weight: float = opt(10.0, "lambda of the cycle-consistency L1 losses", min=0.0)
    identity_weight: float = opt(0.5, "identity loss G_AB(b) ~ b, as a fraction of cycle_weight; 0: off", min=0.0)
    pool_size: int = opt(50, "D sees fakes from a history of this many past G outputs (Shrivastava et al. 2017); "
                         "0: only the newest", min=0)


def build(shape: tuple, shape_a: tuple, o: CycleGANOptions):
    """G = CyclePair(A -> B, B -> A); D = Judges(D of domain A, D of domain B)."""
    ca, cb = shape_a[0], shape[0]
    if tuple(shape_a[1:]) != tuple(shape[1:]):
        raise UserError(f"cyclegan needs domains of one image size, got {shape_a[1]}x{shape_a[2]} and "
                        f"{shape[1]}x{shape[2]}")
    if ca != cb and o.identity_weight > 0:
        raise UserError(f"the identity loss needs domains with the same channels ({ca} and {cb}): "
                        "set model.identity_weight=0")
    if shape[1] % 2 ** o.downsamplings or shape[2] % 2 ** o.downsamplings:
        raise UserError(f"cyclegan with model.downsamplings={o.downsamplings} needs a side divisible by "
                        f"{2 ** o.downsamplings}, got {shape[1]}x{shape[2]}")
    G = CyclePair(ResnetGenerator(ca, cb, o.g_width, o.blocks, o.downsamplings),
                  ResnetGenerator(cb, ca, o.g_width, o.blocks, o.downsamplings))
    D = Judges(PatchDiscriminator(ca, o.d_width, o.d_layers, norm="instance"),
               PatchDiscriminator(cb, o.d_width, o.d_layers, norm="instance"))
    dcgan_init(G), dcgan_init(D)
    return G, D
