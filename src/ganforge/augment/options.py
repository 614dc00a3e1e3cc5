"""The ``augment`` section of the config: what D's inputs go through (DiffAugment, ADA) and how ADA adapts.

It lives with the augmentation code, as the data section lives with the data
(data/options.py), so that the games and the loop read it without the whole
config; ganforge.config puts it in its place as ``Config.augment``.
DiffAugment: Zhao et al. 2020; ADA: Karras et al. 2020 (its defaults: target
0.6, p updated every 4 D steps, 500k images for p to cross [0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..schema import opt


@dataclass
class AugmentConfig:
    """Augmentation of every image D sees, real and generated, in both phases (games.augment)."""
    name: str = opt("none", "none, diffaug (DiffAugment, Zhao et al. 2020) or ada (adaptive discriminator "
                    "augmentation, Karras et al. 2020)", choices=("none", "diffaug", "ada"))
    policy: str = opt("color,translation,cutout", "diffaug: the transforms, a comma list of color, translation "
                      "and cutout")
    pipe: str = opt("bgc", "ada: the transform groups: bgc (blitting, geometric, colour: the paper's default), bg, "
                    "blit, geom or color", choices=("bgc", "bg", "blit", "geom", "color"))
    p: Optional[float] = opt(None, "ada: a fixed probability of each transform; null: adapted to target", min=0.0,
                             max=1.0)
    target: float = opt(0.6, "ada: the value of r_t = E[sign D(real)] that p is adapted toward", min=-1.0, max=1.0)
    interval: int = opt(4, "ada: D steps between two updates of p", min=1)
    speed_kimg: float = opt(500.0, "ada: thousands of images in which p can go from 0 to 1", gt=0.0)
