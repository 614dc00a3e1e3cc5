"""The 1-D pair of the first two experiments: p_data and a fixed generator, both known exactly.

p_data is ganforge's ``mixture1d`` (three Gaussians at -2, 0, 2); the
generator is G(z) = mu + sigma * z with z ~ N(0, 1), so p_g = N(mu, sigma^2)
exactly. On a fine grid the densities give D*(x) = p_data / (p_data + p_g)
(Goodfellow et al. 2014, Proposition 1) and every integral the theory needs
(trapezoid rule on 64,001 points over [-16, 16], wide enough for the
shifted densities of ``value-jsd``; everything in log space, so that
integrands stay finite where a density underflows).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..data.toy import mixture1d

LO, HI, POINTS = -16.0, 16.0, 64_001


class AffineGenerator(nn.Module):
    """G(z) = mu + sigma * z: a generator whose density is N(mu, sigma^2)."""

    def __init__(self, mu: float = 0.5, sigma: float = 1.5):
        super().__init__()
        self.mu, self.sigma, self.z_dim = float(mu), float(sigma), 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mu + self.sigma * z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double().reshape(-1)
        return -0.5 * ((x - self.mu) / self.sigma) ** 2 - math.log(self.sigma) - 0.5 * math.log(2 * math.pi)


def data():
    return mixture1d()


def grid() -> torch.Tensor:
    """The integration grid, (POINTS,) float64."""
    return torch.linspace(LO, HI, POINTS, dtype=torch.float64)


def log_densities(x: torch.Tensor, G: AffineGenerator) -> tuple[torch.Tensor, torch.Tensor]:
    """log p_data(x) and log p_g(x), float64."""
    return data().log_prob(x.reshape(-1, 1)), G.log_prob(x)


def densities(x: torch.Tensor, G: AffineGenerator) -> tuple[torch.Tensor, torch.Tensor]:
    """p_data(x) and p_g(x), float64."""
    lp, lq = log_densities(x, G)
    return lp.exp(), lq.exp()


def log_d_star(lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """log D*(x) = log p_data − log(p_data + p_g), finite wherever p_data > 0."""
    return lp - torch.logaddexp(lp, lq)


def integrate(y: torch.Tensor, x: torch.Tensor) -> float:
    return float(torch.trapezoid(y, x))


def value(log_d: torch.Tensor, log_1md: torch.Tensor, lp: torch.Tensor, lq: torch.Tensor, x: torch.Tensor) -> float:
    """V(D, G) = E_p_data[log D] + E_p_g[log(1 − D)], from log D and log(1 − D) on the grid."""
    return integrate(lp.exp() * log_d + lq.exp() * log_1md, x)


def value_at_optimum(lp: torch.Tensor, lq: torch.Tensor, x: torch.Tensor) -> float:
    """V(D*, G) for the log-densities of p_data and p_g."""
    return value(log_d_star(lp, lq), log_d_star(lq, lp), lp, lq, x)


def jsd(lp: torch.Tensor, lq: torch.Tensor, x: torch.Tensor) -> float:
    """JSD(p ‖ q) = KL(p ‖ m)/2 + KL(q ‖ m)/2 with m = (p + q)/2, in nats (from log-densities)."""
    lm = torch.logaddexp(lp, lq) - math.log(2)
    return 0.5 * integrate(lp.exp() * (lp - lm), x) + 0.5 * integrate(lq.exp() * (lq - lm), x)
