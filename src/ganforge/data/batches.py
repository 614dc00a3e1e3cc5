"""Endless seeded batches of real data, resumable from one counter.

A finite dataset is read in shuffled epochs: epoch e uses a permutation drawn
from (seed, e), and each epoch yields floor(N / B) full batches. A toy
density is sampled afresh for every batch. Either way batch b is a pure
function of (seed, b), so the stream's state is the number of batches drawn.
Under data-parallel training every process draws the same global batch and
keeps its own ``rows`` of it (``train.distributed``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..errors import UserError
from ..rng import Stream, derive


class Batches:
    def __init__(self, dataset, batch_size: int, seed: int, device="cpu", rows: slice = slice(None)):
        self.ds, self.batch_size, self.seed, self.device = dataset, batch_size, seed, torch.device(device)
        self.rows = rows
        self.drawn = 0
        self._epoch, self._perm = -1, None
        if dataset.density is not None:
            self._toy = Stream(seed, "data", self.device)
            self.x = self.y = None
        else:
            if len(dataset) < batch_size:
                raise UserError(f"batch_size={batch_size} is larger than the dataset ({len(dataset)} samples)")
            self.per_epoch = len(dataset) // batch_size
            self.x = dataset.x.to(self.device)
            self.y = dataset.y.to(self.device) if dataset.y is not None else None

    def next(self) -> tuple[Tensor, Optional[Tensor]]:
        b = self.drawn
        self.drawn += 1
        if self.ds.density is not None:
            self._toy.count = b
            return self.ds.density.sample(self.batch_size, self._toy.next(), self.device)[self.rows], None
        epoch, i = divmod(b, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive(self.seed, "epoch", epoch))
            self._perm = torch.randperm(len(self.ds), generator=g).to(self.device)
            self._epoch = epoch
        idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size][self.rows]
        return self.x[idx], (self.y[idx] if self.y is not None else None)

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state["drawn"])
