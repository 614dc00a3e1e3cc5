"""One training iteration of pix2pix: a conditional GAN plus an L1 distance to the target.

Isola, Zhu, Zhou & Efros 2017, eq. 4: G* = arg min_G max_D L_cGAN(G, D) +
lambda L_L1(G), with L_cGAN = E[log D(a, b)] + E[log(1 - D(a, G(a)))] and
L_L1 = E||b - G(a)||_1. The generator has no z: dropout is its noise. Each
iteration takes one batch of pairs (a, b), runs G once, updates D on
(a, b) against (a, G(a)) with the objective's D loss halved ("we divide the
objective by 2 while optimizing D, which slows down the rate at which D
learns relative to G"), then updates G on ``gan_weight`` times the
objective's G loss plus ``l1_weight`` times the L1 distance, as the
authors' code does. Real and fake pairs go through D separately so that
its batch norm sees each batch alone. With ``gan_weight`` = 0 no D is
trained: the L1-only baseline of the paper's table 1.

``d_noise`` > 0 adds Gaussian instance noise of that standard deviation to
the target-side image D sees, real and generated alike (Sønderby et al.
2017, sec. 3.1; Arjovsky & Bottou 2017, sec. 3.1): on digits, whose
background is exactly -1 where tanh never is, D otherwise tells real from
fake by that alone and its gradient stops carrying shape. The noise is
drawn for the global batch from the run's aux stream and sliced per rank,
so runs resume exactly and 2 processes equal 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..losses import Loss
from .gan import grad_sync, mean_output


@dataclass
class PairOptions:
    """The objective, the weights of the L1 and adversarial terms, D's instance noise and the global batch."""
    loss: Loss
    l1_weight: float = 100.0
    gan_weight: float = 1.0
    d_noise: float = 0.0
    batch_size: int = 0


class PairGame:
    def __init__(self, G: nn.Module, D: nn.Module, opt_g, opt_d, options: PairOptions, *, batches, precision,
                 aux_stream=None, dist=None):
        o = options
        self.G, self.D, self.loss, self.opt_g, self.opt_d = G, D, o.loss, opt_g, opt_d
        self.batches, self.precision, self.dist = batches, precision, dist
        self.l1_weight, self.gan_weight = o.l1_weight, o.gan_weight
        self.d_noise, self.aux_stream, self.batch_size = o.d_noise, aux_stream, o.batch_size
        self.rows = dist.rows(o.batch_size) if dist is not None else slice(None)

    def _sync(self, net: nn.Module):
        return grad_sync(self.dist, net)

    def _outputs(self, out: Tensor) -> Tensor:
        return mean_output(out, self.loss.probability)

    def _noise(self, b: Tensor) -> tuple:
        """Instance noise for the real and the generated side of this rank's rows (None when off)."""
        if not self.d_noise:
            return None, None
        n = torch.randn((2, self.batch_size or len(b), *b.shape[1:]), generator=self.aux_stream.next(),
                        device=b.device)[:, self.rows]
        return self.d_noise * n[0], self.d_noise * n[1]

    @staticmethod
    def _noisy(x: Tensor, noise) -> Tensor:
        return x if noise is None else x + noise

    def step(self) -> list[dict]:
        a, b, _ = self.batches.next()
        with self.precision.autocast():
            fake = self.G(a)
        stats, noise = {}, (None, None)
        if self.gan_weight > 0:
            noise = self._noise(b)
            stats = self.d_step(a, b, fake.detach(), noise)
        stats.update(self.g_step(a, b, fake, noise[1]))
        return [stats]

    def d_step(self, a: Tensor, b: Tensor, fake: Tensor, noise: tuple) -> dict:
        with self.precision.autocast():
            out_real = self.D(a, self._noisy(b, noise[0])).float()
            out_fake = self.D(a, self._noisy(fake, noise[1])).float()
        loss = 0.5 * self.loss.d(out_real, out_fake)
        self.precision.backward_step(loss, self.opt_d, "d", self._sync(self.D))
        return {"loss_d": loss.detach(), "d_real": self._outputs(out_real), "d_fake": self._outputs(out_fake)}

    def g_step(self, a: Tensor, b: Tensor, fake: Tensor, noise_fake) -> dict:
        l1 = (fake.float() - b).abs().mean()
        loss, stats = self.l1_weight * l1, {"loss_l1": l1.detach()}
        if self.gan_weight > 0:
            self.D.requires_grad_(False)
            try:
                with self.precision.autocast():
                    out = self.D(a, self._noisy(fake, noise_fake)).float()
                adv = self.loss.g(out, None)
            finally:
                self.D.requires_grad_(True)
            loss = loss + self.gan_weight * adv
            stats.update(gan_g=adv.detach(), d_fake_g=self._outputs(out))
        self.precision.backward_step(loss, self.opt_g, "g", self._sync(self.G))
        return {"loss_g": loss.detach(), **stats}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
