"""Residual up- and down-sampling blocks of the SNGAN and BigGAN families.

Miyato et al. 2018, "Spectral Normalization for GANs" (appendix B, the
ResNet G and D after Gulrajani et al. 2017), reused by Brock et al. 2019
(BigGAN). G's block: norm, ReLU, 2x nearest upsampling, 3x3 conv, norm,
ReLU, 3x3 conv, plus a shortcut of upsampling and a 1x1 conv. D's block:
ReLU, 3x3 conv, ReLU, 3x3 conv, 2x2 average pooling, plus a 1x1 conv and
pooling shortcut; D's first block skips the leading ReLU (its input is the
image) and pools before its shortcut conv. Widths and the start size follow
the image side: side = s * 2**k with s in {4, 7}, k up-blocks in G and k
down-blocks in D, then one block at the smallest size.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .dcgan import plan
from .exact import up_nearest


def widths(width: int, k: int, cap: int) -> list[int]:
    """Channels per level from the smallest map (index 0): ``width`` at the three largest levels,
    doubling towards smaller maps beyond them (64 px: 2w, w, w, w), capped."""
    return [min(width * 2 ** max(0, k - 3 - i), cap) for i in range(k)] if k else []


def conv_init(module: nn.Module) -> None:
    """Xavier-uniform conv and linear weights, zero biases (Miyato et al. 2018's ResNet; BigGAN uses orthogonal)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight, gain=1.0 if m.weight.shape[-1] == 1 or isinstance(m, nn.Linear)
                                    else 2 ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class GBlock(nn.Module):
    """Residual 2x upsampling block. ``norm(channels)`` builds its normalization layers; a norm whose
    forward takes a second argument gets the block's conditioning vector (BigGAN)."""

    def __init__(self, cin: int, cout: int, norm: Callable[[int], nn.Module], up: bool = True):
        super().__init__()
        self.up = up
        self.n1, self.c1 = norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.n2, self.c2 = norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or up) else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.n1(x) if c is None else self.n1(x, c))
        if self.up:
            h, x = up_nearest(h), up_nearest(x)
        h = self.c1(h)
        h = self.c2(F.relu(self.n2(h) if c is None else self.n2(h, c)))
        return h + (x if self.skip is None else self.skip(x))


class DBlock(nn.Module):
    """Residual 2x downsampling block (``first``: D's input block, without the leading ReLU)."""

    def __init__(self, cin: int, cout: int, down: bool = True, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.relu(self.c1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.skip is not None:
            if self.first:            # pool, then 1x1 conv (cheaper on the full-size image)
                s = self.skip(F.avg_pool2d(s, 2) if self.down else s)
            else:
                s = self.skip(s)
                s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResNetDiscriminator(nn.Module):
    """k down-blocks to the s x s map, one more block there, ReLU, sum over space, a linear head.
    ``attention(channels)`` (BigGAN) adds a self-attention layer after the block whose output has
    side ``attn_side``."""

    def __init__(self, channels: int, side: int, width: int, cap: int,
                 attention: Callable[[int], nn.Module] | None = None, attn_side: int = 0, family: str = "sngan"):
        super().__init__()
        s, k = plan(side, family)
        w = widths(width, k, cap)[::-1]           # largest map first
        blocks: list[nn.Module] = []
        cin, size = channels, side
        for i in range(k):
            blocks.append(DBlock(cin, w[i], down=True, first=i == 0))
            cin, size = w[i], size // 2
            if attention is not None and size == attn_side:
                blocks.append(attention(cin))
        blocks.append(DBlock(cin, cin, down=False))
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(cin, 1)
        conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's map after ReLU (the projection sums it over space)."""
        return F.relu(self.blocks(x))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h.flatten(2).sum(2)).flatten()

    def block_list(self) -> list:
        """The residual blocks from the input side (FreezeD, nets.transfer), a self-attention layer with the
        block before it; the linear layer is the head."""
        out: list = []
        for m in self.blocks:
            if isinstance(m, DBlock) or not out:
                out.append(nn.ModuleList([m]))
            else:
                out[-1].append(m)
        return out
