"""Inception Score (Salimans et al. 2016).

IS = exp(E_x KL(p(y|x) ‖ p(y))), where p(y) is the mean of p(y|x) over the
split. The samples are cut into ``splits`` consecutive parts (10 by
default, as in the paper's code); the score is the mean and standard
deviation over parts. Samples in a meaningful order (real data sorted by
class) must be shuffled first, as torchmetrics does: ``seed`` does that
with a fixed permutation. Works on the logits of any classifier (Inception for
the standard number, the digit net for digits), computed with log-softmax
in float64 so that no log of a zero probability occurs.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .finite import require_finite


def inception_score(logits: torch.Tensor, splits: int = 10, seed: Optional[int] = None) -> dict:
    """{'mean', 'std', 'splits'} from (N, C) logits (unnormalized log-probabilities); ``seed``: shuffle first."""
    require_finite(logits, "the Inception Score's logits")
    logp = torch.log_softmax(logits.to(torch.float64), dim=1)
    if seed is not None:
        logp = logp[torch.randperm(logp.shape[0], generator=torch.Generator().manual_seed(seed))]
    n = logp.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(f"inception_score needs at least one sample per split, got {n} samples for {splits} splits")
    scores = []
    for k in range(splits):
        part = logp[k * n // splits:(k + 1) * n // splits]
        log_py = torch.logsumexp(part, dim=0) - math.log(part.shape[0])
        kl = (part.exp() * (part - log_py)).sum(1).mean()
        scores.append(float(kl.exp()))
    t = torch.tensor(scores, dtype=torch.float64)
    return {"mean": float(t.mean()), "std": float(t.std(unbiased=False)) if splits > 1 else 0.0, "splits": splits}
