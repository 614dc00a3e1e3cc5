"""Pixel fidelity against a ground truth: L1, PSNR and SSIM, per image.

For image-to-image tasks with a known answer (pix2pix-style translation,
super-resolution, inpainting; Isola et al. 2017 report L1, Ledig et al. 2017
PSNR and SSIM). Images are float tensors (N, C, H, W) in [-1, 1] (ganforge's
range), compared on the data range 2.

- PSNR = 10 log10(range^2 / MSE), MSE over each image's pixels.
- SSIM (Wang, Bovik, Sheikh & Simoncelli 2004): local means, variances and
  covariance under an 11x11 Gaussian window of sigma 1.5, C1 = (0.01 range)^2,
  C2 = (0.03 range)^2, SSIM map
  ((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
  averaged over the positions where the whole window fits (no padding), then
  over channels. Population (biased) variances. This is scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``, which the tests compare against.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

RANGE = 2.0     # images in [-1, 1]


def _check(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"pixel metrics need two (N, C, H, W) batches of one shape, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")


def l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute difference per image, (N,)."""
    _check(x, y)
    return (x.double() - y.double()).abs().flatten(1).mean(1)


def psnr(x: Tensor, y: Tensor, data_range: float = RANGE) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, (N,); inf for identical images."""
    _check(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """The normalized 2-D Gaussian window (size, size), float64."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-t.square() / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: Tensor, y: Tensor, data_range: float = RANGE, size: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per image, (N,), averaged over channels."""
    _check(x, y)
    n, c, h, w = x.shape
    if min(h, w) < size:
        raise ValueError(f"SSIM with an {size}x{size} window needs images of at least {size} px, got {h}x{w}")
    win = gaussian_window(size, sigma).to(x.device)[None, None].expand(c, 1, size, size)
    x, y = x.double(), y.double()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, win, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx.square(), blur(y * y) - my.square(), blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx.square() + my.square() + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def pixel_scores(x: Tensor, y: Tensor) -> dict:
    """Means over the batch: {"l1", "psnr", "ssim"} (PSNR averaged in dB, images that equal their truth left
    out of it; SSIM only for images of at least 11 px)."""
    p = psnr(x, y)
    finite = p[torch.isfinite(p)]
    out = {"l1": float(l1(x, y).mean()), "psnr": float(finite.mean()) if len(finite) else math.inf}
    if min(x.shape[-2:]) >= 11:
        out["ssim"] = float(ssim(x, y).mean())
    return out
