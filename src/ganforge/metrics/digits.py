"""Mode metrics on digits: class histograms from a classifier, and Stacked MNIST.

On MNIST the ten classes are the modes: a digit classifier's predictions on
generated images give the class histogram, its KL divergence from the
uniform distribution (0 when balanced, log 10 = 2.303 when every sample is
one digit), the number of classes found, and the share of samples the
classifier is confident about (max softmax >= ``threshold``: a low share
means blurry or malformed digits).

Stacked MNIST (Metz et al. 2017, Unrolled GAN; Srivastava et al. 2017,
VEEGAN; Lin et al. 2018, PacGAN) stacks three digits as the R, G and B
channels: 1,000 modes. Each channel is classified separately, the mode is
100*R + 10*G + B, the number of modes captured is the number of distinct
modes among the samples, and KL is KL(q || uniform over 1,000) of the
histogram q of modes, as VEEGAN and PacGAN report it (26,000 samples there).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def class_histogram(logits: Tensor, threshold: float = 0.9) -> dict:
    """Class counts, KL from uniform (``kl``), classes found (``modes``) and confident share from logits (N, C)."""
    p = logits.double().softmax(dim=1)
    conf, pred = p.max(dim=1)
    c = logits.shape[1]
    counts = torch.bincount(pred, minlength=c)
    q = counts.double() / counts.sum()
    nz = q > 0
    kl = float((q[nz] * torch.log(q[nz] * c)).sum())
    return {"counts": counts.tolist(), "modes": int(nz.sum()), "of": c, "kl": kl,
            "confident": float((conf >= threshold).double().mean()), "threshold": threshold, "n": int(len(pred))}


def stacked_modes(channel_logits: list[Tensor]) -> dict:
    """Modes captured and KL(q || uniform) from the logits of the three channels ((N, 10) each)."""
    preds = [lg.argmax(dim=1) for lg in channel_logits]
    k = 10 ** len(preds)
    mode = torch.zeros_like(preds[0])
    for p in preds:
        mode = mode * 10 + p
    counts = torch.bincount(mode, minlength=k).double()
    q = counts / counts.sum()
    nz = q > 0
    kl = float((q[nz] * torch.log(q[nz] * k)).sum())
    return {"modes": int(nz.sum()), "of": k, "kl": kl, "n": int(len(mode)), "max_kl": math.log(k)}
