"""DiffAugment: cheap differentiable augmentations, always on, for every image D sees.

Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient
GAN Training" (NeurIPS 2020). Three policies, combinable as
"color,translation,cutout" and applied in the order given; each draws one
set of parameters per image (the paper's official choices, from its code
mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py):

- ``color``: brightness + b, b ~ U[-0.5, 0.5]; saturation: the channel mean
  plus s times the deviation from it, s ~ U[0, 2]; contrast: the image mean
  plus c times the deviation from it, c ~ U[0.5, 1.5] (in that order).
- ``translation``: an integer shift of up to 1/8 of the side (rounded) in
  each direction, each value in [-shift, shift] equally likely; the empty
  border is zero.
- ``cutout``: a square of half the side (rounded), centred uniformly (it may
  hang over the border), set to zero.

Values are in the training range [-1, 1]; the ranges are the official code's
on that range. A 1-channel image passes saturation unchanged (its channel
mean is itself). DiffAugment has no probability p: every image is augmented.
Unlike the official code, parameters come from the caller's generator, drawn
for the global batch and cut to this process's rows (ganforge.augment.draws).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError
from .draws import Draws, local_rows

POLICIES = ("color", "translation", "cutout")


def brightness(x: Tensor, b: Tensor) -> Tensor:
    return x + b.to(x)[:, None, None, None]


def saturation(x: Tensor, s: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * s.to(x)[:, None, None, None] + mean


def contrast(x: Tensor, c: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c.to(x)[:, None, None, None] + mean


def translation(x: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """Each image's content moved tx pixels right and ty down (integers), zeros where nothing moved in. Two
    gathers (their gradient is deterministic on a GPU)."""
    n, c, h, w = x.shape
    tx, ty = tx.to(x.device, torch.long), ty.to(x.device, torch.long)
    px, py = (int(t.abs().max()) if n else 0 for t in (tx, ty))
    padded = F.pad(x, (px, px, py, py))
    rows = torch.arange(h, device=x.device)[None] - ty[:, None] + py          # (n, h): the row each row reads
    cols = torch.arange(w, device=x.device)[None] - tx[:, None] + px          # (n, w)
    x = padded.gather(2, rows[:, None, :, None].expand(n, c, h, padded.shape[3]))
    return x.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def cutout(x: Tensor, top: Tensor, left: Tensor, size: tuple[int, int]) -> Tensor:
    """Each image with the rows [top, top + size[0]) and columns [left, left + size[1]) zeroed (clipped)."""
    n, c, h, w = x.shape
    top, left = top.to(x.device)[:, None], left.to(x.device)[:, None]
    r, q = torch.arange(h, device=x.device)[None], torch.arange(w, device=x.device)[None]
    in_rows = (r >= top) & (r < top + size[0])                                 # (n, h)
    in_cols = (q >= left) & (q < left + size[1])                               # (n, w)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


def parse_policy(policy: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in str(policy).split(",") if p.strip())
    bad = [p for p in names if p not in POLICIES]
    if bad or not names:
        raise UserError(f"augment policy {policy!r}: choose one or more of {', '.join(POLICIES)}, joined by commas")
    return names


def _side(n: int, ratio: float) -> int:
    return int(n * ratio + 0.5)


class DiffAugment:
    """``aug(x, generator, rows=slice(None), n_global=None)``: see the module docstring."""

    def __init__(self, policy: str = "color,translation,cutout", translation: float = 0.125, cutout: float = 0.5):
        self.policy = parse_policy(policy)
        for name, value in (("translation", translation), ("cutout", cutout)):
            if not 0 <= float(value) <= 1:
                raise UserError(f"augment.{name}={value}: a fraction of the image side in [0, 1]")
        self.translation, self.cutout = float(translation), float(cutout)

    def __call__(self, x: Tensor, generator: torch.Generator, rows: slice = slice(None),
                 n_global: int | None = None) -> Tensor:
        d = Draws(generator, local_rows(x.shape[0], rows, n_global), rows, x.device)
        h, w = x.shape[-2:]
        with torch.autocast(x.device.type, enabled=False):             # in x's precision inside an autocast phase
            for name in self.policy:
                if name == "color":
                    b, s, c = d.uniform() - 0.5, d.uniform() * 2, d.uniform() + 0.5
                    x = contrast(saturation(brightness(x, d.local(b)), d.local(s)), d.local(c))
                elif name == "translation":
                    sy, sx = _side(h, self.translation), _side(w, self.translation)
                    ty, tx = d.integers(-sy, sy + 1), d.integers(-sx, sx + 1)
                    x = translation(x, d.local(tx), d.local(ty))
                else:
                    size = (_side(h, self.cutout), _side(w, self.cutout))
                    cy = d.integers(0, h + 1 - size[0] % 2) - size[0] // 2
                    cx = d.integers(0, w + 1 - size[1] % 2) - size[1] // 2
                    x = cutout(x, d.local(cy), d.local(cx), size)
        return x
