"""What D sees: every image it judges augmented (DiffAugment or ADA), and ADA's adaptive probability p.

DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient
GAN Training", NeurIPS 2020) and adaptive discriminator augmentation (Karras
et al., "Training Generative Adversarial Networks with Limited Data",
NeurIPS 2020) transform real and generated images alike, in the D phase and
in the G phase, with differentiable operations (ganforge.augment), so that D
never sees an unaugmented image and G's gradient passes through. R1 is taken
with respect to the images before augmentation, through it, as ADA does.

ADA's p follows the overfitting heuristic r_t = E[sign D(x_real)] over the
last ``interval`` D steps (for the relativistic losses, whose D has no level
of its own, the sign of D(x_real) against its paired fake or the fakes' mean:
ganforge.losses.Loss.realness): p moves by sign(r_t − target) · (images in those
steps) / ``speed`` images, so it can cross [0, 1] in ``speed`` images
(500,000 in the paper), and stays in [0, 1]. ``augment.p`` fixes it instead.

Exactness: the augmentation draws from its own seeded stream, one draw per
batch, for the global batch (each process keeps its rows), so N processes
augment as one does; r_t is the mean over every process's reals; p, the
stream's counter and the heuristic's running sums are in every checkpoint.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..augment import adjust_p
from ..rng import Stream


class Augmenter:
    """Augments D's inputs and keeps ADA's p. ``pipe``: a ganforge.augment pipeline (``pipe(x, generator,
    rows, n_global)``); ``adaptive``: p follows r_t toward ``target`` (else it stays ``p``; DiffAugment has no
    p); ``speed``: images in which p can cross [0, 1]."""

    def __init__(self, pipe, stream: Stream, batch_size: int, rows: slice, dist=None, adaptive: bool = False,
                 p: float = 0.0, target: float = 0.6, interval: int = 4, speed: float = 500_000.0):
        self.pipe, self.stream, self.batch_size, self.rows, self.dist = pipe, stream, batch_size, rows, dist
        self.adaptive, self.target, self.interval, self.speed = adaptive, target, interval, speed
        self.p = float(p)
        self.signs, self.seen, self.steps = 0.0, 0, 0      # the heuristic's sums since the last p update
        self.rt = 0.0                                      # r_t of the last update
        if hasattr(pipe, "p"):
            pipe.p = self.p

    def __call__(self, x: Tensor) -> Tensor:
        """This process's rows of a global batch, augmented (one draw of the stream, for the global batch)."""
        g = self.stream.next()
        return self.pipe(x.float(), g, rows=self.rows, n_global=self.batch_size)

    def observe(self, realness: Tensor) -> dict:
        """After a D step: count the signs of D's verdicts on the reals (``Loss.realness``); every ``interval`` steps move p (adaptive ADA). The statistic
        to log: ``aug_p``, the p this step used (the game logs r_t, ``rt``, with or without augmentation)."""
        stats = {"aug_p": torch.tensor(self.p, dtype=torch.float64)} if hasattr(self.pipe, "p") else {}  # DiffAugment: none
        if not self.adaptive:
            return stats
        s = torch.sign(realness.detach().float())
        self.signs = self.signs + s.sum()                   # stays a tensor: one host sync per update of p
        self.seen += s.numel()
        self.steps += 1
        if self.steps % self.interval == 0:
            total = {"signs": float(self.signs), "seen": float(self.seen)}
            if self.dist is not None and self.dist.active:
                total = self.dist.mean(total)               # every process's reals: the ranks agree on p
            self.rt = total["signs"] / total["seen"]
            self.set_p(adjust_p(self.p, self.rt, self.target, self.batch_size * self.interval, self.speed))
            self.signs, self.seen = 0.0, 0
        return stats

    def set_p(self, p: float) -> None:
        self.p = min(max(float(p), 0.0), 1.0)
        if hasattr(self.pipe, "p"):
            self.pipe.p = self.p

    def state_dict(self) -> dict:
        return {"p": self.p, "stream": self.stream.count, "signs": float(self.signs), "seen": self.seen,
                "steps": self.steps, "rt": self.rt}

    def load_state_dict(self, state: dict) -> None:
        self.set_p(state["p"])
        self.stream.count = int(state["stream"])
        self.signs, self.seen, self.steps = float(state["signs"]), int(state["seen"]), int(state["steps"])
        self.rt = float(state["rt"])
