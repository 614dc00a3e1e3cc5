"""CMMD: the maximum mean discrepancy of CLIP embeddings (Jayasumana et al., "Rethinking FID: Towards a Better
Evaluation Metric for Image Generation", CVPR 2024).

CMMD = 1000 · MMD²(real, generated) with the Gaussian kernel
k(x, y) = exp(-|x - y|² / (2 σ²)), σ = 10, on L2-normalised CLIP image
embeddings (the ``clip`` extractor). Unlike FID it assumes no normal
distribution, and its unbiased estimator does not depend on the sample
count in expectation. ``value`` is the unbiased estimator (U-statistic, as the paper
defines it); ``biased`` is what the authors' released code computes (the
means of the kernel matrices including their diagonals, a V-statistic), to
set beside published numbers: the two differ by about
(2 - mean k_xx - mean k_yy)/n. The kernel sums are KID's blocked code
(metrics.mmd), in float64 (CLIP embeddings are unit vectors: distances are
at most 2, and exp(-d²/200) near 1 keeps differences in the 4th decimal).
"""
from __future__ import annotations

import torch

from .finite import require_finite
from .mmd import gaussian, subset_sums

SIGMA = 10.0
SCALE = 1000.0


def cmmd(x: torch.Tensor, y: torch.Tensor, sigma: float = SIGMA, scale: float = SCALE) -> dict:
    """{'value' (unbiased), 'biased'} for embeddings x (N, D) and y (M, D), N, M >= 2."""
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    require_finite(x, "CMMD's first embeddings")
    require_finite(y, "CMMD's second embeddings")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("CMMD needs at least 2 samples in each set")
    x, y = x.detach().double().cpu(), y.detach().double().cpu()
    k = gaussian(sigma)
    ones_x, ones_y = torch.ones(m, 1, dtype=torch.float64), torch.ones(n, 1, dtype=torch.float64)
    kxx = float(subset_sums(x, x, ones_x, ones_x, True, k)[0])
    kyy = float(subset_sums(y, y, ones_y, ones_y, True, k)[0])
    kxy = float(subset_sums(x, y, ones_x, ones_y, False, k)[0])
    unbiased = (kxx - m) / (m * (m - 1)) + (kyy - n) / (n * (n - 1)) - 2 * kxy / (m * n)   # k(x, x) = 1
    biased = kxx / m ** 2 + kyy / n ** 2 - 2 * kxy / (m * n)
    return {"value": scale * unbiased, "biased": scale * biased, "sigma": sigma, "scale": scale}
