"""What a training run measures, when, and which checkpoint is its best: the loop's evaluation policy.

The trainer asks one :class:`Evaluation` whether an evaluation is due
(``eval.every`` steps, and at the last step) and for its numbers. What
``eval.metrics=auto`` measures is the registry's rule
(metrics.registry.auto_metrics with ``training=True``: toys the cheap mode
counts of VEEGAN/PacGAN, 28x28 digits FID on the digit features, other
images nothing unless asked). The metrics themselves are the registry's and
are computed by metrics.evaluate.Evaluator with the evaluation's own seeded
z, so an evaluation never moves the training's random streams. Under data
parallelism every rank extracts its share of the samples and rank 0 scores
them all. ``eval.best`` keeps checkpoints/best.pt for the best value of one
score, in the registry's direction.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import UserError
from ..metrics import registry
from ..metrics.modes import mode_metrics
from ..rng import Stream


def eval_labels(n: int, classes: int, device) -> Optional[torch.Tensor]:
    """Balanced labels for a conditional evaluation (0, 1, ..., C-1, 0, 1, ...); None if unconditional."""
    return torch.arange(n, device=device) % classes if classes else None


class Evaluation:
    """The evaluation policy of one run: see the module doc."""

    def __init__(self, cfg, data, device, dist):
        self.cfg, self.data, self.device, self.dist = cfg, data, device, dist
        self.best: Optional[dict] = None     # {"metric", "value", "step"} of checkpoints/best.pt
        self._evaluator = None               # decided at the first evaluation: False, "modes" or an Evaluator

    def due(self, step: int) -> bool:
        every = self.cfg.eval.every
        return bool(every and step % every == 0) or step == self.cfg.steps

    def evaluator(self):
        """None (nothing to measure), "modes" (the toys' cheap counts), or an Evaluator built on first use."""
        if self._evaluator is None:
            with torch.random.fork_rng(devices=[self.device] if torch.device(self.device).type == "cuda" else []):
                self._evaluator = self._decide()          # building an extractor draws its initial weights
            self._check_best()
        return self._evaluator or None

    def described(self) -> str:
        """What the evaluations measured with ("mnist features", "mode counts"; "" before the first one)."""
        ev = self._evaluator        # an Evaluator; the image-to-image games keep the extractor itself (train.translate)
        return "mode counts" if ev == "modes" else f"{getattr(ev, 'extractor', ev).name} features" if ev else ""

    def _decide(self):
        e, data = self.cfg.eval, self.data
        if e.metrics == "none":
            return False
        if e.metrics == "auto":
            metrics = registry.auto_metrics(data.kind, None, tuple(data.shape), self.cfg.data.name,
                                            density=data.density is not None, training=True)
            if data.density is not None:
                return "modes"                 # the cheap counts, without the evaluator's divergences
            if not metrics:
                return False
        else:
            metrics = tuple(m.strip() for m in e.metrics.split(",") if m.strip())
        from ..metrics.evaluate import Evaluator, Settings
        from ..metrics.sources import from_data_config
        return Evaluator(from_data_config(self.cfg.data, loaded=data), Settings(metrics=metrics, features=e.features, seed=e.seed,
                                                                  device=self.device, kid_subsets=20))

    def _check_best(self) -> None:
        best = self.cfg.eval.best
        if best and self._evaluator not in (False, "modes"):
            needed = registry.metric_of(best).name
            if needed not in self._evaluator.metrics:
                raise UserError(f"eval.best={best} needs the metric {needed} in eval.metrics "
                                f"({','.join(self._evaluator.metrics)})")

    def measure(self, trainer, n: Optional[int] = None) -> dict:
        """The evaluation's numbers for the log line (flat keys); {} on the ranks other than 0. ``n``: the first
        n of eval.n samples (train.minutes times an evaluation on them)."""
        ev = self.evaluator()
        if ev is None:
            return {}
        e = self.cfg.eval
        z = torch.randn(e.n, self.cfg.model.z_dim, generator=Stream(e.seed, "eval-z").next())[:n].to(self.device)
        y = eval_labels(len(z), trainer.G.n_classes, self.device)
        if ev == "modes":
            if not self.dist.main:
                return {}
            m = mode_metrics(trainer.generate(z, y), self.data.density.means, self.data.density.std)
            return {"modes": m["modes"], "hq": m["hq"], "kl": m["kl"]}
        got = self._extract_everywhere(trainer, ev, z, y) if self.dist.active else None
        if not self.dist.main:
            return {}

        def source(start, count):
            return trainer.generate(z[start:start + count], None if y is None else y[start:start + count])
        if y is not None and got is None:         # one pass of the extractor for the metrics and class_scores
            got = ev.extract_fake(source, len(z))
        out = registry.flat_scores(ev(source, len(z), extracted=got))
        if y is not None:
            from ..metrics.evaluate import class_scores
            out.update(class_scores(ev, source, y, got))
        return out

    def _extract_everywhere(self, trainer, ev, z: torch.Tensor, y: Optional[torch.Tensor]):
        """Each rank draws its contiguous share of the evaluation's samples and runs them through the
        extractor; rank 0 receives every share, in order (None on the other ranks)."""
        from ..metrics.extract import Extracted
        from ..metrics.fid import FeatureStats
        part = z.tensor_split(self.dist.world)[self.dist.rank]
        part_y = None if y is None else y.tensor_split(self.dist.world)[self.dist.rank]
        mine = ev.extract_fake(lambda start, count: trainer.generate(
            part[start:start + count], None if part_y is None else part_y[start:start + count]), len(part))
        shares = self.dist.gather_to_main((mine.features, mine.logits, mine.seconds))
        if shares is None:
            return None
        feats = torch.cat([f for f, _, _ in shares])
        logits = None if mine.logits is None else torch.cat([lg for _, lg, _ in shares])
        return Extracted(FeatureStats(feats.shape[1]).update(feats), feats, logits, len(feats),
                         max(sec for _, _, sec in shares))

    def improved(self, scores: dict, step: int) -> bool:
        """Whether ``scores`` beat the best so far in eval.best's score (then it becomes the best)."""
        name = self.cfg.eval.best
        if not name or scores.get(name) is None:
            return False
        v, b = float(scores[name]), self.best
        lower = registry.lower_is_better(name)
        if b is None or (v < b["value"] if lower else v > b["value"]):
            self.best = {"metric": name, "value": v, "step": step}
            return True
        return False
