"""Endless seeded batches of real data, resumable from one counter.

A finite dataset is read in shuffled epochs: epoch e uses a permutation drawn
from (seed, e), and each epoch yields floor(N / B) full batches. A toy
density is sampled afresh for every batch. Either way batch b is a pure
function of (seed, b), so the stream's state is the number of batches drawn.
Under data-parallel training every process draws the same global batch and
keeps its own ``rows`` of it (``train.distributed``).

``mirror`` (data.mirror, stylegan2-ada's ``--mirror``; Karras et al. 2020)
doubles the dataset with each image's left-right mirror: an epoch shuffles
2N items, item i + N being image i flipped, so each image is seen both ways
once per epoch.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..errors import UserError
from ..rng import Stream, derive


class Batches:
    def __init__(self, dataset, batch_size: int, seed: int, device="cpu", rows: slice = slice(None),
                 mirror: bool = False):
        self.ds, self.batch_size, self.seed, self.device = dataset, batch_size, seed, torch.device(device)
        self.rows = rows
        self.mirror = mirror
        if mirror and (dataset.density is not None or dataset.x.dim() != 4):
            raise UserError("data.mirror=true flips images; this data holds points")
        self.drawn = 0
        self._epoch, self._perm = -1, None
        if dataset.density is not None:
            self._toy = Stream(seed, "data", self.device)
            self.x = self.y = None
        else:
            self.items = len(dataset) * (2 if mirror else 1)
            if self.items < batch_size:
                raise UserError(f"batch_size={batch_size} is larger than the dataset ({len(dataset)} samples"
                                f"{', mirrored ' + str(self.items) if mirror else ''})")
            self.per_epoch = self.items // batch_size
            self.x = dataset.x.to(self.device)
            self.y = dataset.y.to(self.device) if dataset.y is not None else None

    def next(self) -> tuple[Tensor, Optional[Tensor]]:
        if self.ds.density is not None:
            self._toy.count = self.drawn
            self.drawn += 1
            return self.ds.density.sample(self.batch_size, self._toy.next(), self.device)[self.rows], None
        idx = self.next_indices()
        if not self.mirror:
            return self.x[idx], (self.y[idx] if self.y is not None else None)
        n = len(self.x)
        flip, idx = idx >= n, idx % n
        x = torch.where(flip.view(-1, 1, 1, 1), self.x[idx].flip(-1), self.x[idx])
        return x, (self.y[idx] if self.y is not None else None)

    def next_indices(self) -> Tensor:
        """This process's rows of the next batch, as indices into the dataset (mirrored: i + N is image i
        flipped)."""
        epoch, i = divmod(self.drawn, self.per_epoch)
        self.drawn += 1
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive(self.seed, "epoch", epoch))
            self._perm = torch.randperm(self.items, generator=g).to(self.device)
            self._epoch = epoch
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size][self.rows]

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state["drawn"])


class PairBatches:
    """Batches of image-to-image data: (a, b, y) of the same rows for paired data; for unpaired data, A and B
    from two independent shuffles (seeds derived from the run's), so a batch pairs nothing by design."""

    def __init__(self, dataset, batch_size: int, seed: int, device="cpu", rows: slice = slice(None)):
        from . import Dataset
        self.paired = dataset.paired
        self.b = Batches(dataset, batch_size, seed, device, rows)
        self.a_data = dataset.a.to(device)
        self.a = None if self.paired else Batches(Dataset("A", dataset.a, dataset.y_a), batch_size,
                                                  derive(seed, "domain-a"), device, rows)

    def next(self) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        ib = self.b.next_indices()
        ia = ib if self.paired else self.a.next_indices()
        return self.a_data[ia], self.b.x[ib], (self.b.y[ib] if self.b.y is not None else None)

    def state_dict(self) -> dict:
        return {"drawn": self.b.drawn, "drawn_a": self.a.drawn if self.a is not None else self.b.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.b.load_state_dict(state)
        if self.a is not None:
            self.a.drawn = int(state["drawn_a"])
