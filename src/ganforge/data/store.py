"""Images held as they were stored, read as floats in [-1, 1] a batch at a time.

A dataset of images keeps its pixels as the files hold them: uint8 (with the
number that means white: 255, or 16 for scikit-learn's digits), or float32
in [0, 1] only where a file's values are not 8-bit (an npz of floats or of
16-bit values; quantising them would change the data). The conversion to the
configured form (channels, centre crop and bicubic resize; data/transform.py)
happens per batch, on the device that trains, and gives exactly the floats a
whole-dataset conversion gives, since each image is converted on its own.
100,000 RGB images at 128 px take 4.9 GB this way against 19.7 GB as floats.

Where the pixels come from is a *source*: a tensor in memory
(:class:`TensorSource`) or an archive read on demand (data/archive.py); both
answer ``read(rows)`` with the stored rows. :class:`Images` is what the rest
of ganforge sees: ``len``, ``shape``, ``images[rows]`` (floats on the CPU) and
``take(rows, device)`` (floats on ``device``, converted there).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .transform import from_unit, resize, to_channels


class TensorSource:
    """Stored pixels in memory: a uint8 tensor (N, C, H, W), or float32 in [0, 1]."""

    def __init__(self, t: Tensor):
        self.t = t

    def __len__(self) -> int:
        return self.t.shape[0]

    @property
    def shape(self) -> tuple:
        return tuple(self.t.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        return self.t.dtype

    @property
    def nbytes(self) -> int:
        return self.t.numel() * self.t.element_size()

    def read(self, rows: Tensor) -> Tensor:
        return self.t[rows]


class Images:
    """N images from ``source`` (rows ``rows`` of it, all by default), each read as float32 (C, side, side) in
    [-1, 1]: stored value / ``white`` (uint8; float32 sources are already in [0, 1]), then ``channels``, then
    [-1, 1], then centre crop and resize to ``side`` (None: as stored), in the order the whole-dataset
    conversion used, so the values are bit-equal to it."""

    def __init__(self, source, white: float = 255.0, channels: Optional[int] = None, side: Optional[int] = None,
                 rows: Optional[Tensor] = None):
        self.source, self.white, self.channels, self.side, self.rows = source, white, channels, side, rows
        c, h, w = source.shape
        c = channels or (3 if c == 4 else c)
        if side is not None:
            h = w = side
        self._shape = (c, h, w)

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.source)

    @property
    def shape(self) -> tuple:
        return (len(self), *self._shape)

    def dim(self) -> int:
        return 4

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def in_memory(self) -> bool:
        return isinstance(self.source, TensorSource)

    @property
    def stored_bytes(self) -> int:
        """Bytes the stored pixels of these images take (or would take, decoded) in memory."""
        c, h, w = self.source.shape
        return len(self) * c * h * w * (1 if self.source.dtype == torch.uint8 else 4)

    def source_rows(self, rows: Tensor) -> Tensor:
        """``rows`` of these images as rows of the source."""
        rows = rows.cpu()
        return self.rows[rows] if self.rows is not None else rows

    def read(self, rows: Tensor) -> Tensor:
        """The stored pixels of ``rows`` (a LongTensor), as stored."""
        return self.source.read(self.source_rows(rows))

    def finish(self, stored: Tensor, device=None) -> Tensor:
        """Stored pixels (a batch of :meth:`read`) as float32 in [-1, 1] on ``device``, in the configured form."""
        if device is not None:
            stored = stored.to(device, non_blocking=True)
        u = stored.to(torch.float32) / self.white if stored.dtype == torch.uint8 else stored.to(torch.float32)
        return resize(from_unit(to_channels(u, self.channels)), self.side).contiguous()

    def take(self, rows: Tensor, device=None) -> Tensor:
        """Images ``rows`` (a LongTensor) as float32 in [-1, 1], converted on ``device``."""
        return self.finish(self.read(rows), device)

    def __getitem__(self, key) -> Tensor:
        if isinstance(key, int):
            return self[torch.tensor([key])][0]
        rows = torch.arange(len(self))[key] if not (isinstance(key, Tensor) and key.dtype == torch.int64) else key
        return self.take(rows.reshape(-1))

    def subset(self, keep: Tensor) -> "Images":
        """The images at ``keep`` (a bool mask or LongTensor of rows), sharing this one's source."""
        rows = torch.arange(len(self))[keep]
        return Images(self.source, self.white, self.channels, self.side, self.source_rows(rows))

    def all(self) -> Tensor:
        """Every image as one float tensor: for small data (the labs, tests); training reads batches."""
        return self.take(torch.arange(len(self)))


WHITES = (255.0, 16.0)      # 8-bit images; scikit-learn's digits (16 gray levels)


def as_stored(x: Tensor, whites=WHITES) -> tuple[Tensor, float]:
    """Float32 images in [0, 1] as the uint8 values they were made from, and the value that means white,
    where some ``white`` gives them back bit-exactly (value / white == x); else ``x`` itself and 1."""
    for white in whites:
        if white > 255 or white != int(white):
            continue
        u = (x * white).round_()
        if bool((u / white == x).all()):
            return u.to(torch.uint8), white
    return x, 1.0


def images_of(x: Tensor, channels: Optional[int] = None, side: Optional[int] = None, whites=WHITES) -> Images:
    """Loaded images (uint8 (N, C, H, W) with 255 for white, or float32 in [0, 1]) as :class:`Images`
    stored as compactly as their values allow."""
    stored, white = (x, 255.0) if x.dtype == torch.uint8 else as_stored(x, whites)
    return Images(TensorSource(stored.contiguous()), white, channels, side)
