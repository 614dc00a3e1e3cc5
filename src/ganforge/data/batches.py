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
                 mirror: bool = False, workers: Optional[int] = None):
        self.ds, self.batch_size, self.seed, self.device = dataset, batch_size, seed, torch.device(device)
        self.rows = rows
        self.mirror = mirror
        if mirror and (dataset.density is not None or dataset.samples.dim() != 4):
            raise UserError("data.mirror=true flips images; this data holds points")
        self.drawn = 0
        self._perms = {}
        self._ahead, self.workers, self._waited = None, workers, 0.0
        if dataset.density is not None:
            self._toy = Stream(seed, "data", self.device)
            self.x = self.y = None
        else:
            self.items = len(dataset) * (2 if mirror else 1)
            if self.items < batch_size:
                raise UserError(f"batch_size={batch_size} is larger than the dataset ({len(dataset)} samples"
                                f"{', mirrored ' + str(self.items) if mirror else ''})")
            self.per_epoch = self.items // batch_size
            held = isinstance(dataset.samples, Tensor)     # points, image-to-image data: a tensor on the device
            self.x = dataset.samples.to(self.device) if held else dataset.samples
            self._index_device = self.device if held else torch.device("cpu")
            self.y = dataset.y.to(self.device) if dataset.y is not None else None

    def next(self) -> tuple[Tensor, Optional[Tensor]]:
        if self.ds.density is not None:
            self._toy.count = self.drawn
            self.drawn += 1
            return self.ds.density.sample(self.batch_size, self._toy.next(), self.device)[self.rows], None
        b = self.drawn
        idx = self.next_indices()
        n = len(self.x)
        flip, src = (idx >= n, idx % n) if self.mirror else (None, idx)
        if isinstance(self.x, Tensor):
            x = self.x[src]
        else:                                  # images as stored: read (streamed: read ahead), then converted here
            x = self.x.finish(self.read_ahead().next(b) if not self.x.in_memory else self.x.read(src), self.device)
        if flip is not None:
            flip = flip.to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x, (self.y[src.to(self.y.device)] if self.y is not None else None)

    def read_ahead(self):
        """The reader of a streamed archive (its workers fork on the first call: the trainer calls this before
        it builds the nets, so the workers share none of the pages that training writes)."""
        if self._ahead is None:
            from .stream import ReadAhead, default_workers
            n = len(self.x)
            self._ahead = ReadAhead(self.x, lambda k: self.indices(k) % n, self.drawn,
                                    default_workers() if self.workers is None else self.workers,
                                    pin=self.device.type == "cuda")
        return self._ahead

    def indices(self, b: int) -> Tensor:
        """This process's rows of batch ``b``: a function of (seed, epoch, position) only."""
        epoch, i = divmod(b, self.per_epoch)
        if epoch not in self._perms:           # two epochs kept: the read-ahead may be one epoch ahead
            g = torch.Generator().manual_seed(derive(self.seed, "epoch", epoch))
            self._perms = {k: v for k, v in self._perms.items() if k == epoch - 1}
            self._perms[epoch] = torch.randperm(self.items, generator=g).to(self._index_device)
        return self._perms[epoch][i * self.batch_size:(i + 1) * self.batch_size][self.rows]

    def next_indices(self) -> Tensor:
        """This process's rows of the next batch, as indices into the dataset (mirrored: i + N is image i
        flipped)."""
        self.drawn += 1
        return self.indices(self.drawn - 1)

    @property
    def streaming(self) -> bool:
        """Whether batches are decoded from an archive as they are drawn."""
        return self.x is not None and not isinstance(self.x, Tensor) and not self.x.in_memory

    @property
    def waited(self) -> float:
        """Seconds spent waiting for streamed batches so far (0 in memory)."""
        return self._waited + (self._ahead.waited if self._ahead is not None else 0.0)

    def close(self) -> None:
        """Stop the read-ahead workers, if any."""
        if self._ahead is not None:
            self._waited += self._ahead.waited
            self._ahead.close()
            self._ahead = None

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
