"""StyleGAN, second generation: style-based G with modulated convolutions, residual D.

Karras, Laine, Aittala, Hellsten, Lehtinen & Aila 2020, "Analyzing and
Improving the Image Quality of StyleGAN" (StyleGAN2), on Karras, Laine &
Aila 2019, "A Style-Based Generator Architecture for GANs".

- Mapping network: z, normalized to unit second moment (and, for a
  class-conditional run, joined by a normalized class embedding), through
  ``mapping_layers`` fully connected layers with a learning-rate multiplier
  of 0.01, gives w. G keeps the running mean of w (``w_avg``).
- Synthesis: a learned constant s x s input; at each resolution two 3x3
  convolutions (the first doubling the side) whose weights are modulated
  by a style (an affine map of w, bias 1) and demodulated (each output
  channel's weights scaled to unit norm), per-pixel noise with a learned
  strength per layer, a bias and leaky ReLU * sqrt(2); the image is the sum
  of upsampled 1x1 toRGB outputs of every resolution (the skip G).
- Equalized learning rate everywhere: weights are stored N(0, 1) and scaled
  by 1/sqrt(fan_in) when used.
- D: the residual D of the paper (fromRGB, blocks of two 3x3 convolutions
  and a downsampling 1x1 shortcut, summed and divided by sqrt(2)), then
  minibatch standard deviation, a 3x3 conv and two fully connected layers.
- Training (``train()`` mode, randomness from ``reseed``): style mixing
  with probability ``mixing`` (the styles after a random layer come from a
  second z), random noise; ``eval()`` mode uses fixed noise maps and clamps
  the output to [-1, 1] as the paper's conversion to 8-bit images does.
- Truncation in w: w' = w_avg + psi (w - w_avg) (``sample --truncation``).
- Path-length regularization: every ``pl_every`` G steps,
  (|J_w^T y| - a)^2 with y ~ N(0, I) / sqrt(H W) images and a the running
  mean of the lengths, times ``pl_weight`` * ``pl_every``; lazy R1 on D is
  the core's ``penalty=r1`` (this family's default interval: 16).

``g_output=tanh`` ends G with tanh, as DCGAN does, instead of the paper's
linear output: on the MNIST digits (about 80% of the pixels exactly -1) the
linear-output G collapsed to one digit within a few hundred steps under every
learning rate, R1 weight and regularization setting tried, while the same G
ending in tanh trained (benchmarks/results/families.json).

Deviations from the paper: resampling is bilinear interpolation and 2x2
average pooling instead of the [1, 3, 3, 1] FIR filter, and the Adam
momentum is not adjusted for the lazy regularization intervals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..schema import opt
from .dcgan import plan
from .exact import up_bilinear

SQRT2 = math.sqrt(2.0)


@dataclass
class StyleGANOptions:
    w_dim: int = opt(256, "size of w (the paper: 512)", min=1)
    mapping_layers: int = opt(8, "fully connected layers of the mapping network", min=1)
    g_width: int = opt(32, "channels of G at the full resolution, doubling towards smaller maps", min=1)
    d_width: int = opt(32, "channels of D at the full resolution, doubling towards smaller maps", min=1)
    max_width: int = opt(512, "cap on the channels of any layer", min=1)
    mixing: float = opt(0.9, "probability of style mixing in a training batch", min=0.0, max=1.0)
    pl_weight: float = opt(2.0, "path-length regularization weight; 0: off", min=0.0)
    pl_every: int = opt(4, "path-length regularization every N generator steps (lazy)", min=1)
    w_avg_beta: float = opt(0.995, "decay of the running mean of w", min=0.0, lt=1.0)
    mbstd_group: int = opt(4, "samples per group of D's minibatch standard deviation", min=1)
    g_output: str = opt("linear", "G's output: linear (the paper's; clamped to [-1, 1] for viewing) or tanh",
                        choices=("linear", "tanh"))


def levels(side: int, width: int, cap: int) -> tuple[int, list[int]]:
    """(start size s, channels per resolution from s x s to side x side)."""
    s, k = plan(side, "stylegan")
    return s, [min(width * 2 ** (k - i), cap) for i in range(k + 1)]


class EqLinear(nn.Module):
    """Fully connected layer with equalized learning rate (weights N(0, 1) / lr_mul, scaled at use)."""

    def __init__(self, cin: int, cout: int, lr_mul: float = 1.0, bias_init: float = 0.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(cin), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


class EqConv2d(nn.Module):
    """Convolution with equalized learning rate; ``down``: 2x2 average pooling after it."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool = True, act: bool = True, down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.act, self.down = 1 / math.sqrt(cin * k * k), act, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


def modulated_conv(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool) -> torch.Tensor:
    """conv(x, w_i) for every sample i, w_i = weight * styles_i over input channels, demodulated to unit
    norm per output channel; computed as (x * styles) conv weight, then * per-sample output scales
    (the paper's non-fused form: one batched convolution)."""
    out = F.conv2d(x * styles[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=weight.shape[-1] // 2)
    if demodulate:
        dt = torch.promote_types(weight.dtype, torch.float32)                         # never below fp32
        w2 = weight.to(dt).square().sum(dim=(2, 3))                                    # (cout, cin)
        d = torch.rsqrt(styles.to(dt).square() @ w2.t() + 1e-8)                       # (n, cout)
        out = out * d[:, :, None, None].to(out.dtype)
    return out


class StyleLayer(nn.Module):
    """Modulated 3x3 conv (optionally doubling the side), noise, bias, leaky ReLU * sqrt(2)."""

    def __init__(self, cin: int, cout: int, w_dim: int, side: int, up: bool):
        super().__init__()
        self.affine = EqLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(1, 1, side, side))
        self.up, self.scale, self.side = up, 1 / math.sqrt(cin * 9), side

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: Optional[torch.Tensor]) -> torch.Tensor:
        if self.up:
            x = up_bilinear(x)
        x = modulated_conv(x, self.weight * self.scale, self.affine(w), True)
        x = x + self.noise_strength * (self.noise_const if noise is None else noise)
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2


class ToRGB(nn.Module):
    def __init__(self, cin: int, channels: int, w_dim: int):
        super().__init__()
        self.affine = EqLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.scale = 1 / math.sqrt(cin)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return modulated_conv(x, self.weight * self.scale, self.affine(w), False) + self.bias[None, :, None, None]


class StyleGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, side: int, o: StyleGANOptions, classes: int = 0):
        super().__init__()
        s, ch = levels(side, o.g_width, o.max_width)
        self.z_dim, self.w_dim, self.mixing, self.beta = z_dim, o.w_dim, o.mixing, o.w_avg_beta
        self.pl_weight, self.pl_every, self.tanh = o.pl_weight, o.pl_every, o.g_output == "tanh"
        self.embed = nn.Embedding(classes, o.w_dim) if classes else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight)
        dims = [z_dim + (o.w_dim if classes else 0)] + [o.w_dim] * o.mapping_layers
        self.mapping = nn.ModuleList(EqLinear(dims[i], dims[i + 1], lr_mul=0.01, act=True)
                                     for i in range(o.mapping_layers))
        self.const = nn.Parameter(torch.randn(ch[0], s, s))
        self.layers = nn.ModuleList([StyleLayer(ch[0], ch[0], o.w_dim, s, up=False)])
        self.rgbs = nn.ModuleList([ToRGB(ch[0], channels, o.w_dim)])
        for i in range(1, len(ch)):
            size = s * 2 ** i
            self.layers.extend([StyleLayer(ch[i - 1], ch[i], o.w_dim, size, up=True),
                                StyleLayer(ch[i], ch[i], o.w_dim, size, up=False)])
            self.rgbs.append(ToRGB(ch[i], channels, o.w_dim))
        self.num_ws = len(self.layers) + 1
        self.register_buffer("w_avg", torch.zeros(o.w_dim))
        self.register_buffer("pl_mean", torch.zeros(()))
        self._rand: Optional[tuple] = None     # (generator, rows, global batch) for the next training forward
        self._row_mean = None

    # ------------------------------------------------------------ randomness
    def reseed(self, generator: torch.Generator, rows: slice, n_global: int, row_mean=None) -> None:
        """Randomness for the next training forward (style mixing, noise): drawn for the global batch from
        ``generator`` and sliced to this process's ``rows``, as one process would draw it; ``row_mean``
        averages over every process's rows (for the running mean of w)."""
        self._rand = (generator, rows, n_global)
        self._row_mean = row_mean

    def _draw(self, *shape) -> torch.Tensor:
        g, rows, n = self._rand
        return torch.randn(n, *shape, generator=g, device=g.device)[rows]

    # ------------------------------------------------------------ mapping, synthesis
    def mapping_net(self, z: torch.Tensor, y: Optional[torch.Tensor] = None, truncation: Optional[float] = None,
                    update: bool = False) -> torch.Tensor:
        """w for each z (and label), (N, w_dim); ``update`` moves the running mean of w."""
        x = z.reshape(z.shape[0], -1)
        x = x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)
        if self.embed is not None:
            if y is None:
                raise RuntimeError("a class-conditional StyleGAN generator was called without labels")
            e = y.to(self.embed.weight.dtype) @ self.embed.weight if y.is_floating_point() else self.embed(y)
            x = torch.cat([x, e * torch.rsqrt(e.square().mean(1, keepdim=True) + 1e-8)], 1)
        for layer in self.mapping:
            x = layer(x)
        if update:
            with torch.no_grad():
                rows = x.detach().to(self.w_avg.dtype)
                mean = self._row_mean(rows) if self._row_mean is not None else rows.mean(0)
                self.w_avg.copy_(mean.lerp(self.w_avg, self.beta))
        if truncation is not None:
            x = self.w_avg.to(x.dtype).lerp(x, truncation)
        return x

    def styles(self, z: torch.Tensor, y: Optional[torch.Tensor] = None, truncation: Optional[float] = None,
               mix: bool = False) -> torch.Tensor:
        """ws of shape (N, num_ws, w_dim); ``mix``: style mixing with the next draws of the randomness."""
        # the running mean of w moves on the D phase's draws (G under no_grad), as StyleGAN2-ADA's Dgen pass
        update = self.training and self._rand is not None and not torch.is_grad_enabled()
        w = self.mapping_net(z, y, truncation, update)
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if mix and self.mixing > 0:
            g, _, _ = self._rand
            u, cut = torch.rand((), generator=g, device=g.device), torch.randint(1, self.num_ws, (), generator=g,
                                                                                device=g.device)
            z2 = self._draw(self.z_dim).to(z.dtype)
            if float(u) < self.mixing:
                ws[:, int(cut):] = self.mapping_net(z2, y, truncation)[:, None]
        return ws

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        random = self.training and self._rand is not None
        x = self.const[None].expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        x = self.layers[0](x, ws[:, 0], self._draw(1, *self.layers[0].noise_const.shape[2:]) if random else None)
        img = self.rgbs[0](x, ws[:, 1])
        for i in range(1, len(self.rgbs)):
            for j in (2 * i - 1, 2 * i):
                layer = self.layers[j]
                x = layer(x, ws[:, j], self._draw(1, layer.side, layer.side) if random else None)
            img = up_bilinear(img) + self.rgbs[i](x, ws[:, 2 * i + 1])
        if self.tanh:
            return torch.tanh(img)
        return img if self.training else img.clamp(-1, 1)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None, truncation: Optional[float] = None):
        try:
            ws = self.styles(z, y, truncation, mix=self.training and self._rand is not None)
            return self.synthesis(ws)
        finally:
            self._rand = self._row_mean = None  # each training forward takes its randomness from its own reseed

    # ------------------------------------------------------------ path-length regularization
    def lazy_penalty(self, g_count: int, draw, mean) -> Optional[tuple]:
        """(pl_weight * pl_every * mean (|J^T y| - a)^2, mean length) every pl_every G steps, else None.
        ``draw(n)``: (z, y, generator) for a global batch of n; ``mean``: a mean over every process's rows."""
        if not self.pl_weight or g_count % self.pl_every:
            return None
        z, y, g, rows, n = draw()
        self.reseed(g, rows, n)
        try:
            ws = self.styles(z, y, mix=True)
            img = self.synthesis(ws)
            noise = self._draw(*img.shape[1:]).to(img.dtype) / math.sqrt(img.shape[2] * img.shape[3])
        finally:
            self._rand = None
        grad, = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.to(torch.promote_types(grad.dtype, torch.float32)).square().sum(2).mean(1).sqrt()
        a = self.pl_mean.lerp(mean(lengths.detach()).to(self.pl_mean.dtype), 0.01)
        self.pl_mean.copy_(a)
        return self.pl_weight * self.pl_every * mean((lengths - a).square()), lengths.detach().mean()


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """x with one more channel: the standard deviation over groups of samples, averaged over features
    and positions (Karras et al. 2018), one value per group; the group is the largest divisor of the
    batch that is at most ``group``."""
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group, n) + 1) if n % d == 0)
    y = x.float().reshape(g, n // g, c, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=(1, 2, 3))           # (n // g,)
    y = y.repeat(g)[:, None, None, None].expand(n, 1, h, w)
    return torch.cat([x, y.to(x.dtype)], 1)


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0, self.conv1 = EqConv2d(cin, cin, 3), EqConv2d(cin, cout, 3, down=True)
        self.skip = EqConv2d(cin, cout, 1, bias=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(F.avg_pool2d(x, 2)) + self.conv1(self.conv0(x))) / SQRT2


class StyleDiscriminator(nn.Module):
    batch_coupled = True        # minibatch std: real and fake batches must go through D separately

    def __init__(self, channels: int, side: int, o: StyleGANOptions):
        super().__init__()
        s, ch = levels(side, o.d_width, o.max_width)
        self.group = o.mbstd_group
        self.from_rgb = EqConv2d(channels, ch[-1], 1)
        self.blocks = nn.Sequential(*[DBlock(ch[i], ch[i - 1]) for i in range(len(ch) - 1, 0, -1)])
        self.conv = EqConv2d(ch[0] + 1, ch[0], 3)
        self.fc = EqLinear(ch[0] * s * s, ch[0], act=True)
        self.out = EqLinear(ch[0], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (a vector per sample; a projection D takes its inner product with the label)."""
        h = self.blocks(self.from_rgb(x))
        return self.fc(self.conv(minibatch_std(h, self.group)).flatten(1))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(h).flatten()

    def block_list(self) -> list:
        """One block per resolution from the input side, fromRGB with the first (as StyleGAN2's D blocks;
        FreezeD, nets.transfer); minibatch std, the last conv and the two linear layers are the head."""
        return [nn.ModuleList([self.from_rgb, self.blocks[0]]), *self.blocks[1:]]


def build(shape: tuple, z_dim: int, o: StyleGANOptions, classes: int = 0):
    if len(shape) != 3 or shape[1] != shape[2]:
        raise UserError(f"model stylegan needs square images, got samples of shape {tuple(shape)}")
    c, side, _ = shape
    return StyleGenerator(z_dim, c, side, o, classes), StyleDiscriminator(c, side, o)
