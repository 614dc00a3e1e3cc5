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


CLIP_LIMIT = 0.01          # more than this share of values outside the range: the range is wrong, not the pixels
FLOAT_DEFAULT = (0.0, 1.0)


def parse_range(text, what: str = "--range") -> tuple[float, float]:
    """``"LO,HI"`` (or a pair of numbers) -> (lo, hi), finite with lo < hi."""
    try:
        lo, hi = (float(v) for v in (text.split(",") if isinstance(text, str) else text))
    except (TypeError, ValueError):
        raise UserError(f"{what} {text!r}: give the pixel values' range as LO,HI, e.g. 0,1 or -1,1 or 0,255") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise UserError(f"{what} {text!r}: LO and HI must be finite numbers with LO < HI")
    return lo, hi


def _dtype_range(a: np.ndarray) -> tuple[tuple[float, float], str]:
    if a.dtype == np.bool_:
        return (0.0, 1.0), "bool"
    if a.dtype == np.uint16:
        return (0.0, 65535.0), "uint16"
    if a.dtype.kind in "iu":
        return (0.0, 255.0), f"{a.dtype} (8-bit)"
    return FLOAT_DEFAULT, "floats' default"


def array_to_unit(a: np.ndarray, what: str, given=None, given_by: str = "--range") -> tuple[np.ndarray, dict]:
    """Pixel values of any common dtype to float32 in [0, 1], and the record of how they were read.

    The range is never guessed from the values: it is ``given`` (the user's ``--range``/``data.range``, or the
    ``range`` entry of the file, named by ``given_by``), else the dtype's (uint8 and other integers 0..255,
    uint16 0..65535, bool 0..1, floats 0..1, as image libraries hold floats). Values outside it are clipped and
    counted, so one overshooting pixel changes a result no more than clipping it does; more than 1% outside
    means the range is wrong and is refused with the values found. The record (dtype, range, where the range
    came from, values clipped of values) goes into eval.json and into :func:`range_line`."""
    if not (a.dtype == np.bool_ or a.dtype.kind in "iuf") or a.dtype.kind == "m":
        raise UserError(f"{what} has an unsupported dtype {a.dtype}; pixel values must be uint8, uint16, bool, "
                        "integers or floats")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise UserError(f"{what} holds NaN or infinite values; pixel values must be finite numbers")
    if given is not None:
        (lo, hi), source = parse_range(given, given_by), given_by
    else:
        (lo, hi), source = _dtype_range(a)
    if a.dtype == np.bool_:
        u = a.astype(np.float32)
    else:
        with np.errstate(over="ignore", invalid="ignore"):   # beyond float32 (1e300): out of any range, counted below
            u = a.astype(np.float32)
            if lo != 0.0:
                u -= np.float32(lo)
            u /= np.float32(hi - lo)
    outside = int(np.count_nonzero((u < 0.0) | (u > 1.0)))
    record = {"dtype": str(a.dtype), "range": [lo, hi], "from": source, "clipped": outside, "of": int(a.size)}
    if outside > CLIP_LIMIT * a.size:
        fix = ("say their range with --range=LO,HI or data.range (e.g. --range=-1,1 or 0,255)" if given is None
               else "give the range they were saved in")
        raise UserError(f"{what}: {100.0 * outside / a.size:.3g}% of the values lie outside [{lo:g}, {hi:g}] "
                        f"({source}; found {float(a.min()):g} to {float(a.max()):g}); {fix}")
    if outside:
        np.clip(u, 0.0, 1.0, out=u)
    return u, record


def range_line(what: str, record: Optional[dict]) -> str:
    """One line saying how ``what``'s pixel values were read (for the eval table and the training log)."""
    if not record:
        return ""
    lo, hi = record["range"]
    text = f"{what}: {record['dtype']} read as [{lo:g}, {hi:g}] ({record['from']})"
    if record["clipped"]:
        text += f", {record['clipped']:,} of {record['of']:,} values clipped"
    return text
