"""Regularizers of the discriminator.

- ``gp``: lambda * E[(||grad D(x_hat)|| - 1)^2] at random interpolates
  x_hat = e*x + (1-e)*G(z) (Gulrajani et al. 2017, WGAN-GP).
- ``r1``: gamma/2 * E[||grad D(x)||^2] on real data; ``r2`` the same on
  fakes (Mescheder et al. 2018, "Which training methods for GANs do
  actually converge?").
- weight clipping to [-c, c] (Arjovsky et al. 2017).

Spectral normalization is a model switch (``model.spectral_norm``), applied
where the nets are built (Miyato et al. 2018).

Gradients are taken with ``create_graph=True`` so that the penalty itself is
differentiated with respect to D's weights (double backward).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

DEFAULT_WEIGHT = {"gp": 10.0, "r1": 1.0, "r2": 1.0, "r1+r2": 1.0}
DEFAULT_EVERY = {"gp": 1, "r1": 4, "r2": 4, "r1+r2": 4}      # R1/R2 lazily, as StyleGAN2 (every 16 there)


def _grad_sq_norm(out: Tensor, inp: Tensor) -> Tensor:
    (g,) = torch.autograd.grad(out.sum(), inp, create_graph=True)
    return g.float().flatten(1).square().sum(1)


def gradient_penalty(d: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     generator: Optional[torch.Generator] = None, rows: slice = slice(None), n_global: int = 0) -> Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] with x_hat on the line from fake to real.

    Under data-parallel training the interpolation weights are drawn for the
    global batch of ``n_global`` and this process keeps ``rows`` of them."""
    shape = (n_global or real.shape[0],) + (1,) * (real.dim() - 1)
    e = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)[rows]
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    norm = (_grad_sq_norm(d(x_hat), x_hat) + 1e-12).sqrt()
    return (norm - 1).square().mean()


def r1_penalty(out: Tensor, inp: Tensor) -> Tensor:
    """1/2 E[||grad D(x)||^2]; ``out`` = D(inp) computed with inp.requires_grad."""
    return 0.5 * _grad_sq_norm(out, inp).mean()


@torch.no_grad()
def clip_weights(module: torch.nn.Module, c: float) -> None:
    """Clamp the weights being trained to [-c, c] (WGAN); frozen ones (FreezeD) stay as they are."""
    for p in module.parameters():
        if p.requires_grad:
            p.clamp_(-c, c)
