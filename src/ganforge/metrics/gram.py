"""Symmetric products aᵀa computed by blocks of the upper triangle.

FID's covariance (features ᵀ features) and KID's kernel matrices (x xᵀ) are
symmetric, and torch has no SYRK: a plain ``a.T @ a`` computes every entry
twice. Splitting the columns of ``a`` into k blocks and multiplying only the
k(k+1)/2 blocks on and above the diagonal (mirroring the rest) does
(k+1)/2k of the work: 5/8 with k = 4, on BLAS calls still large enough to
run at full speed. The arithmetic of each entry is that of the plain
product, so results agree with it to rounding. A diagonal block is itself
a product whose two triangles BLAS may sum in different orders (on an AMD
EPYC they differed in the last bit), so its lower triangle is copied from
its upper one: the result is exactly symmetric.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _upper_mirrored(g: Tensor) -> Tensor:
    """The square block g with its strict lower triangle replaced by the transposed upper one."""
    return g.triu() + g.triu(1).T


def gram(a: Tensor, blocks: int = 4) -> Tensor:
    """``a.T @ a`` (a: (n, d)) from the upper block triangle; small ``d`` uses the plain product."""
    d = a.shape[1]
    if d < 256 * blocks:
        return a.T @ a
    edges = [round(i * d / blocks) for i in range(blocks + 1)]
    out = torch.empty(d, d, dtype=a.dtype, device=a.device)
    for bi in range(blocks):
        i0, i1 = edges[bi], edges[bi + 1]
        ai = a[:, i0:i1]
        for bj in range(bi, blocks):
            j0, j1 = edges[bj], edges[bj + 1]
            g = ai.T @ a[:, j0:j1]
            if bj == bi:
                out[i0:i1, i0:i1] = _upper_mirrored(g)
            else:
                out[i0:i1, j0:j1], out[j0:j1, i0:i1] = g, g.T
    return out


def congruence_lower(low: Tensor, s: Tensor, blocks: int = 4) -> Tensor:
    """``low.T @ s @ low`` for lower-triangular ``low`` and symmetric ``s`` (FID's trace term).

    Column block J of ``low`` is zero above row J0, so each product only runs over rows J0..d, and
    the symmetric result is computed by its upper block triangle: about 55% of two plain products.
    """
    d = low.shape[0]
    if d < 256 * blocks:
        return low.T @ s @ low
    edges = [round(i * d / blocks) for i in range(blocks + 1)]
    a = torch.empty_like(s)                      # a = s @ low, column block by column block
    for bj in range(blocks):
        j0, j1 = edges[bj], edges[bj + 1]
        a[:, j0:j1] = s[:, j0:] @ low[j0:, j0:j1]
    out = torch.empty_like(s)
    for bi in range(blocks):
        i0, i1 = edges[bi], edges[bi + 1]
        li = low[i0:, i0:i1].T                   # rows i0..d of low's column block I
        for bj in range(bi, blocks):
            j0, j1 = edges[bj], edges[bj + 1]
            g = li @ a[i0:, j0:j1]
            if bj == bi:
                out[i0:i1, i0:i1] = _upper_mirrored(g)
            else:
                out[i0:i1, j0:j1], out[j0:j1, i0:i1] = g, g.T
    return out
