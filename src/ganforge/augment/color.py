"""ADA's colour transforms: per-image 4x4 matrices on (r, g, b, 1), composed into one and applied once.

Karras et al., "Training Generative Adversarial Networks with Limited Data"
(NeurIPS 2020), appendix B. Colours are taken in the training range [-1, 1],
so 0 is mid-grey: brightness adds b to every channel, contrast multiplies by
c about mid-grey, luma flip is the Householder reflection about the plane
orthogonal to the luma axis v = (1, 1, 1) / sqrt(3) (a grey g becomes -g),
hue rotation turns colours about v, saturation scales the part of a colour
orthogonal to v by s (s = 0: grey). A matrix maps input colour to output
colour, so ``A @ B`` applies B first.

A 1-channel image is treated as the grey (g, g, g): its output is the mean
of the three output channels (as stylegan2-ada-pytorch does). Hue and
saturation leave grey unchanged, so the ADA pipeline skips them for 1
channel.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _eye(n: int, like: Tensor) -> Tensor:
    return torch.eye(4, dtype=like.dtype, device=like.device).repeat(n, 1, 1)


def luma_axis(like: Tensor) -> Tensor:
    return torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=like.dtype, device=like.device) / math.sqrt(3)


def brightness_matrix(b: Tensor) -> Tensor:
    m = _eye(len(b), b)
    m[:, :3, 3] = b[:, None]
    return m


def contrast_matrix(c: Tensor) -> Tensor:
    m = _eye(len(c), c)
    m[:, [0, 1, 2], [0, 1, 2]] = c[:, None]
    return m


def lumaflip_matrix(i: Tensor) -> Tensor:
    """i = 1: the Householder reflection I - 2 v v^T; i = 0: identity."""
    v = luma_axis(i)
    return _eye(len(i), i) - 2 * torch.outer(v, v) * i[:, None, None]


def hue_matrix(theta: Tensor) -> Tensor:
    """Rotation by theta about the luma axis (Rodrigues' formula)."""
    v = luma_axis(theta)
    vx, vy, vz = v[0], v[1], v[2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    m = _eye(len(theta), theta)
    rows = ((vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s),
            (vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s),
            (vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c))
    for r, row in enumerate(rows):
        for col, value in enumerate(row):
            m[:, r, col] = value
    return m


def saturation_matrix(s: Tensor) -> Tensor:
    v = luma_axis(s)
    vv = torch.outer(v, v)
    return vv + (torch.eye(4, dtype=s.dtype, device=s.device) - vv) * s[:, None, None]


def recolor(x: Tensor, C: Tensor) -> Tensor:
    """Images (n, c, h, w), c = 1 or 3, through colour matrices C (n, 4, 4). Elementwise sums over 3 terms,
    so each image's result does not depend on the rest of the batch."""
    C = C.to(x.device, x.dtype)
    if x.shape[1] == 3:
        return (C[:, :3, :3, None, None] * x[:, None]).sum(2) + C[:, :3, 3, None, None]
    if x.shape[1] == 1:
        row = C[:, :3, :].mean(1)
        return x * row[:, :3].sum(1)[:, None, None, None] + row[:, 3, None, None, None]
    raise ValueError(f"colour augmentation needs 1 or 3 channels, got {x.shape[1]}")


# ----- each transform alone (the pipeline composes their matrices instead)


def brightness(x: Tensor, b: Tensor) -> Tensor:
    """x + b per image."""
    return recolor(x, brightness_matrix(b))


def contrast(x: Tensor, c: Tensor) -> Tensor:
    """c * x per image: scaled about mid-grey (0)."""
    return recolor(x, contrast_matrix(c))


def lumaflip(x: Tensor, i: Tensor) -> Tensor:
    """Where i = 1, x - 2 * (mean of the channels): a grey g becomes -g, hue kept."""
    return recolor(x, lumaflip_matrix(i))


def hue(x: Tensor, theta: Tensor) -> Tensor:
    """Colours turned by theta about the grey axis (theta = 2 pi / 3 cycles r -> g -> b)."""
    return recolor(x, hue_matrix(theta))


def saturation(x: Tensor, s: Tensor) -> Tensor:
    """mean + s * (x - mean), the mean over the channels: s = 0 gives grey."""
    return recolor(x, saturation_matrix(s))
