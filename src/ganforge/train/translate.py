"""The training loop for image-to-image games: pix2pix (games.pair) and CycleGAN (games.cycle).

It is the core loop (train.loop) with three parts replaced: the batches are
(A, B) images (data.batches.PairBatches; CycleGAN always draws the domains
independently, even from paired data, as Zhu et al. do), the sample grids
show fixed held-out inputs, one per row (input | output | truth; CycleGAN:
a | G_AB(a) | G_BA(G_AB(a)) | truth, when the mapping is known), and an
evaluation translates the held-out inputs and scores them against their
ground truth (metrics.translation), in both directions for CycleGAN.
Checkpoints, logs, resumes, signals and data parallelism are the core's.

Samples and scores run with the training random state saved and restored
(``torch.random.fork_rng``), translations with a fixed seed inside, so the
dropout that pix2pix keeps on at test time (and the initial weights drawn
when the feature extractor is built) neither change the training run,
which an exact resume needs, nor make two evaluations of one G differ.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import torch

from ..data import load_dataset
from ..data.batches import PairBatches
from ..errors import UserError
from ..games.cycle import CycleGame, CycleOptions
from ..games.pair import PairGame, PairOptions
from ..losses import LOSSES
from ..nets import FAMILIES
from ..nets.inference import translate
from ..rng import Stream
from ..viz.grid import as_rgb, grid, png_bytes
from .evaluation import Evaluation
from .loop import Trainer

ROWS = 8                    # held-out inputs in each sample grid


class TranslationTrainer(Trainer):
    def setup_game(self) -> None:
        cfg, o = self.cfg, self.cfg.model.arch
        game = FAMILIES[cfg.model.name].game
        if game == "pair" and not self.data.paired:
            raise UserError(f"pix2pix learns from pairs and {cfg.data.name} is unpaired: use model=cyclegan")
        if cfg.d_steps != 1:
            raise UserError(f"d_steps={cfg.d_steps}: the image-to-image games update D once per G update")
        if cfg.compile:
            self.warn("compile=true applies to the GAN game; the image-to-image nets run eagerly")
        if cfg.augment.name != "none" or cfg.data.mirror:
            raise UserError("augment and data.mirror apply to the GAN game; the image-to-image games keep their "
                            "pairs as they are (use augment=none, data.mirror=false)")
        data = self.data if game == "pair" else dataclasses.replace(self.data, paired=False)
        rows = self.dist.rows(cfg.batch_size)
        self.batches = PairBatches(data, cfg.batch_size, cfg.seed, self.device, rows)
        self.z_stream = Stream(cfg.seed, "z", self.device)        # unused: kept so checkpoints have one layout
        self.aux_stream = Stream(cfg.seed, "aux", self.device)
        loss = LOSSES[cfg.loss]
        if loss.g_needs_real or loss.batch_mean or loss.penalty != "none" or cfg.penalty.name != "none" or cfg.clip:
            raise UserError(f"the image-to-image games take a loss with no penalty, clipping or relativistic term "
                            f"(nonsaturating, minimax, least-squares, hinge); got loss={cfg.loss}, "
                            f"penalty={cfg.penalty.name}")
        if game == "pair":
            self.game = PairGame(self.G, self.D, self.opt_g, self.opt_d,
                                 PairOptions(loss, o.l1_weight, o.gan_weight, o.d_noise, cfg.batch_size),
                                 batches=self.batches, precision=self.precision, aux_stream=self.aux_stream,
                                 dist=self.dist)
        else:
            self.game = CycleGame(self.G, self.D, self.opt_g, self.opt_d,
                                  CycleOptions(loss, o.cycle_weight, o.identity_weight, o.pool_size),
                                  batches=self.batches, aux_stream=self.aux_stream, precision=self.precision,
                                  dist=self.dist)
        self.cycle = game == "cycle"
        self.heldout = self._heldout()
        n = min(cfg.log.n_samples or ROWS, len(self.heldout.a))
        pick = torch.linspace(0, len(self.heldout.a) - 1, n).round().long()       # spread over the classes
        self.fixed_a = self.heldout.a[pick].to(self.device)
        truth = truth_ab(self.heldout)
        self.fixed_truth = None if truth is None else truth[pick]
        self.fixed_z, self.fixed_y, self.fixed_per = self.fixed_a, None, None

    def make_evaluation(self):
        return TranslationEvaluation(self.cfg, self.data, self.device, self.dist)

    def _heldout(self):
        """The held-out part of the data (the training part itself when nothing is held out)."""
        d = self.cfg.data
        if d.split != "train":
            return self.data
        try:
            return load_dataset(dataclasses.replace(d, split="holdout"))
        except UserError:                   # nothing held out
            return self.data

    def generate(self, a: torch.Tensor, y=None, ema: bool = True, direction: str = "ab") -> torch.Tensor:
        net = self.ema.module if (ema and self.ema) else self.G
        if self.cycle:
            net = net.ab if direction == "ab" else net.ba
        return translate(net, a.to(self.device), self.precision)

    def samples_picture(self) -> tuple:
        """One row per fixed held-out input: input | output | truth (CycleGAN: | the way back)."""
        out = self.generate(self.fixed_a)
        cols = [self.fixed_a, out]
        if self.cycle:
            cols.append(self.generate(out, direction="ba"))
        if self.fixed_truth is not None:
            cols.insert(2, self.fixed_truth.to(self.device))
        c = max(t.shape[1] for t in cols)
        arr = grid(torch.stack([as_rgb(t.float(), c) for t in cols], 1).flatten(0, 1), nrow=len(cols))
        return arr, png_bytes(arr), {"x": out.cpu().numpy().astype(np.float16)}


def truth_ab(data) -> Optional[torch.Tensor]:
    """The known answers of the A -> B translation: the paired targets, or the mapped images of a known task."""
    return data.x if data.paired else data.a_true


class TranslationEvaluation(Evaluation):
    """Held-out inputs translated and scored against their truth (metrics.translation), both ways for CycleGAN."""

    def evaluator(self):
        e = self.cfg.eval
        if e.metrics not in ("auto", "none"):
            raise UserError(f"eval.metrics={e.metrics}: image-to-image runs measure l1, psnr, ssim (and acc, fid); "
                            "choose auto or none")
        if e.best is not None and e.best != "fid":
            raise UserError(f"eval.best={e.best}: image-to-image runs keep the best fid")
        if e.metrics == "none":
            return None
        if self._evaluator is None:
            from ..metrics.features import default_extractor, get_extractor
            name = e.features or default_extractor(self.data.shape)
            self._evaluator = get_extractor(name).to(self.device)
            self.classify = name == "mnist" and self.data.classes == [str(i) for i in range(10)]
            self.reference: dict = {}
        return self._evaluator

    def _reference_stats(self, direction: str):
        """Features of every real image of the target domain (computed once)."""
        from ..metrics.translation import reference_stats
        if direction not in self.reference:
            real = load_dataset(dataclasses.replace(self.cfg.data, split="all", holdout=0.0))
            self.reference[direction] = reference_stats(self._evaluator, real.x if direction == "ab" else real.a)
        return self.reference[direction]

    def measure(self, trainer, n=None) -> dict:
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):          # building the extractor draws initial weights
            return self._measure(trainer, n)

    def _measure(self, trainer, n=None) -> dict:
        from ..metrics.translation import translation_scores
        ext = self.evaluator()
        if ext is None or not self.dist.main:
            return {}
        h, n = trainer.heldout, n or self.cfg.eval.n
        out = {}
        truth = truth_ab(h)
        if truth is not None:
            labels = h.y if h.paired else h.y_a
            out.update(translation_scores(trainer.generate(h.a[:n]), truth[:n], None if labels is None else labels[:n],
                                          ext, self._reference_stats("ab"), self.classify))
        if trainer.cycle and h.b_true is not None:
            scores = translation_scores(trainer.generate(h.x[:n], direction="ba"), h.b_true[:n],
                                        None if h.y is None else h.y[:n], ext, self._reference_stats("ba"),
                                        self.classify)
            out.update({f"{k}_ba": v for k, v in scores.items()})
        return out
