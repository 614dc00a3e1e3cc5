"""Random parameters drawn for a whole global batch, then cut to this process's rows.

Every augmentation draws its parameters from one ``torch.Generator`` for all
``n_global`` rows of the global batch, in a fixed order, and keeps the rows
``rows`` of this process: 2 processes augmenting half a batch each get
exactly what 1 process gets on the whole batch. Used by DiffAugment (Zhao et
al. 2020) and ADA (Karras et al. 2020), ganforge.augment.
"""
from __future__ import annotations

import torch
from torch import Tensor


def local_rows(n_local: int, rows: slice, n_global: int | None) -> int:
    """The size of the global batch, checked against this process's ``n_local`` rows ``rows``."""
    n_global = n_local if n_global is None else int(n_global)
    if len(range(n_global)[rows]) != n_local:
        raise ValueError(f"rows {rows} of a global batch of {n_global} are not the {n_local} images given")
    return n_global


class Draws:
    """Global draws from ``generator`` (on its device, float32); :meth:`local` keeps this process's rows."""

    def __init__(self, generator: torch.Generator, n_global: int, rows: slice, device):
        self.generator, self.n, self.rows, self.device = generator, n_global, rows, device

    def uniform(self, *shape: int) -> Tensor:
        """U[0, 1) of shape (n_global, *shape)."""
        return torch.rand(self.n, *shape, generator=self.generator, device=self.generator.device)

    def normal(self, *shape: int) -> Tensor:
        """N(0, 1) of shape (n_global, *shape)."""
        return torch.randn(self.n, *shape, generator=self.generator, device=self.generator.device)

    def integers(self, low: int, high: int, *shape: int) -> Tensor:
        """Integers in [low, high) of shape (n_global, *shape), as float32 (they enter matrices)."""
        t = torch.randint(low, high, (self.n, *shape), generator=self.generator, device=self.generator.device)
        return t.float()

    def chance(self, probability: float) -> Tensor:
        """A boolean per row: True with ``probability``."""
        return self.uniform() < probability

    def local(self, t: Tensor) -> Tensor:
        """This process's rows of a global draw, on the images' device."""
        return t[self.rows].to(self.device)
