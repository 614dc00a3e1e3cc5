"""ADA's geometric transforms: per-image 3x3 matrices, composed into one and applied once.

Karras et al., "Training Generative Adversarial Networks with Limited Data"
(NeurIPS 2020), appendix B: pixel blitting (x-flip, quarter turns, integer
translation) and general geometric transforms (isotropic and anisotropic
scaling, rotation, fractional translation) compose into one matrix per image,
and the image is resampled once, mirrored past its edges so that no empty
border shows, on a 2x grid so that resampling aliases little.

Coordinates are pixels with the origin at the image centre, x to the right,
y down. A matrix maps an OUTPUT pixel to the input position it reads (the
inverse of the transform), so ``A @ B`` applies B's transform first.

:func:`warp` executes a batch of matrices:

1. 2x upsampling with the CDF 9/7 synthesis low-pass (7 taps, JPEG 2000;
   ganforge.augment.filters) of the image mirrored 2 pixels past its edges;
2. bilinear sampling of that 2x image at the transformed centres of a 2x
   output grid, the 2x image mirrored about its edge samples wherever a
   position falls outside (grid_sample on the CPU; on a GPU four gathers,
   whose gradient, unlike grid_sample's, is deterministic);
3. 2x downsampling with the CDF 9/7 analysis low-pass (9 taps).

What differs from stylegan2-ada-pytorch (training/augment.py):

- the filters: there the orthogonal, slightly asymmetric sym6 wavelet; here
  the biorthogonal CDF 9/7 pair. Up then down is still exactly the identity,
  and as both filters are symmetric, flips, quarter turns and integer
  translations commute with them and come out exact to rounding.
- the padding: there the image is reflect-padded by the margin the batch's
  matrices need (at most one image side, zeros beyond), upsampled, sampled.
  Here only the 2x image is computed, and mirrored about its edge samples
  when sampled. Because the filter is symmetric, the upsampled mirror image
  is the mirror of the upsampled image, so this equals reflect padding by any
  margin, at the cost of the unpadded image, with no cap and no batch-wide
  margin (each image's result depends on its own matrix only).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .filters import downsample2, upsample2

REACH = 2            # the output's 2x grid reaches this many pixels past each side (the analysis filter's half width)


# ----- matrices: (n,) parameters -> (n, 3, 3), output position -> input position


def _eye(n: int, like: Tensor) -> Tensor:
    return torch.eye(3, dtype=like.dtype, device=like.device).repeat(n, 1, 1)


def translate_matrix(tx: Tensor, ty: Tensor) -> Tensor:
    m = _eye(len(tx), tx)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def scale_matrix(sx: Tensor, sy: Tensor) -> Tensor:
    m = _eye(len(sx), sx)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def rotate_matrix(theta: Tensor) -> Tensor:
    return _rotation(torch.cos(theta), torch.sin(theta))


def quarter_matrix(k: Tensor) -> Tensor:
    """``rotate_matrix(k * pi / 2)`` with exact zeros and ones (k integer-valued)."""
    k = k.remainder(4)
    cos = (k == 0).to(k.dtype) - (k == 2).to(k.dtype)
    sin = (k == 1).to(k.dtype) - (k == 3).to(k.dtype)
    return _rotation(cos, sin)


def _rotation(cos: Tensor, sin: Tensor) -> Tensor:
    m = _eye(len(cos), cos)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


# ----- execution


def source_grid(G_inv: Tensor, height: int, width: int, dtype=torch.float32) -> Tensor:
    """Where each sample of the 2x output grid (pixels -REACH .. side - 1 + REACH in half pixels) reads in the
    2x input grid (sample j at pixel j/2), as grid_sample's grid (n, 2h + 7, 2w + 7, 2) with align_corners
    (-1 and 1: the first and last input pixels). The matrix is composed in float64, the grid made in ``dtype``
    by two broadcast sums (a tenth of F.affine_grid's time on the CPU)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    dt = dict(dtype=torch.float64, device=G_inv.device)
    to_input = torch.diag(torch.tensor([1 / cx, 1 / cy, 1.0], **dt))                 # centred pixels -> [-1, 1]
    from_output = torch.diag(torch.tensor([cx + REACH, cy + REACH, 1.0], **dt))      # [-1, 1] -> centred pixels
    t = (to_input @ G_inv.to(torch.float64) @ from_output).to(dtype)[:, :2, :, None, None]
    u = torch.linspace(-1, 1, 2 * width + 4 * REACH - 1, dtype=dtype, device=G_inv.device)[None, None, :]
    v = torch.linspace(-1, 1, 2 * height + 4 * REACH - 1, dtype=dtype, device=G_inv.device)[None, :, None]
    return torch.stack([t[:, i, 0] * u + (t[:, i, 1] * v + t[:, i, 2]) for i in (0, 1)], -1)


def sample(img: Tensor, grid: Tensor) -> Tensor:
    """grid_sample(img, grid, bilinear, align_corners=True), img mirrored about its edge samples outside. On
    the CPU grid_sample itself; elsewhere :func:`sample_gather`, whose gradient (gather's) is deterministic on
    a GPU, where grid_sample's is not (PyTorch, "Reproducibility")."""
    if img.device.type != "cpu":
        return sample_gather(img, grid)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def _reflect(i: Tensor, n: int) -> Tensor:
    period = 2 * (n - 1)
    t = torch.remainder(i, period)
    return torch.where(t > n - 1, period - t, t)


def sample_gather(img: Tensor, grid: Tensor) -> Tensor:
    """:func:`sample` as four gathers and a weighted sum."""
    n, c, h, w = img.shape
    grid = grid.to(img.device)
    ix, iy = _reflect((grid[..., 0] + 1) * ((w - 1) / 2), w), _reflect((grid[..., 1] + 1) * ((h - 1) / 2), h)
    x0, y0 = ix.floor().clamp(max=w - 2), iy.floor().clamp(max=h - 2)
    wx, wy = (ix - x0).to(img.dtype)[:, None], (iy - y0).to(img.dtype)[:, None]
    first = (y0.long() * w + x0.long()).flatten(1)[:, None].expand(n, c, -1)
    flat = img.reshape(n, c, h * w)

    def at(offset: int) -> Tensor:
        return flat.gather(2, first + offset).view(n, c, *ix.shape[1:])

    return (at(0) * (1 - wx) + at(1) * wx) * (1 - wy) + (at(w) * (1 - wx) + at(w + 1) * wx) * wy


def warp(x: Tensor, G_inv: Tensor) -> Tensor:
    """Images (n, c, h, w) resampled through the matrices G_inv (n, 3, 3) (output pixel -> input position),
    the image mirrored without end past its edges."""
    n, c, h, w = x.shape
    if h < 3 or w < 3:
        raise ValueError(f"geometric augmentation needs images of at least 3x3 pixels, got {h}x{w}")
    grid = source_grid(G_inv.to(x.device), h, w, x.dtype)
    return downsample2(sample(upsample2(x), grid))


# ----- each transform alone (the pipeline composes their matrices instead)


def xflip(x: Tensor, mask: Tensor) -> Tensor:
    """Images whose ``mask`` is true mirrored left-right."""
    f = 1 - 2 * mask.to(torch.float64)
    return warp(x, scale_matrix(f, torch.ones_like(f)))


def rotate90(x: Tensor, k: Tensor) -> Tensor:
    """Each image turned k quarter turns counter-clockwise (as torch.rot90(x, k, (2, 3)); square images)."""
    return warp(x, quarter_matrix(k.to(torch.float64)))


def translate(x: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """Each image's content moved tx pixels right and ty down (any real amount), the border mirrored."""
    return warp(x, translate_matrix(-tx.to(torch.float64), -ty.to(torch.float64)))


def scale(x: Tensor, s: Tensor) -> Tensor:
    """Each image magnified s times about its centre."""
    s = s.to(torch.float64)
    return warp(x, scale_matrix(1 / s, 1 / s))


def aniso(x: Tensor, s: Tensor) -> Tensor:
    """Each image stretched s times along x and 1/s times along y."""
    s = s.to(torch.float64)
    return warp(x, scale_matrix(1 / s, s))


def rotate(x: Tensor, theta: Tensor) -> Tensor:
    """Each image turned by theta radians counter-clockwise (theta = pi/2 is rotate90 with k = 1)."""
    return warp(x, rotate_matrix(theta.to(torch.float64)))
