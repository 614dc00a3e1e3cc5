"""Toy densities with exact log-densities: ring, grid, spiral and a 1-D mixture.

All four are isotropic Gaussian mixtures, so ``log_prob`` is exact and later
work can compute true divergences. ``ring`` (8 modes on the unit circle, std
0.01) and ``grid`` (25 modes at {-4,-2,0,2,4}^2, std 0.05) are the mode
collapse benchmarks of Metz et al. 2017 (Unrolled GAN), Srivastava et al.
2017 (VEEGAN) and Lin et al. 2018 (PacGAN). The ring's means are
(cos 2*pi*i/8, sin 2*pi*i/8) for i = 0..7: eight distinct modes (some public
code uses linspace(0, 2*pi, 8), which repeats one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass
class GaussianMixture:
    """Isotropic Gaussians with means (K, d), one std (or K), weights (K)."""
    means: Tensor
    std: Tensor
    weights: Tensor

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: Optional[torch.Generator] = None, device=None) -> Tensor:
        device = device or (generator.device if generator is not None else "cpu")
        idx = torch.multinomial(self.weights.to(device), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, device=device)
        return self.means.to(device)[idx] + eps * self.std.to(device)[idx].unsqueeze(1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density of each row of ``x`` (N, d)."""
        x = x.double()
        mu, std, w = self.means.double().to(x.device), self.std.double().to(x.device), self.weights.double().to(x.device)
        w = w / w.sum()          # float32 weights sum to 1 only within ~3e-8; exact in float64 again
        sq = torch.cdist(x, mu).square()                     # (N, K)
        d = self.dim
        comp = -0.5 * sq / std.square() - d * torch.log(std) - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(comp + torch.log(w), dim=1)


def _mixture(means: Tensor, std: float, weights: Optional[Tensor] = None) -> GaussianMixture:
    k = means.shape[0]
    w = torch.full((k,), 1.0 / k) if weights is None else weights / weights.sum()
    return GaussianMixture(means.float(), torch.full((k,), float(std)), w.float())


def ring(modes: int = 8, radius: float = 1.0, std: float = 0.01) -> GaussianMixture:
    a = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return _mixture(radius * torch.stack([a.cos(), a.sin()], 1), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture:
    v = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    return _mixture(torch.cartesian_prod(v, v), std)


def spiral(points: int = 100, turns: float = 1.5, std: float = 0.05) -> GaussianMixture:
    """An Archimedean spiral r = t (t in [0.5, 3]) drawn as ``points`` Gaussians."""
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    theta = t * turns * 2 * math.pi
    r = 0.5 + 2.5 * t
    return _mixture(torch.stack([r * theta.cos(), r * theta.sin()], 1), std)


def mixture1d() -> GaussianMixture:
    """Three 1-D Gaussians at -2, 0, 2 (std 0.3, 0.3, 0.5; weights 0.3, 0.3, 0.4)."""
    means = torch.tensor([[-2.0], [0.0], [2.0]])
    return GaussianMixture(means, torch.tensor([0.3, 0.3, 0.5]), torch.tensor([0.3, 0.3, 0.4]))


TOYS = {
    "ring": (ring, "8 Gaussians on the unit circle, std 0.01 (2-D)"),
    "grid": (grid, "25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (2-D)"),
    "spiral": (spiral, "a spiral of 100 Gaussians, std 0.05 (2-D)"),
    "mixture1d": (mixture1d, "3 Gaussians at -2, 0, 2 (1-D)"),
}
