"""SNGAN: the ResNet generator and spectrally normalized ResNet discriminator.

Miyato, Kataoka, Koyama & Yoshida 2018, "Spectral Normalization for
Generative Adversarial Networks" (the ResNet of their appendix B). G maps z
through a linear layer to an s x s map and k residual up-blocks (batch norm,
ReLU, nearest upsampling, 3x3 convs) to the image; D is k residual
down-blocks, one more block, ReLU, a sum over space and a linear output.
Choosing this family sets, unless the preset or command line says
otherwise, ``model.spectral_norm=true`` (every conv and linear layer of D;
``model.g_spectral_norm=true`` adds G) and ``loss=hinge``, the paper's
setting. Sides 28, 32, 64, 128, ... (s * 2**k, s in {4, 7}). With
``model.conditional=true`` G's batch norms become class-conditional and D a
projection discriminator (Miyato & Koyama 2018).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..schema import opt
from .dcgan import plan
from .resnet import GBlock, ResNetDiscriminator, conv_init, widths


@dataclass
class SNGANOptions:
    g_width: int = opt(128, "channels of G's blocks (doubling towards small maps above 32 px; the paper: 256)", min=1)
    d_width: int = opt(128, "channels of D's blocks (as g_width; the paper: 128)", min=1)
    max_width: int = opt(1024, "cap on the channels of any block", min=1)


class ResNetGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, side: int, width: int, cap: int):
        super().__init__()
        s, k = plan(side, "sngan")
        w = widths(width, k, cap) + [widths(width, k, cap)[-1]]
        self.s, self.w0 = s, w[0]
        self.linear = nn.Linear(z_dim, s * s * w[0])
        self.blocks = nn.Sequential(*[GBlock(w[i], w[i + 1], nn.BatchNorm2d) for i in range(k)])
        self.out = nn.Sequential(nn.BatchNorm2d(w[k]), nn.ReLU(), nn.Conv2d(w[k], channels, 3, 1, 1), nn.Tanh())
        conv_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z.reshape(z.shape[0], -1)).view(z.shape[0], self.w0, self.s, self.s)
        return self.out(self.blocks(h))


def build(shape: tuple, z_dim: int, o: SNGANOptions):
    if len(shape) != 3 or shape[1] != shape[2]:
        raise UserError(f"model sngan needs square images, got samples of shape {tuple(shape)}")
    c, side, _ = shape
    G = ResNetGenerator(z_dim, c, side, o.g_width, o.max_width)
    D = ResNetDiscriminator(c, side, o.d_width, o.max_width)
    return G, D
