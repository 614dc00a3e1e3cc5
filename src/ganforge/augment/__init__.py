"""Differentiable augmentation of what D sees: DiffAugment and ADA, one class each, one call signature.

- ``diffaug``: DiffAugment, Zhao et al., "Differentiable Augmentation for
  Data-Efficient GAN Training" (NeurIPS 2020): color, translation, cutout,
  always on (ganforge.augment.diffaug).
- ``ada``: adaptive discriminator augmentation, Karras et al., "Training
  Generative Adversarial Networks with Limited Data" (NeurIPS 2020): pixel
  blitting, general geometric and colour transforms, each with probability
  ``aug.p`` (ganforge.augment.ada; its p update is ``ada.adjust_p``).

Both are built by ``make(kind, **options)`` and called as
``aug(x, generator, rows=slice(None), n_global=None)``: x holds this
process's rows ``rows`` of a global batch of ``n_global`` float images
(N, C, H, W) in [-1, 1]; every random parameter is drawn from ``generator``
for the global batch, so N processes augment as one does. Every transform
is differentiable with respect to x and works on the whole batch at once.
The transforms are pure tensor code: they import only torch and ganforge.errors.
"""
from __future__ import annotations

from ..errors import UserError
from .ada import ADA, adjust_p
from .diffaug import DiffAugment

AUGMENTS = {"diffaug": DiffAugment, "ada": ADA}


def make(kind: str, **options):
    """The augmentation ``kind`` (a key of AUGMENTS) built with its options."""
    if kind not in AUGMENTS:
        raise UserError(f"augment={kind!r}: choose one of {', '.join(AUGMENTS)}")
    try:
        return AUGMENTS[kind](**options)
    except TypeError as e:          # an option the class does not take
        raise UserError(f"augment={kind}: {e}") from None


__all__ = ["ADA", "AUGMENTS", "DiffAugment", "adjust_p", "make"]
