"""One training iteration of CycleGAN, and its history pool of generated images.

Zhu, Park, Isola & Efros 2017. Two generators G_AB: A -> B and G_BA: B -> A
and two discriminators (D_B judges domain B, D_A domain A). G's loss is the
objective's G loss on each translation (least squares, Mao et al. 2017, by
default), plus ``cycle_weight`` times the cycle-consistency L1 losses
|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b| (eq. 2), plus
``identity_weight * cycle_weight`` times the identity losses
|G_AB(b) - b| + |G_BA(a) - a| (section 5.2, after Taigman et al. 2017).
Both generators share one optimizer, both discriminators another, as in the
authors' code; each iteration updates G, then D. D sees its real batch
against fakes drawn through an :class:`ImagePool` of the last 50 outputs
(Shrivastava et al. 2017). Our least-squares G loss carries Mao et al.'s
factor 1/2, which the authors' code does not: the adversarial terms weigh
half as much against the cycle term as theirs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..losses import Loss
from .gan import grad_sync, mean_output


class ImagePool:
    """Until ``size`` images are stored each new one is stored and returned; after that each new image is,
    with probability 1/2, swapped for a random stored one (which is returned), else returned itself."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[Tensor] = []

    def query(self, batch: Tensor, g: torch.Generator) -> Tensor:
        if self.size == 0:
            return batch
        swap = torch.rand(len(batch), generator=g, device=g.device) < 0.5
        slot = torch.randint(self.size, (len(batch),), generator=g, device=g.device)
        out = []
        for i, image in enumerate(batch.detach()):
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif swap[i]:
                j = int(slot[i])
                out.append(self.images[j])
                self.images[j] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": torch.stack(self.images).cpu() if self.images else None}

    def load_state_dict(self, state: dict, device) -> None:
        saved = state.get("images")
        self.images = [] if saved is None else [t.to(device) for t in saved]


@dataclass
class CycleOptions:
    """The objective, the weights of the cycle and identity terms, and the size of the history pools."""
    loss: Loss
    cycle_weight: float = 10.0
    identity_weight: float = 0.5
    pool_size: int = 50


class CycleGame:
    def __init__(self, G: nn.Module, D: nn.Module, opt_g, opt_d, options: CycleOptions, *, batches, aux_stream,
                 precision, dist=None):
        o = options
        self.G, self.D, self.loss, self.opt_g, self.opt_d = G, D, o.loss, opt_g, opt_d
        self.batches, self.aux_stream, self.precision, self.dist = batches, aux_stream, precision, dist
        self.cycle_weight, self.identity_weight = o.cycle_weight, o.identity_weight
        self.pool_a, self.pool_b = ImagePool(o.pool_size), ImagePool(o.pool_size)

    def _sync(self, net: nn.Module):
        return grad_sync(self.dist, net)

    def step(self) -> list[dict]:
        a, b, _ = self.batches.next()
        stats, fake_a, fake_b = self.g_step(a, b)
        stats.update(self.d_step(a, b, fake_a, fake_b))
        return [stats]

    def g_step(self, a: Tensor, b: Tensor):
        G, D = self.G, self.D
        D.requires_grad_(False)
        try:
            with self.precision.autocast():
                fake_b, fake_a = G.ab(a), G.ba(b)
                rec_a, rec_b = G.ba(fake_b), G.ab(fake_a)
                adv = self.loss.g(D.b(fake_b).float(), None) + self.loss.g(D.a(fake_a).float(), None)
                cycle = (rec_a.float() - a).abs().mean() + (rec_b.float() - b).abs().mean()
                loss = adv + self.cycle_weight * cycle
                stats = {"gan_g": adv.detach(), "cycle": cycle.detach()}
                if self.identity_weight > 0:
                    idt = (G.ab(b).float() - b).abs().mean() + (G.ba(a).float() - a).abs().mean()
                    loss = loss + self.identity_weight * self.cycle_weight * idt
                    stats["identity"] = idt.detach()
        finally:
            D.requires_grad_(True)
        self.precision.backward_step(loss, self.opt_g, "g", self._sync(G))
        return {"loss_g": loss.detach(), **stats}, fake_a.detach().float(), fake_b.detach().float()

    def d_step(self, a: Tensor, b: Tensor, fake_a: Tensor, fake_b: Tensor) -> dict:
        g = self.aux_stream.next()
        fa, fb = self.pool_a.query(fake_a, g), self.pool_b.query(fake_b, g)
        with self.precision.autocast():
            real_a, out_fa = self.D.a(a).float(), self.D.a(fa).float()
            real_b, out_fb = self.D.b(b).float(), self.D.b(fb).float()
        loss = self.loss.d(real_a, out_fa) + self.loss.d(real_b, out_fb)
        self.precision.backward_step(loss, self.opt_d, "d", self._sync(self.D))
        p = self.loss.probability
        return {"loss_d": loss.detach(), "d_real": 0.5 * (mean_output(real_a, p) + mean_output(real_b, p)),
                "d_fake": 0.5 * (mean_output(out_fa, p) + mean_output(out_fb, p))}

    def state_dict(self) -> dict:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def state_spec(self) -> dict:
        """What load_state_dict takes (runs.verify checks a checkpoint against it): each pool None or up to
        pool_size fakes of its domain, float32 (A's fakes in pool_a, B's in pool_b)."""
        from ..runs.verify import Rows
        a, b = tuple(self.batches.a_data.shape[1:]), tuple(self.batches.b.x.shape[1:])
        return {"pool_a": {"images": Rows(a, self.pool_a.size)}, "pool_b": {"images": Rows(b, self.pool_b.size)}}

    def load_state_dict(self, state: dict) -> None:
        device = next(self.G.parameters()).device
        self.pool_a.load_state_dict(state["pool_a"], device)
        self.pool_b.load_state_dict(state["pool_b"], device)
