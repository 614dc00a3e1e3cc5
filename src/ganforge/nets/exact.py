"""Padding and 2x resampling whose backward passes are deterministic on a GPU.

On CUDA the backward kernels of ``F.pad(mode="reflect")``, ``nn.ReflectionPad2d``
and ``F.interpolate`` (nearest and bilinear) add into their gradients with
atomics, in an order that changes from run to run, so two runs from the same
checkpoint drift apart in the last bits (PyTorch, "Reproducibility": the
operations ``torch.use_deterministic_algorithms`` cannot make deterministic).
An H100 run of the test suite showed it: a resumed CycleGAN and StyleGAN2
differed from uninterrupted runs. These versions are built from slicing,
flipping, concatenation, broadcasting and weighted sums, whose gradients are
plain copies and fixed-order reductions; their forward values equal torch's
(bilinear: up to the rounding of 0.75 a + 0.25 b; the antialiased bilinear
halving: up to the rounding of its [1, 3, 3, 1] / 8 weighted sums).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def reflect_pad(x: Tensor, p: int, q: int | None = None) -> Tensor:
    """x (N, C, H, W) padded by reflection (the edge row not repeated): p before and q (default p) after,
    on both spatial axes."""
    q = p if q is None else q
    for dim in (-1, -2):
        n = x.shape[dim]
        if max(p, q) >= n:
            raise ValueError(f"reflection padding of {max(p, q)} needs a side above it, not {n}")
        parts = [x.narrow(dim, 1, p).flip(dim)] if p else []
        parts.append(x)
        if q:
            parts.append(x.narrow(dim, n - 1 - q, q).flip(dim))
        x = torch.cat(parts, dim) if len(parts) > 1 else x
    return x


class ReflectPad(nn.Module):
    """nn.ReflectionPad2d(p) with a deterministic backward."""

    def __init__(self, p: int):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return reflect_pad(x, self.p)


def up_nearest(x: Tensor) -> Tensor:
    """F.interpolate(x, scale_factor=2) (nearest) for (N, C, H, W)."""
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


def _up_linear(x: Tensor, dim: int) -> Tensor:
    """2x linear upsampling along ``dim`` (-1 or -2) with align_corners=False: output 2i is 3/4 of input i and
    1/4 of input i-1, output 2i+1 is 3/4 of i and 1/4 of i+1, the edges repeated."""
    n = x.shape[dim]
    before = torch.cat((x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)), dim)
    after = torch.cat((x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)), dim)
    even, odd = 0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after
    shape = list(x.shape)
    shape[dim] *= 2
    return torch.stack((even, odd), dim).reshape(shape)


def up_bilinear(x: Tensor) -> Tensor:
    """F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) for (N, C, H, W)."""
    return _up_linear(_up_linear(x, -1), -2)


def _down_linear(x: Tensor, dim: int) -> Tensor:
    """Halving along ``dim`` (-1 or -2, an even length) by the triangle filter of antialiased linear
    interpolation: output i is (x[2i-1] + 3 x[2i] + 3 x[2i+1] + x[2i+2]) / 8, the weights that fall outside
    dropped and the rest renormalized at the two ends (3/7, 3/7, 1/7)."""
    m = x.shape[dim] // 2
    pairs = x.unflatten(dim, (m, 2))
    a, b = pairs.select(dim, 0), pairs.select(dim, 1)                  # x[2i], x[2i+1]
    out = 3 * (a + b)
    if m > 1:
        edge = torch.zeros_like(a.narrow(dim, 0, 1))
        out = out + torch.cat((edge, b.narrow(dim, 0, m - 1)), dim) + torch.cat((a.narrow(dim, 1, m - 1), edge), dim)
    scale = torch.full((m,), 1 / 8, dtype=x.dtype, device=x.device)
    scale[0], scale[-1] = (1 / 7, 1 / 7) if m > 1 else (1 / 6, 1 / 6)
    shape = [1] * x.dim()
    shape[dim] = m
    return out * scale.view(shape)


def down_bilinear(x: Tensor) -> Tensor:
    """F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True) for (N, C, H, W) with even H and W:
    a [1, 3, 3, 1] low-pass filter and every second sample, as StyleGAN2's and R3GAN's downsampling
    (which pad with zeros instead of renormalizing at the borders)."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"halving needs even sides, got {tuple(x.shape[-2:])}")
    return _down_linear(_down_linear(x, -1), -2)
