"""Sample grids: images in [-1, 1] tiled into one uint8 picture, saved as PNG (atomically, runs.atomic)."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..runs import atomic


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid(x: torch.Tensor, nrow: Optional[int] = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile N images into rows of ``nrow`` (default: a near-square grid)."""
    imgs = to_uint8(x)
    n, h, w, c = imgs.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol_rows = math.ceil(n / nrow)
    out = np.full((pad + ncol_rows * (h + pad), pad + nrow * (w + pad), c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        out[y0:y0 + h, x0:x0 + w] = imgs[i]
    return out[..., 0] if c == 1 else out


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def save_png(arr: np.ndarray, path: Path) -> None:
    atomic.write_bytes(Path(path), png_bytes(arr))


def as_rgb(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray images repeated to 3 channels when ``channels`` is 3 (to tile gray and colour images in one grid)."""
    return x.expand(-1, channels, -1, -1) if x.shape[1] == 1 and channels == 3 else x
