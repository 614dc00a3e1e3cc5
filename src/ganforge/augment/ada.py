"""ADA: the adaptive discriminator augmentation pipeline, and its update of the probability p.

Karras, Aittala, Hellsten, Laine, Lehtinen & Aila, "Training Generative
Adversarial Networks with Limited Data" (NeurIPS 2020); its reference is
stylegan2-ada-pytorch, training/augment.py. Every transform is applied to an
image with probability p times its multiplier (1 for each transform of the
pipeline chosen; the paper's default 'bgc' = blit + geom + color), with
the paper's distributions, in the paper's order:

- blit: x-flip (i ~ U{0, 1}: when chosen, half the images flip), quarter
  turns (k ~ U{0..3}), integer translation (uniform within ±1/8 of the side,
  rounded to pixels);
- geom: isotropic scaling 2^N(0, 0.2²), rotation ~ U[-180°, 180°] (twice,
  before and after the anisotropic scaling, each with probability
  1 - sqrt(1 - p) so that some rotation happens with probability p),
  anisotropic scaling 2^N(0, 0.2²) along x and its inverse along y,
  fractional translation N(0, 0.125²) of the side;
- color: brightness + N(0, 0.2²), contrast 2^N(0, 0.5²), luma flip
  (i ~ U{0, 1}), hue rotation ~ U[-180°, 180°], saturation 2^N(0, 1²).

The geometric transforms compose into one matrix per image, executed once
with mirror padding on a 2x grid (ganforge.augment.geometry, which says how
its filters and padding differ from the reference); only the images whose
matrix is not the identity are resampled, the others pass unchanged (the
reference resamples the whole batch). The colour ones compose into one 4x4
matrix (ganforge.augment.color). For 1-channel images hue and saturation are
skipped (they leave grey unchanged). p = 0 returns the input itself. Not
implemented: the reference's image-space filtering, noise and cutout groups.

:func:`adjust_p` is the paper's update: every few D steps p moves by
sign(r_t - target) * (images in those steps) / speed, with r_t = E[sign
D(x_real)], and stays in [0, 1] (the reference clamps at 0 only).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import UserError
from . import color, geometry
from .draws import Draws, local_rows

BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
PIPES = {"blit": BLIT, "geom": GEOM, "color": COLOR, "bg": BLIT + GEOM, "bgc": BLIT + GEOM + COLOR}
RANGES = {"xint_max": 0.125, "scale_std": 0.2, "rotate_max": 1.0, "aniso_std": 0.2, "xfrac_std": 0.125,
          "brightness_std": 0.2, "contrast_std": 0.5, "hue_max": 1.0, "saturation_std": 1.0}
OPTIONS = ("p", "pipe") + BLIT + GEOM + COLOR + tuple(RANGES)


def adjust_p(p: float, r_t: float, target: float, batch_images: int, speed_images: float) -> float:
    """p after one update: p + sign(r_t - target) * batch_images / speed_images, clamped to [0, 1].
    ``batch_images``: the images seen since the last update (the paper: batch size x 4 D steps);
    ``speed_images``: how many images p takes to cross [0, 1] (the paper: 500,000)."""
    if speed_images <= 0:
        raise UserError(f"ADA's speed must be a positive number of images, got {speed_images}")
    sign = (r_t > target) - (r_t < target)
    return min(max(p + sign * batch_images / speed_images, 0.0), 1.0)


class ADA:
    """``aug(x, generator, rows=slice(None), n_global=None)``, x (N, 1 or 3, H, W) in [-1, 1]. ``aug.p``: the
    probability (the loop sets it). ``pipe``: which groups ('bgc', 'bg', 'blit', 'geom', 'color'); any
    transform's multiplier and any range (RANGES) can be given by name, e.g. ``xflip=1, rotate90=0``."""

    def __init__(self, p: float = 0.0, pipe: str = "bgc", **options):
        if pipe not in PIPES:
            raise UserError(f"augment pipe {pipe!r}: choose one of {', '.join(PIPES)}")
        bad = sorted(set(options) - set(OPTIONS))
        if bad:
            raise UserError(f"ADA has no option {bad[0]!r}; its options: {', '.join(OPTIONS)}")
        self.p = float(p)
        self.multipliers = {t: float(options.get(t, t in PIPES[pipe])) for t in BLIT + GEOM + COLOR}
        self.ranges = {k: float(options.get(k, v)) for k, v in RANGES.items()}
        for k, v in {"p": self.p, **self.multipliers, **self.ranges}.items():
            if not (math.isfinite(v) and v >= 0):
                raise UserError(f"ADA's {k}={v}: a finite number >= 0")

    def __call__(self, x: Tensor, generator: torch.Generator, rows: slice = slice(None),
                 n_global: int | None = None) -> Tensor:
        n_global = local_rows(x.shape[0], rows, n_global)
        if not 0 <= self.p <= 1:
            raise ValueError(f"ADA's p must lie in [0, 1], got {self.p}")
        if self.p == 0:
            return x
        n, c, h, w = x.shape
        if c not in (1, 3) and any(self.multipliers[t] for t in COLOR):
            raise UserError(f"ADA's colour transforms need 1- or 3-channel images, got {c} channels: "
                            "use augment.pipe=bg")
        G_inv, C = self.matrices(generator, n_global, h, w, c)
        with torch.autocast(x.device.type, enabled=False):             # in float32 inside a bf16/fp16 phase too
            y = x if x.dtype in (torch.float32, torch.float64) else x.float()
            G_inv = G_inv[rows]
            moved = (G_inv != torch.eye(3)).flatten(1).any(1).nonzero().flatten()   # each image's result: its own
            if len(moved) == len(y):
                y = geometry.warp(y, G_inv.to(x.device))
            elif len(moved):
                idx = moved.to(x.device)
                y = y.index_copy(0, idx, geometry.warp(y.index_select(0, idx), G_inv[moved].to(x.device)))
            if not torch.equal(C, torch.eye(4).expand_as(C)):
                y = color.recolor(y, C[rows].to(x.device))
        return y.to(x.dtype)

    def matrices(self, generator: torch.Generator, n_global: int, height: int, width: int,
                 channels: int) -> tuple[Tensor, Tensor]:
        """The global batch's geometric (n_global, 3, 3; output pixel -> input position) and colour
        (n_global, 4, 4) matrices, on the CPU, drawn from ``generator`` in a fixed order."""
        d = Draws(generator, n_global, slice(None), "cpu")
        with torch.autocast("cpu", enabled=False):                      # products of float32 matrices, not bf16
            return self._geometry(d, height, width), self._color(d, channels)

    def _chosen(self, d: Draws, name: str, value: Tensor, identity: float, probability: float | None = None) -> Tensor:
        """``value`` where the image draws this transform, else the identity value (one mask per image)."""
        p = self.p * self.multipliers[name] if probability is None else probability
        mask = d.chance(p).view(-1, *([1] * (value.dim() - 1)))
        return torch.where(mask, value, torch.full_like(value, identity))

    def _geometry(self, d: Draws, h: int, w: int) -> Tensor:
        """The global batch's output -> input matrices (n_global, 3, 3), on the CPU."""
        m, r = self.multipliers, self.ranges
        G = torch.eye(3).repeat(d.n, 1, 1)
        if m["xflip"]:
            i = self._chosen(d, "xflip", d.integers(0, 2), 0).cpu()
            G = G @ geometry.scale_matrix(1 - 2 * i, torch.ones_like(i))
        if m["rotate90"]:
            G = G @ geometry.quarter_matrix(self._chosen(d, "rotate90", d.integers(0, 4), 0).cpu())
        if m["xint"]:
            t = self._chosen(d, "xint", (d.uniform(2) * 2 - 1) * r["xint_max"], 0).cpu()
            G = G @ geometry.translate_matrix(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))
        if m["scale"]:
            s = self._chosen(d, "scale", torch.exp2(d.normal() * r["scale_std"]), 1).cpu()
            G = G @ geometry.scale_matrix(1 / s, 1 / s)
        p_rot = 1 - math.sqrt(min(max(1 - m["rotate"] * self.p, 0.0), 1.0))     # P(pre or post) = p
        if m["rotate"]:
            theta = self._chosen(d, "rotate", (d.uniform() * 2 - 1) * math.pi * r["rotate_max"], 0, p_rot).cpu()
            G = G @ geometry.rotate_matrix(theta)
        if m["aniso"]:
            s = self._chosen(d, "aniso", torch.exp2(d.normal() * r["aniso_std"]), 1).cpu()
            G = G @ geometry.scale_matrix(1 / s, s)
        if m["rotate"]:
            theta = self._chosen(d, "rotate", (d.uniform() * 2 - 1) * math.pi * r["rotate_max"], 0, p_rot).cpu()
            G = G @ geometry.rotate_matrix(theta)
        if m["xfrac"]:
            t = self._chosen(d, "xfrac", d.normal(2) * r["xfrac_std"], 0).cpu()
            G = G @ geometry.translate_matrix(-t[:, 0] * w, -t[:, 1] * h)
        return G

    def _color(self, d: Draws, channels: int) -> Tensor:
        """The global batch's colour matrices (n_global, 4, 4), on the CPU."""
        m, r = self.multipliers, self.ranges
        C = torch.eye(4).repeat(d.n, 1, 1)
        if m["brightness"]:
            C = color.brightness_matrix(self._chosen(d, "brightness", d.normal() * r["brightness_std"], 0).cpu()) @ C
        if m["contrast"]:
            c = self._chosen(d, "contrast", torch.exp2(d.normal() * r["contrast_std"]), 1).cpu()
            C = color.contrast_matrix(c) @ C
        if m["lumaflip"]:
            C = color.lumaflip_matrix(self._chosen(d, "lumaflip", d.integers(0, 2), 0).cpu()) @ C
        if m["hue"] and channels == 3:
            theta = self._chosen(d, "hue", (d.uniform() * 2 - 1) * math.pi * r["hue_max"], 0).cpu()
            C = color.hue_matrix(theta) @ C
        if m["saturation"] and channels == 3:
            s = self._chosen(d, "saturation", torch.exp2(d.normal() * r["saturation_std"]), 1).cpu()
            C = color.saturation_matrix(s) @ C
        return C
