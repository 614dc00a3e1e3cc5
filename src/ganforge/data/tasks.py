"""Embedded image-to-image tasks with ground truth, built from data that ships with installed packages.

Paired tasks (pix2pix, Isola et al. 2017) give each input A its target B;
unpaired ones (CycleGAN, Zhu et al. 2017) give two domains with no image in
both, made by a known mapping so that every translation has a true answer.

- ``edges2digits``: the binary edge map of an MNIST digit (Sobel gradient
  magnitude over a threshold) -> the digit.
- ``inpaint-digits``: the digit with an 8x8 square (a seeded place in the
  central 20x20) set to middle gray -> the whole digit. A larger hole hides
  what the digit is: a classifier fine-tuned on the masked inputs reads 92.2%
  of held-out labels with a 12 px hole, 96.6% with 8 px
  (benchmarks/inpaint_label_bound.py).
- ``sr-digits`` / ``sr14-digits``: the digit averaged down to 7x7 (14x14)
  and bicubically enlarged back to 28x28 -> the digit (super-resolution).
- ``colorize``: gray (ITU-R 601 luma) -> RGB on disjoint 32x32 tiles of the
  eight color photos scikit-image ships, each scaled to a shorter side of
  320 px; the label is the photo, so held-out tiles come from every photo
  and share no pixel with training tiles.
- ``thin2thick`` (unpaired): half of the digits as they are (A) and the other
  half dilated by a 3x3 maximum (B); A's true translation is its dilation.
- ``invert-digits`` (unpaired): half as they are (A), the other half
  inverted (B); the true mapping is 1 - x both ways.

Each loader returns a :class:`Task` of float32 images in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError
from .embedded import load_mnist

TASK_SEED = 20170330          # fixed: masks and the domain split never depend on the run's seed
HOLE = 8                      # side of the inpainting square
EDGE_THRESHOLD = 2.0          # on the Sobel magnitude of a [0, 1] digit (0 to about 5.7): hollow outlines
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
          "stereo_motorcycle", "retina")
TILE, PHOTO_SIDE = 32, 320


@dataclass
class Task:
    a: Tensor                          # domain A (the inputs)
    b: Tensor                          # domain B; paired: b[i] is the target of a[i]
    y_a: Optional[Tensor]              # labels (paired: one per pair)
    y_b: Optional[Tensor]
    classes: Optional[list]
    paired: bool
    a_true: Optional[Tensor] = None    # unpaired: the true B image of each A image
    b_true: Optional[Tensor] = None    # unpaired: the true A image of each B image


def sobel_edges(x: Tensor, threshold: float = EDGE_THRESHOLD) -> Tensor:
    """1 where the Sobel gradient magnitude of gray images (N, 1, H, W) exceeds ``threshold``, else 0."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    k = torch.stack([kx, kx.t()]).unsqueeze(1)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)
    return (g.square().sum(1, keepdim=True).sqrt() > threshold).float()


def holes(x: Tensor, side: int = HOLE, seed: int = TASK_SEED) -> tuple[Tensor, Tensor]:
    """x with a side x side square at a seeded place in its central part set to 0.5, and the masks (1 = hole)."""
    n, _, h, w = x.shape
    g = torch.Generator().manual_seed(seed)
    margin = (h - 20) // 2
    top = torch.randint(margin, h - margin - side + 1, (n,), generator=g)
    left = torch.randint(margin, w - margin - side + 1, (n,), generator=g)
    rows, cols = torch.arange(h), torch.arange(w)
    inside_r = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + side)
    inside_c = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + side)
    mask = (inside_r[:, :, None] & inside_c[:, None, :]).unsqueeze(1).float()
    return x * (1 - mask) + 0.5 * mask, mask


def low_resolution(x: Tensor, factor: int) -> Tensor:
    """x averaged over factor x factor blocks, then enlarged back bicubically (the usual SR input)."""
    small = F.avg_pool2d(x, factor)
    return F.interpolate(small, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)


def dilate(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _digits():
    x, y, classes = load_mnist()
    return x, y, classes


def edges2digits() -> Task:
    x, y, c = _digits()
    return Task(sobel_edges(x), x, y, y, c, paired=True)


def inpaint_digits() -> Task:
    x, y, c = _digits()
    return Task(holes(x)[0], x, y, y, c, paired=True)


def sr_digits(factor: int = 4) -> Task:
    x, y, c = _digits()
    return Task(low_resolution(x, factor), x, y, y, c, paired=True)


def luma(rgb: Tensor) -> Tensor:
    """ITU-R BT.601 luma of RGB images (N, 3, H, W)."""
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def photo_tiles(names=PHOTOS, tile: int = TILE, shorter: int = PHOTO_SIDE) -> tuple[Tensor, Tensor]:
    """Disjoint tile x tile RGB tiles in [0, 1] of each named scikit-image photo scaled to ``shorter`` px, and
    the index of each tile's photo."""
    try:
        from skimage import data
    except ImportError:
        raise UserError("the colorize task needs scikit-image's photos: pip install scikit-image") from None
    tiles, ys = [], []
    for i, name in enumerate(names):
        img = getattr(data, name)()
        img = img[0] if isinstance(img, tuple) else img         # stereo_motorcycle: (left, right, disparity)
        t = torch.from_numpy(np.ascontiguousarray(img[..., :3])).permute(2, 0, 1).float()[None] / 255.0
        h, w = t.shape[-2:]
        s = shorter / min(h, w)
        t = F.interpolate(t, size=(round(h * s), round(w * s)), mode="area")[0]
        rows, cols = t.shape[1] // tile, t.shape[2] // tile
        blocks = t[:, :rows * tile, :cols * tile].reshape(3, rows, tile, cols, tile).permute(1, 3, 0, 2, 4)
        tiles.append(blocks.reshape(-1, 3, tile, tile))
        ys.append(torch.full((rows * cols,), i, dtype=torch.int64))
    return torch.cat(tiles).clamp(0, 1).contiguous(), torch.cat(ys)


def colorize() -> Task:
    rgb, y = photo_tiles()
    return Task(luma(rgb), rgb, y, y, list(PHOTOS), paired=True)


def _halves(n: int) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(TASK_SEED))
    return perm[: n // 2].sort().values, perm[n // 2:].sort().values


def _unpaired(to_b, to_a) -> Task:
    x, y, c = _digits()
    ia, ib = _halves(len(x))
    a, b = x[ia], to_b(x[ib])
    return Task(a, b, y[ia], y[ib], c, paired=False, a_true=to_b(a), b_true=to_a(b, x[ib]))


def thin2thick() -> Task:
    return _unpaired(dilate, lambda b, original: original)


def invert_digits() -> Task:
    return _unpaired(lambda v: 1 - v, lambda b, original: 1 - b)


TASKS = {
    "edges2digits": (edges2digits, "paired: Sobel edge map of an MNIST digit -> the digit, 28x28"),
    "inpaint-digits": (inpaint_digits, "paired: digit with an 8x8 gray square -> the whole digit, 28x28"),
    "sr-digits": (sr_digits, "paired: 7x7 digit enlarged bicubically -> the 28x28 digit (4x super-resolution)"),
    "sr14-digits": (lambda: sr_digits(2), "paired: 14x14 digit enlarged bicubically -> the 28x28 digit (2x)"),
    "colorize": (colorize, "paired: gray -> RGB on disjoint 32x32 tiles of scikit-image's 8 color photos"),
    "thin2thick": (thin2thick, "unpaired: digits (A) and other digits dilated 3x3 (B), 28x28"),
    "invert-digits": (invert_digits, "unpaired: digits (A) and other digits inverted (B), 28x28"),
}
