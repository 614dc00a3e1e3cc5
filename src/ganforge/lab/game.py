"""The plain alternating game the small experiments play, on ganforge's losses and nets.

Goodfellow et al. 2014, Algorithm 1 with k = ``d_steps``: D steps on fresh
real and fake batches, then one G step on fresh noise, Adam for both. The
lab's experiments need to look inside the game (D on a grid, gradient norms,
frames), so they play it here in a few readable lines with a callback rather
than through the training loop of ``ganforge train``, which adds run folders,
EMA and checkpoints they do not need. The losses are the registry's, so an
objective means the same thing here as in a run.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ..losses import LOSSES
from ..penalties import r1_penalty


def adam(net: nn.Module, lr: float, betas=(0.5, 0.999)) -> torch.optim.Adam:
    return torch.optim.Adam(net.parameters(), lr=lr, betas=betas)


def play(G: nn.Module, D: nn.Module, real: Callable[[int, torch.Generator], torch.Tensor], steps: int, batch: int,
         gen: torch.Generator, loss: str = "nonsaturating", lr: float = 1e-3, lr_d: Optional[float] = None,
         betas=(0.5, 0.999), d_steps: int = 1, r1: float = 0.0, decay: bool = False,
         callback: Optional[Callable[[int], None]] = None, every: int = 0) -> None:
    """``steps`` rounds of the game; ``callback(step)`` at step 0, every ``every`` steps and at the end.

    ``real(n, gen)`` draws n real samples; z has ``G.z_dim`` dimensions. With
    ``decay`` both learning rates stay constant for the first half and then
    fall linearly to 0.
    """
    objective = LOSSES[loss]
    opt_g, opt_d = adam(G, lr, betas), adam(D, lr_d or lr, betas)
    scheds = []
    if decay:
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, 2 * (1 - s / steps))) for o in (opt_g, opt_d)]
    for step in range(steps + 1):
        if callback is not None and (step == steps or (every and step % every == 0)):
            callback(step)
        if step == steps:
            break
        for _ in range(d_steps):
            x = real(batch, gen)
            with torch.no_grad():
                fake = G(torch.randn(batch, G.z_dim, generator=gen))
            if r1:
                x = x.detach().requires_grad_(True)
            out_real, out_fake = D(x), D(fake)
            loss_d = objective.d(out_real, out_fake)
            if r1:
                loss_d = loss_d + r1 * r1_penalty(out_real, x)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        D.requires_grad_(False)
        out_fake = D(G(torch.randn(batch, G.z_dim, generator=gen)))
        out_real = D(real(batch, gen)) if objective.g_needs_real else None
        loss_g = objective.g(out_fake, out_real)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        for s in scheds:
            s.step()
