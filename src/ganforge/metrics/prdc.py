"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020).

Each set of features is a union of balls: around every point, the ball that
reaches its k-th nearest neighbour in the same set. Precision is the share
of fake samples inside the real balls, recall the share of real samples
inside the fake balls (k = 3 by default). Density counts how many real
balls hold each fake sample, divided by k; coverage is the share of real
balls that hold at least one fake sample (k = 5 by default). Distances are
Euclidean, in float64, computed in blocks so memory stays bounded.
"""
from __future__ import annotations

import torch

from .finite import require_finite

BLOCK = 2048


def _flat(x: torch.Tensor) -> torch.Tensor:
    require_finite(x, "the features of precision, recall, density or coverage")
    return x.reshape(x.shape[0], -1).to(torch.float64)


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    x = _flat(x)
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k={k} needs more than k samples, got {x.shape[0]}")
    out = []
    for i in range(0, x.shape[0], BLOCK):
        d = torch.cdist(x[i:i + BLOCK], x)
        out.append(d.kthvalue(k + 1, dim=1).values)     # the 1st is the point itself (distance 0)
    return torch.cat(out)


def _inside_count(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each point, how many balls (centre, radius) contain it."""
    counts = []
    for i in range(0, points.shape[0], BLOCK):
        d = torch.cdist(points[i:i + BLOCK], centres)
        counts.append((d <= radii[None, :]).sum(1))
    return torch.cat(counts)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict:
    real, fake = _flat(real), _flat(fake)
    precision = (_inside_count(fake, real, knn_radii(real, k)) > 0).double().mean()
    recall = (_inside_count(real, fake, knn_radii(fake, k)) > 0).double().mean()
    return {"precision": float(precision), "recall": float(recall), "k": k}


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict:
    real, fake = _flat(real), _flat(fake)
    radii = knn_radii(real, k)
    hits, covered = 0, 0
    for i in range(0, real.shape[0], BLOCK):            # one pass over real-fake distances serves both
        inside = torch.cdist(real[i:i + BLOCK], fake) < radii[i:i + BLOCK, None]     # strictly: the paper, prdc
        hits += int(inside.sum())
        covered += int(inside.any(1).sum())
    return {"density": hits / (k * fake.shape[0]), "coverage": covered / real.shape[0], "k": k}
