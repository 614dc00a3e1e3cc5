"""Exponential moving average of the generator's weights.

The average forgets with a half-life counted in images, as in Karras et al.
2020 (StyleGAN2-ADA): beta = 0.5 ** (batch / half_life_images), with an
early ramp-up that caps the half-life at ``rampup`` times the images seen so
far, so that the random initial weights fade quickly. Buffers (batch-norm
statistics) are copied, not averaged. Yazici et al. 2019 show such averages
improve GAN samples.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn


class EMA:
    def __init__(self, G: nn.Module, half_life_kimg: float, rampup: Optional[float]):
        self.module = copy.deepcopy(G).eval().requires_grad_(False)
        self.half_life_kimg, self.rampup = half_life_kimg, rampup
        self._pairs = list(zip(self.module.parameters(), G.parameters()))
        self._bufs = list(zip(self.module.buffers(), G.buffers()))

    def beta(self, batch: int, images_seen: int) -> float:
        nimg = self.half_life_kimg * 1000.0
        if self.rampup is not None:
            nimg = min(nimg, images_seen * self.rampup)
        return 0.5 ** (batch / max(nimg, 1e-8))

    @torch.no_grad()
    def update(self, batch: int, images_seen: int) -> None:
        w = 1.0 - self.beta(batch, images_seen)
        ema, cur = zip(*self._pairs)
        torch._foreach_lerp_(list(ema), [p.detach() for p in cur], w)
        for b_ema, b in self._bufs:
            b_ema.copy_(b)
