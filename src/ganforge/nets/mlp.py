"""Multilayer perceptrons for G and D: for 1-D/2-D toy data and flat images.

The fully connected nets of the original GAN paper (Goodfellow et al. 2014).
On images G ends in tanh (outputs in [-1, 1]) and reshapes to (C, H, W);
on vectors its output is linear.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..schema import opt


@dataclass
class MLPOptions:
    hidden: int = opt(256, "units per hidden layer of G and D", min=1)
    g_layers: int = opt(3, "hidden layers of G", min=1)
    d_layers: int = opt(3, "hidden layers of D", min=1)
    d_hidden: int = opt(0, "units per hidden layer of D; 0: same as hidden", min=0)
    activation: str = opt("relu", "activation of G's hidden layers (D uses leaky ReLU 0.2)",
                          choices=("relu", "leaky_relu", "elu", "tanh"))
    pack: int = opt(1, "PacGAN packing: D judges this many samples at once (Lin et al. 2018)", min=1)


_ACT = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU, "tanh": nn.Tanh}


def _stack(inp: int, hidden: int, layers: int, out: int, act) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(inp, hidden), act()]
        inp = hidden
    mods.append(nn.Linear(inp, out))
    return nn.Sequential(*mods)


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, shape: tuple, hidden: int, layers: int, activation: str):
        super().__init__()
        self.shape = tuple(shape)
        self.image = len(self.shape) == 3
        self.net = _stack(z_dim, hidden, layers, math.prod(self.shape), _ACT[activation])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(z)
        if self.image:
            x = torch.tanh(x)
        return x.view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, shape: tuple, hidden: int, layers: int, pack: int = 1):
        super().__init__()
        self.pack = pack
        self.net = _stack(math.prod(shape) * pack, hidden, layers, 1, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations."""
        return self.net[:-1](x.reshape(x.shape[0] // self.pack, -1))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.net[-1](h).squeeze(1)


def build(shape: tuple, z_dim: int, o: MLPOptions):
    G = MLPGenerator(z_dim, shape, o.hidden, o.g_layers, o.activation)
    D = MLPDiscriminator(shape, o.d_hidden or o.hidden, o.d_layers, o.pack)
    return G, D
