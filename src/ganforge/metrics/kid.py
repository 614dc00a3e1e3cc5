"""Kernel Inception Distance (Bińkowski et al. 2018).

The unbiased estimator of the squared maximum mean discrepancy with the
cubic polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over random
subsets (by default 100 subsets of 1,000 from each set, drawn without
replacement within a subset) as in the paper and torch-fidelity. Computed
in float64. Unlike FID it is unbiased, so it is comparable across sample
sizes; it can be slightly negative when the two sets match.
"""
from __future__ import annotations

from typing import Optional

import torch


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD² between equal-size sets x and y (m ≥ 2 rows each)."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    m = x.shape[0]
    if m < 2 or y.shape[0] != m:
        raise ValueError("mmd2_unbiased needs two sets of the same size m >= 2")
    kxx, kyy, kxy = (polynomial_kernel(p, q, degree, coef) for p, q in ((x, x), (y, y), (x, y)))
    off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(off - 2 * kxy.sum() / m ** 2)


def kid_subsets(n_a: int, n_b: int, subsets: int, size: int, seed: int) -> list:
    """The (index_a, index_b) pairs ``kid`` uses: each subset without replacement."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randperm(n_a, generator=g)[:size], torch.randperm(n_b, generator=g)[:size]) for _ in range(subsets)]


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        index: Optional[list] = None, degree: int = 3, coef: float = 1.0) -> dict:
    """{'mean', 'std', 'subsets', 'subset_size'} of MMD² over subsets of features a (N, D) and b (M, D)."""
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    index = index if index is not None else kid_subsets(a.shape[0], b.shape[0], subsets, size, seed)
    v = torch.tensor([mmd2_unbiased(a[i], b[j], degree, coef) for i, j in index], dtype=torch.float64)
    return {"mean": float(v.mean()), "std": float(v.std(unbiased=False)) if len(v) > 1 else 0.0,
            "subsets": len(index), "subset_size": size}
