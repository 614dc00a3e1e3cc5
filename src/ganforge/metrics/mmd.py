"""Kernel sums for the squared maximum mean discrepancy (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012).

KID (metrics.kid: cubic polynomial kernel, averaged over subsets) and CMMD
(metrics.cmmd: Gaussian kernel on CLIP embeddings, all samples) both need,
for index sets t, the sums Σ_{i∈X(t), j∈Y(t)} k(x_i, y_j). :func:`subset_sums`
walks the kernel matrix once, block by block (a symmetric one by its upper
triangle), and adds each block into every index set at once through
indicator matrices; dot products run in the features' dtype, the sums of
blocks in float64.
"""
from __future__ import annotations

from typing import Callable

import torch

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def polynomial(degree: int = 3, coef: float = 1.0) -> Kernel:
    """k(x, y) = (x·y / d + coef)^degree, KID's kernel with degree 3 and coef 1."""
    def k(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(torch.full((1, 1), coef, dtype=x.dtype), x, y.T, alpha=1.0 / x.shape[1])
        return out * out * out if degree == 3 else out ** degree
    return k


def gaussian(sigma: float) -> Kernel:
    """k(x, y) = exp(-|x - y|² / (2 σ²)), CMMD's kernel with σ = 10."""
    gamma = 1.0 / (2.0 * sigma * sigma)

    def k(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d2 = torch.addmm(x.square().sum(1, keepdim=True) + y.square().sum(1), x, y.T, alpha=-2.0)
        return torch.exp(d2.clamp_min_(0.0) * -gamma)
    return k


def indicator(index: list, n: int) -> torch.Tensor:
    """(n, sets) float64: how often each of n samples is in each index set."""
    s = torch.zeros(n, len(index), dtype=torch.float64)
    for t, i in enumerate(index):
        s[:, t].index_add_(0, torch.as_tensor(i), torch.ones(len(i), dtype=torch.float64))
    return s


def subset_sums(x: torch.Tensor, y: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, symmetric: bool,
                kernel: Kernel, block: int = 2048) -> torch.Tensor:
    """For every index set t: Σ over i in set_x(t), j in set_y(t) of kernel(x_i, y_j) (float64); ``symmetric``:
    x is y and sx is sy, so only the upper triangle of blocks is computed."""
    out = torch.zeros(sx.shape[1], dtype=torch.float64)
    for i0 in range(0, len(x), block):
        xi = x[i0:i0 + block]
        for j0 in range(i0 if symmetric else 0, len(y), block):
            k = kernel(xi, y[j0:j0 + block])
            part = ((k @ sy[j0:j0 + block].to(k.dtype)).double() * sx[i0:i0 + block]).sum(0)
            out += 2 * part if (symmetric and j0 != i0) else part
    return out
