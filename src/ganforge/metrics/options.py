"""The ``eval`` section of the config: what the training loop measures, how often, and which checkpoint it keeps.

It lives with the metrics, as the data section lives with the data
(data/options.py): its choices are the metric and extractor registries'
(metrics.registry, metrics.features); ganforge.config puts it in its place
as ``Config.eval``. The metrics cite their papers in their modules.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..schema import opt


def _extractor_names():
    from .features import names
    return names()


def _best_choices():
    from .registry import best_choices
    return best_choices()


@dataclass
class EvalConfig:
    """Metrics computed during training, logged to metrics.jsonl and TensorBoard."""
    every: int = opt(0, "evaluate every N steps; 0: only at the end", min=0)
    n: int = opt(2500, "generated samples per evaluation", min=1)
    seed: int = opt(12345, "seed of the evaluation's own z")
    metrics: str = opt("auto", "comma list of fid,kid,is,pr,dc,modes,memorization,cmmd, or none; auto: toys modes (modes, hq, kl), "
                       "28x28 digits fid,modes with the mnist features, other images none")
    features: Optional[str] = opt(None, "feature extractor for image metrics; null: mnist for 28x28 digits, "
                                  "else efficientnet-lite0", choices=_extractor_names)
    best: Optional[str] = opt(None, "keep checkpoints/best.pt for the best value of fid, kid, is, precision, recall, "
                              "density, coverage, kl or modes; null: off", choices=_best_choices)
