"""The one check every metric makes of its inputs: no NaN or Inf.

Left alone, a non-finite feature makes FID's eigensolver fail without saying
why, KID and the Inception Score return NaN, and precision and recall return
normal-looking wrong numbers (the distance comparisons of a NaN are all
false). Each metric function and the feature extraction call
:func:`require_finite` first, so a diverged generator or a damaged file is one
line instead.
"""
from __future__ import annotations

import torch

from ..errors import UserError


def require_finite(x: torch.Tensor, what: str) -> None:
    """Raise a UserError naming ``what`` and how many of its rows hold NaN or Inf."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        rows = int(bad.reshape(bad.shape[0], -1).any(1).sum()) if bad.dim() > 0 else 1
        total = x.shape[0] if x.dim() > 0 else 1
        raise UserError(f"{what}: {rows} of {total} rows hold NaN or Inf values; no metric is computed from them "
                        "(a generator that diverged, or a damaged file)")
