"""Mode coverage on toy mixtures, as in VEEGAN and PacGAN.

Srivastava et al. 2017 (VEEGAN) and Lin et al. 2018 (PacGAN): a sample is
high quality when its nearest mode lies within 3 standard deviations; a mode
is captured when it is the nearest mode of at least one high-quality sample;
the reverse KL is KL(q || u) of the histogram q of high-quality samples over
the modes from the uniform u over all K modes (0 when perfectly balanced,
log K when every sample is in one mode, and log K when no sample is high
quality). ``std`` is one number or one per mode.
"""
from __future__ import annotations

import math

import torch


def mode_metrics(x: torch.Tensor, means: torch.Tensor, std) -> dict:
    """{'modes': captured, 'of': K, 'hq': % high quality, 'kl': reverse KL, 'n': N}."""
    x, means = x.detach().float().cpu(), means.float().cpu()
    std = torch.as_tensor(std, dtype=torch.float32).cpu().expand(len(means))
    dist, nearest = torch.cdist(x, means).min(dim=1)
    hq = dist <= 3 * std[nearest]
    counts = torch.bincount(nearest[hq], minlength=len(means)).double()
    k = len(means)
    if counts.sum() > 0:
        q = counts / counts.sum()
        nz = q > 0
        kl = float((q[nz] * torch.log(q[nz] * k)).sum())
    else:
        kl = math.log(k)
    return {"modes": int((counts > 0).sum()), "of": k, "hq": float(hq.double().mean() * 100), "kl": kl,
            "n": int(x.shape[0])}
