"""The plain alternating game the small experiments play, on ganforge's losses and nets.

Goodfellow et al. 2014, Algorithm 1 with k = ``d_steps``: D steps on fresh
real and fake batches, then one G step on fresh noise, Adam for both. The
lab's experiments need to look inside the game (D on a grid, gradient norms,
frames), so they play it here in a few readable lines with a callback rather
than through the training loop of ``ganforge train``, which adds run folders,
EMA and checkpoints they do not need. The losses and regularizers are the
registry's, so an objective means the same thing here as in a run. The live
playground of ``ganforge serve`` takes its steps with ``d_update`` and
``g_update``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ..losses import LOSSES
from ..penalties import clip_weights, gradient_penalty, r1_penalty

REGULARIZERS = ("none", "gp", "r1", "r2", "clip")


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
            d_update(G, D, objective, opt_d, real(batch, gen), gen, "r1" if r1 else "none", r1)
        g_update(G, D, objective, opt_g, batch, gen, real)
        for s in scheds:
            s.step()


def d_update(G: nn.Module, D: nn.Module, objective, opt_d, x: torch.Tensor, gen: torch.Generator,
             reg: str = "none", weight: float = 0.0) -> dict:
    """One step of D on real ``x`` and as many fresh fakes; ``reg`` one of REGULARIZERS.

    ``gp``: weight * (||grad D|| - 1)^2 at interpolates (Gulrajani et al. 2017); ``r1``/``r2``: weight/2 *
    ||grad D||^2 on real/fake samples (Mescheder et al. 2018); ``clip``: D's weights clipped to
    [-weight, weight] after the step (Arjovsky et al. 2017). Returns the numbers of the step."""
    with torch.no_grad():
        fake = G(torch.randn(x.shape[0], G.z_dim, generator=gen))
    if reg == "r1":
        x = x.detach().requires_grad_(True)
    if reg == "r2":
        fake = fake.requires_grad_(True)
    out_real, out_fake = D(x), D(fake)
    loss_d = objective.d(out_real, out_fake)
    pen = None
    if reg == "gp":
        pen = gradient_penalty(D, x, fake, generator=gen)
    elif reg == "r1":
        pen = r1_penalty(out_real, x)
    elif reg == "r2":
        pen = r1_penalty(out_fake, fake)
    total = loss_d + weight * pen if pen is not None and weight else loss_d
    opt_d.zero_grad(set_to_none=True)
    total.backward()
    opt_d.step()
    if reg == "clip":
        clip_weights(D, weight)
    squash = torch.sigmoid if objective.probability else (lambda t: t)
    return {"loss_d": float(loss_d.detach()), "d_real": float(squash(out_real.detach()).mean()),
            "d_fake": float(squash(out_fake.detach()).mean())}


def g_update(G: nn.Module, D: nn.Module, objective, opt_g, batch: int, gen: torch.Generator,
             real: Callable[[int, torch.Generator], torch.Tensor]) -> dict:
    """One step of G on fresh noise with D frozen; ``real(n, gen)`` is read only by losses that need it."""
    D.requires_grad_(False)
    try:
        out_fake = D(G(torch.randn(batch, G.z_dim, generator=gen)))
        out_real = D(real(batch, gen)) if objective.g_needs_real else None
        loss_g = objective.g(out_fake, out_real)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    finally:
        D.requires_grad_(True)
    return {"loss_g": float(loss_g.detach())}
