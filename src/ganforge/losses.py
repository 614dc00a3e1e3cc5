"""The objectives: one (d_loss, g_loss) pair each, computed on D's raw outputs.

D outputs a logit a; D(x) = sigmoid(a). Every loss that involves a log of
D is written with softplus so that it stays finite at any logit:
log D = -softplus(-a) and log(1 - D) = -softplus(a).

- ``minimax``: the saturating game of Goodfellow et al. 2014, G minimizes
  log(1 - D(G(z))); d/da log(1 - sigmoid(a)) = -D.
- ``nonsaturating``: the same D loss; G minimizes -log D(G(z)), whose
  gradient -(1 - D) stays large where D rejects the fakes (Goodfellow 2014).
- ``wasserstein``: the critic of Arjovsky et al. 2017 (WGAN), with weight
  clipping by default.
- ``wgan-gp``: the same critic with the gradient penalty of Gulrajani et al.
  2017 by default.
- ``least-squares``: LSGAN, Mao et al. 2017, with targets a=0, b=1, c=1.
- ``hinge``: Lim & Ye 2017; Miyato et al. 2018 (SNGAN).
- ``relativistic``: RpGAN, Jolicoeur-Martineau 2019: D judges whether a
  real sample is more realistic than a paired fake.
- ``relativistic-average``: RaGAN, the same paper, against the batch mean.

Each function takes the real and fake outputs as 1-D tensors and returns the
mean loss. Adding an objective is one pair and one registry line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def bce_d(real: Tensor, fake: Tensor) -> Tensor:
    """-log D(x) - log(1 - D(G(z)))."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g(fake: Tensor, real: Tensor) -> Tensor:
    """log(1 - D(G(z))): saturates where D confidently rejects the fakes."""
    return -F.softplus(fake).mean()


def nonsaturating_g(fake: Tensor, real: Tensor) -> Tensor:
    """-log D(G(z))."""
    return F.softplus(-fake).mean()


def wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def wasserstein_g(fake: Tensor, real: Tensor) -> Tensor:
    return -fake.mean()


def least_squares_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * ((real - 1).square().mean() + fake.square().mean())


def least_squares_g(fake: Tensor, real: Tensor) -> Tensor:
    return 0.5 * (fake - 1).square().mean()


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(fake: Tensor, real: Tensor) -> Tensor:
    return -fake.mean()


def rp_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.softplus(-(real - fake)).mean()


def rp_g(fake: Tensor, real: Tensor) -> Tensor:
    return F.softplus(-(fake - real)).mean()


def ra_d(real: Tensor, fake: Tensor, mean: Callable[[Tensor], Tensor] = torch.mean) -> Tensor:
    """``mean`` is the batch mean; under data parallelism, the mean over every rank's rows."""
    return F.softplus(-(real - mean(fake))).mean() + F.softplus(fake - mean(real)).mean()


def ra_g(fake: Tensor, real: Tensor, mean: Callable[[Tensor], Tensor] = torch.mean) -> Tensor:
    return F.softplus(-(fake - mean(real))).mean() + F.softplus(real - mean(fake)).mean()


@dataclass(frozen=True)
class Loss:
    """An objective: D's and G's losses and what goes with them."""
    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor, Tensor], Tensor]
    probability: bool          # outputs are logits of a probability D(x)
    g_needs_real: bool = False  # G's loss reads D's outputs on real data
    penalty: str = "none"       # default regularizer
    clip: Optional[float] = None  # default weight clipping
    batch_mean: bool = False    # d and g take ``mean=``, the batch mean (global under data parallelism)
    relative_to: Optional[str] = None  # D's verdict on a real is relative: to its paired fake ("pair") or the fakes' mean ("mean")

    def realness(self, real: Tensor, fake: Tensor, mean: Callable[[Tensor], Tensor] = torch.mean) -> Tensor:
        """How much more real D finds each real sample than the fakes: D(x) itself for absolute losses;
        D(x) - D(G(z)) of its pair (RpGAN) or D(x) - mean D(G(z)) (RaGAN), whose D has no level of its own.
        ADA's overfitting heuristic r_t is the mean of its sign."""
        if self.relative_to == "pair":
            return real - fake
        if self.relative_to == "mean":
            return real - mean(fake)
        return real


LOSSES: dict[str, Loss] = {
    "minimax": Loss(bce_d, minimax_g, probability=True),
    "nonsaturating": Loss(bce_d, nonsaturating_g, probability=True),
    "wasserstein": Loss(wasserstein_d, wasserstein_g, probability=False, clip=0.01),
    "wgan-gp": Loss(wasserstein_d, wasserstein_g, probability=False, penalty="gp"),
    "least-squares": Loss(least_squares_d, least_squares_g, probability=False),
    "hinge": Loss(hinge_d, hinge_g, probability=False),
    "relativistic": Loss(rp_d, rp_g, probability=True, g_needs_real=True, relative_to="pair"),
    "relativistic-average": Loss(ra_d, ra_g, probability=True, g_needs_real=True, batch_mean=True,
                                 relative_to="mean"),
}


def register_loss(name: str, loss: Loss) -> Loss:
    """Add an objective under ``name`` (or replace the one of that name); ``loss=name`` then trains with it."""
    if not name or "=" in name or "," in name:
        raise ValueError(f"a loss needs a plain name, got {name!r}")
    LOSSES[name] = loss
    return loss
