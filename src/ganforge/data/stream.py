"""Batches read ahead: worker processes decode the coming batches of a streamed archive while the step runs.

The rows of batch b are a pure function of (seed, epoch, position)
(data/batches.py), so the coming batches are known in advance: a sampler
yields them from the batch the run is at, torch's DataLoader (PyTorch's
multi-process loader; Paszke et al. 2019) hands each whole batch to one of
``workers`` forked processes, which decode it (data/archive.py) and return
the stored uint8 pixels, ``prefetch`` batches per worker ahead, pinned for a
CUDA device. The conversion to floats happens after, on the device. Nothing
of the loader is state: a resume moves its sampler to the batch it is at, and
what had been read ahead for other batches is dropped. The workers fork once,
before the trainer builds its nets, so they share no page training writes. ``workers=0`` decodes in the training
process, with no read-ahead.
"""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch import Tensor

from ..errors import UserError


def default_workers() -> int:
    """Half the cores, 1 to 4: the step keeps the rest."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class _Batches(torch.utils.data.Dataset):
    """(b, rows of batch b) -> (b, the stored pixels, None), or (b, None, the line saying which member failed)."""

    def __init__(self, images):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, job):
        b, rows = job
        try:
            return b, self.images.read(rows), None
        except UserError as e:
            return b, None, str(e)


class _From(torch.utils.data.Sampler):
    """(b, plan(b)) for b = pos, pos + 1, ...; ``pos`` may be moved (a resume) while the loader runs."""

    def __init__(self, plan: Callable[[int], Tensor], start: int):
        self.plan, self.pos = plan, start

    def __iter__(self):
        while True:
            b = self.pos
            self.pos += 1
            yield b, self.plan(b)


class ReadAhead:
    """The stored pixels of batch ``at``, ``at + 1``, ... of ``images``; ``plan(b)`` gives the rows (of
    ``images``) of batch b. The workers fork once, when it is made: made before the nets are built, they
    share no page that training writes later. :meth:`next` asked for another batch than the one due (a
    resume) moves the sampler there and drops what was read ahead for other batches."""

    def __init__(self, images, plan: Callable[[int], Tensor], start: int, workers: int, pin: bool = False,
                 prefetch: int = 2):
        self.at = start
        self._sampler = _From(plan, start)
        loader = torch.utils.data.DataLoader(
            _Batches(images), batch_size=None, sampler=self._sampler, num_workers=workers,
            prefetch_factor=prefetch if workers else None, pin_memory=pin,
            generator=torch.Generator().manual_seed(0),   # its base seed: never a draw from torch's global stream
            multiprocessing_context="fork" if workers else None)
        import gc
        gc.freeze()        # the workers fork now: a collection in them would touch, and so copy, every object
        try:
            self._it = iter(loader)
        finally:
            gc.unfreeze()
        self.waited = 0.0              # seconds the caller spent waiting for a batch (benchmarks read it)

    def next(self, b: int) -> Tensor:
        """The stored pixels of batch ``b``."""
        import time
        if b != self.at:
            self._sampler.pos, self.at = b, b
        t0 = time.perf_counter()
        while True:
            got, stored, error = next(self._it)
            if got == b:               # batch b's rows never change, so a copy read before a jump serves too
                break
        self.waited += time.perf_counter() - t0
        if error is not None:
            self.close()
            raise UserError(error)
        self.at += 1
        return stored

    def close(self) -> None:
        self._it = None
