"""Bringing images to the configured form: [-1, 1] floats, channels, square size.

Gray to RGB repeats the channel; RGB to gray uses the ITU-R 601 luma weights
(0.299, 0.587, 0.114), as PIL's convert('L') does. Resizing center-crops to a
square, then resamples with antialiased bicubic interpolation.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

LUMA = (0.299, 0.587, 0.114)


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2.0 - 1.0


def to_channels(x: torch.Tensor, channels: Optional[int]) -> torch.Tensor:
    """(N, C, H, W) with C in {1, 3, 4} to the wanted channel count."""
    if x.shape[1] == 4:                    # drop alpha
        x = x[:, :3]
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and x.shape[1] == 3:
        w = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise UserError(f"cannot turn {x.shape[1]}-channel images into {channels} channels")


def center_crop(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[..., top:top + s, left:left + s]


def resize(x: torch.Tensor, side: Optional[int]) -> torch.Tensor:
    """Center-crop to a square and resample to ``side`` (None: keep)."""
    if side is None:
        return x
    x = center_crop(x)
    if x.shape[-1] == side:
        return x
    out = F.interpolate(x, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(-1.0, 1.0)


def array_to_unit(a: np.ndarray, what: str) -> np.ndarray:
    """Pixel values of any common dtype to float32 in [0, 1]."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise UserError(f"{what} holds NaN or infinite values; pixel values must be finite numbers")
        with np.errstate(over="ignore"):         # beyond float32 (1e300): refused below as out of range
            a = a.astype(np.float32)
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            return a
        if lo >= -1.0 and hi <= 1.0:
            return (a + 1.0) / 2.0
        if lo >= 0.0 and hi <= 255.0:
            return a / 255.0
        raise UserError(f"{what} floats must lie in [0, 1], [-1, 1] or [0, 255]; found [{lo:g}, {hi:g}]")
    if a.dtype.kind in "iu":                   # not timedelta64, which numpy also counts as an integer
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise UserError(f"{what} integers must lie in [0, 255]; found [{lo}, {hi}]")
        return a.astype(np.float32) / 255.0
    raise UserError(f"{what} has an unsupported dtype {a.dtype}; pixel values must be uint8, uint16, bool, "
                    "integers in [0, 255] or floats")
