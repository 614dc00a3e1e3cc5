"""Fréchet distance between feature distributions: FID (Heusel et al. 2017).

FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½), the Fréchet (2-Wasserstein)
distance between Gaussians fitted to two sets of features. Everything runs
in float64. The trace of the matrix square root is computed as
Σ √λᵢ over the eigenvalues of the symmetric PSD matrix Lᵀ Σ₂ L, where
Σ₁ = L Lᵀ (Cholesky), which has the same eigenvalues as Σ₁Σ₂: no complex
numbers and no eigenvectors. A singular Σ₁ (fewer samples than dimensions,
where scipy's sqrtm warns and may return a complex result) uses Σ₁^½ from
a symmetric eigen-decomposition instead.

``FeatureStats`` accumulates mean and covariance batch by batch (Chan et
al. 1979 pairwise update), so memory does not grow with the number of
samples.
"""
from __future__ import annotations

from typing import Union

import torch

from .finite import require_finite
from .gram import congruence_lower, gram

Array = Union[torch.Tensor, "FeatureStats"]


class FeatureStats:
    """Running mean and covariance of feature vectors, in float64."""

    def __init__(self, dim: int):
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dim, dtype=torch.float64)   # sum of outer products of deviations

    def update(self, x: torch.Tensor) -> "FeatureStats":
        x = x.detach().reshape(x.shape[0], -1)
        nb = x.shape[0]
        if nb == 0:
            return self
        d = x.to("cpu", torch.float64, copy=True)
        mb = d.mean(0)
        m2b = gram(d.sub_(mb))
        n = self.n + nb
        delta = mb - self.mean
        if self.n == 0:
            self.m2 = m2b
        else:
            self.m2 += m2b
            self.m2.add_(torch.outer(delta, delta), alpha=self.n * nb / n)
        self.mean += delta * (nb / n)
        self.n = n
        return self

    @property
    def cov(self) -> torch.Tensor:
        """Unbiased covariance (divides by n - 1), as the reference implementations do."""
        if self.n < 2:
            raise ValueError("covariance needs at least 2 samples")
        return self.m2 / (self.n - 1)

    @classmethod
    def of(cls, x: torch.Tensor, batch: int = 16384) -> "FeatureStats":
        s = cls(x.reshape(x.shape[0], -1).shape[1])
        for chunk in x.split(batch):
            s.update(chunk)
        return s


def _sym_sqrt(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(a)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """tr((s1 s2)^½) for symmetric PSD s1, s2."""
    low, info = torch.linalg.cholesky_ex(s1)
    if int(info) == 0:
        m = congruence_lower(low, s2)
    else:                                   # singular s1
        r = _sym_sqrt(s1)
        m = r @ s2 @ r
    return torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum()


def frechet_distance(mu1: torch.Tensor, s1: torch.Tensor, mu2: torch.Tensor, s2: torch.Tensor) -> float:
    """‖mu1 − mu2‖² + tr(s1 + s2 − 2 (s1 s2)^½), in float64 on the CPU, whatever the features' device
    (on an H100, one test hit its 150 s timeout inside the CUDA float64 eigensolver)."""
    mu1, mu2, s1, s2 = (t.to("cpu", torch.float64) for t in (mu1, mu2, s1, s2))
    d = float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt_product(s1, s2))
    return max(d, 0.0)


def fid(a: Array, b: Array) -> float:
    """FID between two feature sets, given as (N, D) tensors or ``FeatureStats``."""
    for x, what in ((a, "FID's first features"), (b, "FID's second features")):
        require_finite(x.mean if isinstance(x, FeatureStats) else x, what)
    sa = a if isinstance(a, FeatureStats) else FeatureStats.of(a)
    sb = b if isinstance(b, FeatureStats) else FeatureStats.of(b)
    return frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
