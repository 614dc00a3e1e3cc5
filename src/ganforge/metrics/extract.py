"""Streaming feature extraction: images in batches through an extractor, with a progress line.

Images come from a tensor, a dataset's stored images (data/store.Images, read
a batch at a time) or from a function ``fn(start, count) -> images``
(a generator drawing samples batch by batch), so N is never held as images.
FID needs only the running mean and covariance (:class:`FeatureStats`,
Welford/Chan updates), so memory does not grow with N unless the features
themselves are asked for (KID, precision/recall, density/coverage).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from .features import Extractor
from .fid import FeatureStats
from .finite import require_finite

Source = Union[Tensor, Callable[[int, int], Tensor]]


@dataclass
class Extracted:
    """What one pass over a set of images produced."""
    stats: FeatureStats
    features: Optional[Tensor]        # (N, D) float32, when kept
    logits: Optional[Tensor]          # (N, C) float32, when kept
    n: int
    seconds: float


class ProgressBar:
    def __init__(self, total: int, label: str, mode: str):
        self.total, self.label, self.t0, self.last = total, label, time.time(), 0.0
        self.mode = ("bar" if sys.stderr.isatty() else "lines") if mode == "auto" else mode

    def update(self, done: int) -> None:
        if self.mode == "off":
            return
        now = time.time()
        final = done >= self.total
        if self.mode == "lines" and not final and now - self.last < 10:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        line = f"{self.label}: {done}/{self.total} images, {rate:.0f} img/s"
        if self.mode == "bar":
            sys.stderr.write("\r" + line + "\033[K" + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


@torch.no_grad()
def extract(extractor: Extractor, source: Source, n: int, batch: int = 64, keep_features: bool = True,
            keep_logits: bool = False, device=None, progress: str = "off", label: str = "features") -> Extracted:
    """Run ``n`` images of ``source`` through ``extractor`` in batches of ``batch``."""
    device = torch.device(device) if device is not None else next(extractor.parameters(), torch.empty(0)).device
    extractor.eval()
    bar = ProgressBar(n, label, progress)
    stats: Optional[FeatureStats] = None
    feats, logits = [], []
    t0 = time.time()
    for start in range(0, n, batch):
        count = min(batch, n - start)
        x = source(start, count) if callable(source) else source[start:start + count]
        f, lg = extractor(x.to(device, torch.float32))
        f = f.float().cpu()
        require_finite(f, f"the {extractor.name} features of samples {start} to {start + count - 1}")
        if stats is None:
            stats = FeatureStats(f.shape[1])
        stats.update(f)
        if keep_features:
            feats.append(f)
        if keep_logits:
            if lg is None:
                raise ValueError(f"the {extractor.name} extractor has no logits")
            require_finite(lg, f"the {extractor.name} logits of samples {start} to {start + count - 1}")
            logits.append(lg.float().cpu())
        bar.update(start + count)
    if stats is None:
        raise ValueError("no images to extract features from")
    return Extracted(stats, torch.cat(feats) if feats else None, torch.cat(logits) if logits else None, n,
                     time.time() - t0)
