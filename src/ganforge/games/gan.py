"""One training iteration of the (unconditional) GAN game.

Goodfellow et al. 2014, Algorithm 1: for k = ``d_steps`` times, freeze G,
draw a fresh real batch and a fresh fake batch, and update D on the
objective's D loss (plus its regularizer); then freeze D, draw new fakes and
update G on the objective's G loss. G is frozen by running it under
``no_grad``; D is frozen by turning off its parameters' gradients, so the
G phase computes no gradients for D's weights.

When D has no batch norm, real and fake go through D as one concatenated
batch (one forward and backward instead of two); with batch norm they stay
separate so that each batch is normalized by its own statistics, as in
Radford et al. 2016.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..losses import Loss
from ..penalties import clip_weights, gradient_penalty, r1_penalty


@dataclass
class Regularizer:
    name: str       # none | gp | r1 | r2
    weight: float
    every: int      # lazy regularization interval (Karras et al. 2020)


class GANGame:
    def __init__(self, G: nn.Module, D: nn.Module, loss: Loss, reg: Regularizer, clip: float,
                 opt_g, opt_d, batches, z_stream, aux_stream, d_steps: int, batch_size: int, precision, dist=None):
        self.G, self.D, self.loss, self.reg, self.clip = G, D, loss, reg, clip
        self.opt_g, self.opt_d, self.batches = opt_g, opt_d, batches
        self.z_stream, self.aux_stream = z_stream, aux_stream
        self.d_steps, self.batch_size, self.precision = d_steps, batch_size, precision
        self.dist = dist                       # data-parallel group (train.distributed.Dist) or None
        self.rows = dist.rows(batch_size) if dist is not None else slice(None)
        self.d_count = 0                       # discriminator updates so far (for lazy regularization)
        self.last_real: Tensor | None = None
        self.joint = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())

    def sample_z(self, n: int) -> Tensor:
        """This process's rows of a global batch of n codes."""
        g = self.z_stream.next()
        return torch.randn(n, self.G.z_dim, generator=g, device=g.device)[self.rows]

    def _sync(self, net: nn.Module):
        """The gradient all-reduce of ``net`` (only the net being updated), or None in one process."""
        if self.dist is None or not self.dist.active:
            return None
        return lambda: self.dist.average_grads(net.parameters())

    def _mean_arg(self) -> dict:
        """Losses with batch means (RaGAN) take them over the global batch under data parallelism."""
        if self.loss.batch_mean and self.dist is not None and self.dist.active:
            return {"mean": self.dist.batch_mean}
        return {}

    def _outputs(self, out: Tensor) -> Tensor:
        """What is logged as D(x): the probability for logit losses, else the raw output."""
        out = out.detach().float()
        return torch.sigmoid(out).mean() if self.loss.probability else out.mean()

    def d_step(self) -> dict:
        real, _ = self.batches.next()
        with torch.no_grad(), self.precision.autocast():
            fake = self.G(self.sample_z(self.batch_size))
        fake = fake.float()
        reg = self.reg
        lazy_on = reg.name != "none" and reg.weight > 0 and self.d_count % reg.every == 0
        if lazy_on and reg.name == "r1":
            real = real.detach().requires_grad_(True)
        if lazy_on and reg.name == "r2":
            fake = fake.detach().requires_grad_(True)
        with self.precision.autocast():
            if self.joint:
                out_real, out_fake = self.D(torch.cat([real, fake.to(real.dtype)])).float().chunk(2)
            else:
                out_real, out_fake = self.D(real).float(), self.D(fake).float()
        loss = self.loss.d(out_real, out_fake, **self._mean_arg())
        stats = {}
        if lazy_on:
            if reg.name == "gp":
                with self.precision.autocast():
                    pen = gradient_penalty(lambda v: self.D(v).float(), real, fake, self.aux_stream.next(),
                                           self.rows, self.batch_size)
            elif reg.name == "r1":
                pen = r1_penalty(out_real, real)
            else:
                pen = r1_penalty(out_fake, fake)
            loss = loss + reg.weight * reg.every * pen
            stats["penalty"] = pen.detach()
        self.precision.backward_step(loss, self.opt_d, "d", self._sync(self.D))
        if self.clip:
            clip_weights(self.D, self.clip)
        self.d_count += 1
        self.last_real = real.detach()
        stats.update(loss_d=loss.detach(), d_real=self._outputs(out_real), d_fake=self._outputs(out_fake))
        return stats

    def g_step(self) -> dict:
        self.D.requires_grad_(False)
        try:
            with self.precision.autocast():
                out_fake = self.D(self.G(self.sample_z(self.batch_size))).float()
                out_real = None
                if self.loss.g_needs_real:
                    with torch.no_grad():
                        out_real = self.D(self.last_real).float()
            loss = self.loss.g(out_fake, out_real, **self._mean_arg())
            self.precision.backward_step(loss, self.opt_g, "g", self._sync(self.G))
        finally:
            self.D.requires_grad_(True)
        return {"loss_g": loss.detach(), "d_fake_g": self._outputs(out_fake)}

    def step(self) -> list[dict]:
        """d_steps discriminator updates, then one generator update; the statistics of each."""
        return [self.d_step() for _ in range(self.d_steps)] + [self.g_step()]

    def state_dict(self) -> dict:
        return {"d_count": self.d_count}

    def load_state_dict(self, state: dict) -> None:
        self.d_count = int(state["d_count"])
