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

Conditional (``classes`` > 0, nets.conditional): the real batch brings its
labels; each fake is drawn for a label drawn uniformly with its z; D sees
every sample with its label (the gradient penalty interpolates at the real
label). With an auxiliary classifier (ACGAN, Odena et al. 2017) D adds the
cross-entropy of its class head on real and fake labels, and G the one on
its fakes, both times ``ac_weight``. A G with ``weight_penalty()`` (BigGAN's
orthogonal regularization) adds that term to its loss, logged as ``ortho``;
one with ``lazy_penalty`` (StyleGAN2's path-length regularization) adds its
term on the steps it chooses, logged as ``pl_penalty`` and ``pl_length``.
"""
from __future__ import annotations

from typing import Optional
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import Loss
from ..penalties import clip_weights, gradient_penalty, r1_penalty


def grad_sync(dist, net: nn.Module):
    """The gradient all-reduce of ``net`` (only the net being updated), or None in one process."""
    if dist is None or not dist.active:
        return None
    return lambda: dist.average_grads(net.parameters())


def mean_output(out: Tensor, probability: bool) -> Tensor:
    """What is logged as D(x): the mean probability for logit losses, else the mean raw output."""
    out = out.detach().float()
    return torch.sigmoid(out).mean() if probability else out.mean()


@dataclass
class Regularizer:
    name: str = "none"  # none | gp | r1 | r2 | r1+r2 (R3GAN's pair: weight x (R1/2 + R2/2) = gamma/2 (R1 + R2))
    weight: float = 0.0
    every: int = 1      # lazy regularization interval (Karras et al. 2020)
    r2_weight: Optional[float] = None   # with r1+r2: R2's own weight (None: ``weight``, as R3GAN)

    @property
    def terms(self) -> tuple:
        return tuple(self.name.split("+")) if self.name != "none" else ()


@dataclass
class GANOptions:
    """What one iteration of the game does: the objective, D's regularizer and weight clipping, D updates
    per G update, the global batch size, and for class-conditional games the classes and ACGAN's head."""
    loss: Loss
    reg: Regularizer = field(default_factory=Regularizer)
    clip: float = 0.0
    d_steps: int = 1
    batch_size: int = 64
    classes: int = 0
    acgan: bool = False
    ac_weight: float = 1.0


class GANGame:
    def __init__(self, G: nn.Module, D: nn.Module, opt_g, opt_d, options: GANOptions, *, batches, z_stream,
                 aux_stream, precision, dist=None, augment=None):
        """``batches``: real batches (data.batches); ``z_stream``, ``aux_stream``: the seeded streams of z and
        of the penalties' noise (rng.Stream); ``precision``: train.precision.Precision; ``dist``: the
        data-parallel group (train.distributed.Dist) or None; ``augment``: what D's inputs go through
        (games.augment.Augmenter) or None."""
        o = options
        self.G, self.D, self.loss, self.reg, self.clip = G, D, o.loss, o.reg, o.clip
        self.opt_g, self.opt_d, self.batches = opt_g, opt_d, batches
        self.z_stream, self.aux_stream = z_stream, aux_stream
        self.d_steps, self.batch_size, self.precision = o.d_steps, o.batch_size, precision
        self.dist, self.augment = dist, augment
        self.rows = dist.rows(o.batch_size) if dist is not None else slice(None)
        self.d_count = 0                       # discriminator updates so far (for lazy regularization)
        self.classes, self.acgan, self.ac_weight = o.classes, o.acgan, o.ac_weight
        self.last_real: Tensor | None = None
        self.last_y: Tensor | None = None
        self.joint = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) or getattr(m, "batch_coupled", False)
                             for m in D.modules())
        self.g_count = 0                       # generator updates so far (for G's lazy regularization)
        self._g: torch.Generator | None = None  # the generator of the last z draw (stochastic G's continue it)

    def sample_z(self, n: int) -> tuple[Tensor, Tensor | None]:
        """This process's rows of a global batch of n codes, and of their labels (None if unconditional)."""
        z, y, self._g = self._codes(n, self.rows)
        return z, y

    def _codes(self, n: int, rows: slice):
        """``rows`` of a global batch of n codes and labels from the next z draw, and that draw's generator."""
        g = self.z_stream.next()
        z = torch.randn(n, self.G.z_dim, generator=g, device=g.device)[rows]
        y = torch.randint(self.classes, (n,), generator=g, device=g.device)[rows] if self.classes else None
        return z, y, g

    def generate(self, z: Tensor, y: Tensor | None) -> Tensor:
        """G's samples for z (and labels); a G with its own randomness (StyleGAN's noise and style mixing)
        draws it from the same seeded draw as z, for the global batch, so resumes and processes agree."""
        reseed = getattr(self.G, "reseed", None)
        if reseed is not None:
            reseed(self._g, self.rows, self.batch_size, self._row_mean)
        return self.G(z) if y is None else self.G(z, y)

    def _draw_for_penalty(self):
        """A fresh global batch of half the size (StyleGAN2's pl_batch_shrink = 2) for G's lazy penalty."""
        world = self.dist.world if self.dist is not None and self.dist.active else 1
        n = self.batch_size // 2 if self.batch_size >= 2 and (self.batch_size // 2) % world == 0 else self.batch_size
        rows = self.dist.rows(n) if world > 1 else slice(None)
        z, y, g = self._codes(n, rows)
        return z, y, g, rows, n

    def _row_mean(self, x: Tensor) -> Tensor:
        return self.dist.row_mean(x) if self.dist is not None and self.dist.active else x.mean(0)

    def _global_mean(self, x: Tensor) -> Tensor:
        return self.dist.batch_mean(x) if self.dist is not None and self.dist.active else x.mean()

    def judge(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """D's outputs (float) and, for ACGAN, its class logits."""
        if y is None:
            return self.D(x).float(), None
        if self.acgan:
            out, cls = self.D(x, y, with_classes=True)
            return out.float(), cls.float()
        return self.D(x, y).float(), None

    def _sync(self, net: nn.Module):
        return grad_sync(self.dist, net)

    def _mean_arg(self) -> dict:
        """Losses with batch means (RaGAN) take them over the global batch under data parallelism."""
        if self.loss.batch_mean and self.dist is not None and self.dist.active:
            return {"mean": self.dist.batch_mean}
        return {}

    def _outputs(self, out: Tensor) -> Tensor:
        return mean_output(out, self.loss.probability)

    def d_step(self) -> dict:
        real, y_real = self.batches.next()
        if not self.classes:
            y_real = None
        z, y_fake = self.sample_z(self.batch_size)
        with torch.no_grad(), self.precision.autocast():
            fake = self.generate(z, y_fake)
        fake = fake.float()
        reg = self.reg
        lazy_on = reg.name != "none" and reg.weight > 0 and self.d_count % reg.every == 0
        if lazy_on and "r1" in reg.terms:
            real = real.detach().requires_grad_(True)
        if lazy_on and "r2" in reg.terms:
            fake = fake.detach().requires_grad_(True)
        seen_real, seen_fake = real, fake
        if self.augment is not None:          # D judges augmented images; R1/R2 differentiate through the augmentation
            seen_real, seen_fake = self.augment(real), self.augment(fake)
        with self.precision.autocast():
            if self.joint:
                both = torch.cat([seen_real.detach(), seen_fake.detach().to(seen_real.dtype)])
                out, cls = self.judge(both, None if y_real is None else torch.cat([y_real, y_fake]))
                out_real, out_fake = out.chunk(2)
            else:
                (out_real, cls_r), (out_fake, cls_f) = (self.judge(seen_real.detach(), y_real),
                                                        self.judge(seen_fake.detach(), y_fake))
                cls = None if cls_r is None else torch.cat([cls_r, cls_f])
        loss = self.loss.d(out_real, out_fake, **self._mean_arg())
        stats = {}
        if cls is not None:
            ac = F.cross_entropy(cls, torch.cat([y_real, y_fake]))
            loss = loss + self.ac_weight * ac
            stats["ac_d"] = ac.detach()
        stats["loss_d"] = loss.detach()

        def one(name: str) -> Tensor:
            with self.precision.autocast():
                if name == "gp":
                    return gradient_penalty(lambda v: self.judge(v, y_real)[0], seen_real, seen_fake,
                                            self.aux_stream.next(), self.rows, self.batch_size)
                out = self.judge(seen_real, y_real)[0] if name == "r1" else self.judge(seen_fake, y_fake)[0]
            return r1_penalty(out, real if name == "r1" else fake)

        def penalty() -> Tensor:
            """The lazy regularizer(s) in their own pass, after the main loss's graph is freed (StyleGAN2's "Dreg")."""
            pens = {name: one(name) for name in reg.terms}
            weights = {name: reg.r2_weight if name == "r2" and reg.r2_weight is not None else reg.weight
                       for name in pens}
            stats["penalty"] = sum(p.detach() for p in pens.values())
            if len(pens) > 1:
                stats.update({f"penalty_{name}": p.detach() for name, p in pens.items()})
            term = reg.every * sum(weights[name] * p for name, p in pens.items())
            stats["loss_d"] = stats["loss_d"] + term.detach()      # loss_d is the whole loss, penalty included
            return term

        self.precision.backward_step(loss, self.opt_d, "d", self._sync(self.D), then=penalty if lazy_on else None)
        if self.clip:
            clip_weights(self.D, self.clip)
        self.d_count += 1
        self.last_real, self.last_y = seen_real.detach(), y_real
        realness = self.loss.realness(out_real.detach().float(), out_fake.detach().float(), **self._mean_arg())
        stats.update(d_real=self._outputs(out_real), d_fake=self._outputs(out_fake),
                     rt=torch.sign(realness).mean())    # ADA's overfitting heuristic r_t
        if self.augment is not None:
            stats.update(self.augment.observe(realness))
        return stats

    def g_step(self) -> dict:
        trained = [p for p in self.D.parameters() if p.requires_grad]      # not FreezeD's frozen blocks
        self.D.requires_grad_(False)
        try:
            z, y = self.sample_z(self.batch_size)
            with self.precision.autocast():
                fake = self.generate(z, y)
                out_fake, cls = self.judge(fake if self.augment is None else self.augment(fake), y)
                out_real = None
                if self.loss.g_needs_real:
                    with torch.no_grad():
                        out_real = self.judge(self.last_real, self.last_y)[0]
            loss = self.loss.g(out_fake, out_real, **self._mean_arg())
            stats = {}
            if cls is not None:
                ac = F.cross_entropy(cls, y)
                loss = loss + self.ac_weight * ac
                stats["ac_g"] = ac.detach()
            penalty = getattr(self.G, "weight_penalty", None)
            extra = penalty() if penalty is not None else None
            if extra is not None:                   # a regularizer on G's weights (BigGAN's orthogonal one)
                loss = loss + extra
                stats["ortho"] = extra.detach()
            stats["loss_g"] = loss.detach()
            lazy = getattr(self.G, "lazy_penalty", None)

            def path_length() -> Tensor | None:
                """G's lazy regularizer (StyleGAN2's path-length penalty) in its own pass ("Greg"), if due."""
                found = lazy(self.g_count, self._draw_for_penalty, self._global_mean)
                if found is None:
                    return None
                pen, length = found
                stats.update(pl_penalty=pen.detach(), pl_length=length, loss_g=stats["loss_g"] + pen.detach())
                return pen

            self.precision.backward_step(loss, self.opt_g, "g", self._sync(self.G),
                                         then=path_length if lazy is not None else None)
        finally:
            for p in trained:
                p.requires_grad_(True)
        self.g_count += 1
        return {"d_fake_g": self._outputs(out_fake), **stats}

    def step(self) -> list[dict]:
        """d_steps discriminator updates, then one generator update; the statistics of each."""
        return [self.d_step() for _ in range(self.d_steps)] + [self.g_step()]

    def state_dict(self) -> dict:
        out = {"d_count": self.d_count, "g_count": self.g_count}
        if self.augment is not None:
            out["augment"] = self.augment.state_dict()
        return out

    def state_spec(self) -> dict:
        """What load_state_dict takes (runs.verify checks a checkpoint against it): two counters, g_count
        missing in the oldest checkpoints, and the augmentation's state when D's inputs are augmented."""
        from ..runs.verify import Maybe
        return {**self.state_dict(), "d_count": 0, "g_count": Maybe(0)}

    def load_state_dict(self, state: dict) -> None:
        self.d_count = int(state["d_count"])
        self.g_count = int(state.get("g_count", 0))
        if self.augment is not None:
            if "augment" not in state:
                raise ValueError("the checkpoint has no augmentation state (augment was none when it was written)")
            self.augment.load_state_dict(state["augment"])
