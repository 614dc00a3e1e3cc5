"""Self-attention over the positions of a feature map.

Zhang, Goodfellow, Metaxas & Odena 2019, "Self-Attention Generative
Adversarial Networks" (SAGAN), in the form BigGAN uses (Brock et al. 2019):
1x1 convs give queries and keys of C/8 channels and values of C/2; keys
and values are 2x2 max-pooled (a quarter of the positions, when the side
is even); each position takes the softmax-weighted sum of the values, a
1x1 conv brings it back to C channels, and the result is added to the
input scaled by a learned gamma that starts at 0 (the layer starts as the
identity).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        k, v = max(1, channels // 8), max(1, channels // 2)
        self.query = nn.Conv2d(channels, k, 1, bias=False)
        self.key = nn.Conv2d(channels, k, 1, bias=False)
        self.value = nn.Conv2d(channels, v, 1, bias=False)
        self.out = nn.Conv2d(v, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)                                    # (n, k, hw)
        key, val = self.key(x), self.value(x)
        if h % 2 == 0 and w % 2 == 0:
            key, val = F.max_pool2d(key, 2), F.max_pool2d(val, 2)
        attn = torch.softmax(q.transpose(1, 2) @ key.flatten(2), dim=-1)   # (n, hw, hw')
        o = (val.flatten(2) @ attn.transpose(1, 2)).view(n, -1, h, w)    # (n, v, h, w)
        return x + self.gamma * self.out(o)
