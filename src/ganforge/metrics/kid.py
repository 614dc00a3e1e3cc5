"""Kernel Inception Distance (Bińkowski et al. 2018).

The unbiased estimator of the squared maximum mean discrepancy with the
cubic polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over random
subsets (by default 100 subsets of 1,000 from each set, drawn without
replacement within a subset) as in the paper and torch-fidelity
(``mmd2_unbiased``, one subset in float64, is the plain definition). Unlike FID it is unbiased, so it is comparable across sample
sizes; it can be slightly negative when the two sets match.

``kid`` does not gather each subset: it walks the kernel matrices of the
whole sets once (metrics.mmd, shared with CMMD), block by block (the symmetric ones by their upper
triangle), and adds every block into all 100 subsets at once through
subset-indicator matrices. Each pair of samples is multiplied once instead
of once per subset it falls in, and the symmetric halves are skipped: about
two thirds of the kernel evaluations of the per-subset computation, on the
same subsets. Dot products and the sums within a block of 2,048 run in
float32 (as torchmetrics computes KID on float32 features); blocks are
added in float64, which keeps the result within ~1e-8 of a float64
computation in benchmarks/metrics.py (torchmetrics: ~1e-6).
"""
from __future__ import annotations

from typing import Optional

import torch

from .finite import require_finite
from .mmd import indicator, polynomial, subset_sums


FAR = 100.0        # mean² / variance beyond which float32 dot products lose KID's cancellation (kid's doc)


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD² between equal-size sets x and y (m ≥ 2 rows each)."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    m = x.shape[0]
    if m < 2 or y.shape[0] != m:
        raise ValueError("mmd2_unbiased needs two sets of the same size m >= 2")
    kernel = polynomial(degree, coef)
    kxx, kyy, kxy = (kernel(p, q) for p, q in ((x, x), (y, y), (x, y)))
    off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(off - 2 * kxy.sum() / m ** 2)


def kid_subsets(n_a: int, n_b: int, subsets: int, size: int, seed: int) -> list:
    """The (index_a, index_b) pairs ``kid`` uses: each subset without replacement."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randperm(n_a, generator=g)[:size], torch.randperm(n_b, generator=g)[:size]) for _ in range(subsets)]


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        index: Optional[list] = None, degree: int = 3, coef: float = 1.0, dtype: Optional[torch.dtype] = None) -> dict:
    """{'mean', 'std', 'subsets', 'subset_size'} of MMD² over subsets of features a (N, D) and b (M, D).

    ``dtype`` is that of the dot products (sums are always float64). float32 takes about 40% of the time of
    float64 and agrees with it to ~1e-8 relative on features whose mean is not far from the origin compared
    with their spread (network features). Far from it the cubic kernel's terms dwarf their differences: with
    1,000 added to every feature they reach 1e18 and float32 KID was 8.6% to 2,200% off. ``None`` (the
    default) takes float64 when the mean's square exceeds FAR times the features' variance, float32 otherwise."""
    if dtype is None:
        both = torch.cat([a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)]).detach().double().cpu()
        far = float(both.mean(0).square().mean()) > FAR * float(both.var(0).mean())
        dtype = torch.float64 if far else torch.float32
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    require_finite(a, "KID's first features")
    require_finite(b, "KID's second features")
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    index = index if index is not None else kid_subsets(a.shape[0], b.shape[0], subsets, size, seed)
    m = len(index[0][0])
    a32, b32 = a.detach().to(dtype).cpu(), b.detach().to(dtype).cpu()
    sa, sb = indicator([i for i, _ in index], len(a)), indicator([j for _, j in index], len(b))
    d = a.shape[1]
    diag_a = (a.detach().double().cpu().square().sum(1) / d + coef) ** degree
    diag_b = (b.detach().double().cpu().square().sum(1) / d + coef) ** degree
    k = polynomial(degree, coef)
    kaa = subset_sums(a32, a32, sa, sa, True, k) - diag_a @ sa
    kbb = subset_sums(b32, b32, sb, sb, True, k) - diag_b @ sb
    kab = subset_sums(a32, b32, sa, sb, False, k)
    v = (kaa + kbb) / (m * (m - 1)) - 2 * kab / m ** 2
    return {"mean": float(v.mean()), "std": float(v.std(unbiased=False)) if len(v) > 1 else 0.0,
            "subsets": len(index), "subset_size": size}
