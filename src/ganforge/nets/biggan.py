"""BigGAN: the class-conditional ResNet GAN of Brock, Donahue & Simonyan 2019,
"Large Scale GAN Training for High Fidelity Natural Image Synthesis".

- Hierarchical latent: z is split into k + 1 chunks; the first feeds the
  linear layer to the s x s map, each of the k up-blocks gets its own.
- Conditional batch norm from a shared embedding: every batch norm in the
  blocks normalizes without its own affine and takes gain 1 + W_g c and
  bias W_b c from c = [shared class embedding, the block's z chunk] (one
  embedding for all layers, linear projections per layer). Unconditional
  runs condition on the z chunk alone.
- Self-attention (SAGAN, nets.attention) after the G block and the D block
  whose maps have side ``model.attention``.
- D: the ResNet D of SNGAN (nets.resnet) with a projection head
  (``model.conditional=true``; Miyato & Koyama 2018).
- Orthogonal regularization of G: beta * sum ||W W^T * (1 - I)||_F^2 over
  G's weight matrices (rows = output units, conv kernels flattened),
  added to the G loss (``model.ortho``; the paper's beta = 1e-4).
- Orthogonal initialization; spectral norm in G and D and the hinge loss
  (the family's defaults); EMA of G as in the core loop.
- Truncation trick: ``ganforge sample RUN --truncation T`` draws z from a
  normal truncated to [-T, T] (resampling the values outside);
  ``ganforge truncation RUN`` sweeps T against FID and precision/recall.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..errors import UserError
from ..schema import opt
from .attention import SelfAttention
from .conditional import lookup
from .dcgan import plan
from .resnet import GBlock, ResNetDiscriminator, widths


@dataclass
class BigGANOptions:
    g_width: int = opt(64, "channels of G's blocks (doubling towards small maps above 32 px)", min=1)
    d_width: int = opt(64, "channels of D's blocks", min=1)
    max_width: int = opt(1024, "cap on the channels of any block", min=1)
    shared_dim: int = opt(128, "size of the class embedding shared by G's conditional batch norms", min=1)
    hierarchical: bool = opt(True, "split z over the linear layer and every G block")
    attention: Optional[int] = opt(None, "side of the maps after which G and D have self-attention; "
                                   "null: half the image side; 0: none", min=0)
    ortho: float = opt(1e-4, "orthogonal regularization weight beta on G's weights", min=0.0)


class HierarchicalBatchNorm2d(nn.Module):
    """Batch norm with gain 1 + W_g c and bias W_b c from a conditioning vector c."""

    def __init__(self, channels: int, cdim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cdim, channels, bias=False)
        self.bias = nn.Linear(cdim, channels, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


def ortho_penalty(weights) -> torch.Tensor:
    """sum over W of ||W W^T * (1 - I)||_F^2, W reshaped to (rows, -1) (Brock et al. 2019, eq. 3)."""
    total = None
    for w in weights:
        m = w.reshape(w.shape[0], -1).float()
        gram = m @ m.t()
        off = (gram - torch.diag(torch.diagonal(gram))).pow(2).sum()
        total = off if total is None else total + off
    return total if total is not None else torch.zeros(())


def attention_side(side: int, option: Optional[int]) -> int:
    return side // 2 if option is None else option


class BigGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, side: int, o: BigGANOptions, classes: int):
        super().__init__()
        s, k = plan(side, "biggan")
        w = widths(o.g_width, k, o.max_width)
        w = w + [w[-1]]
        self.chunk = z_dim // (k + 1) if o.hierarchical else 0
        if o.hierarchical and self.chunk < 1:
            raise UserError(f"model.hierarchical splits z over {k + 1} parts: model.z_dim must be at least {k + 1}")
        self.first = z_dim - k * self.chunk
        self.s, self.w0, self.k, self.ortho = s, w[0], k, o.ortho
        self.shared = nn.Embedding(classes, o.shared_dim) if classes else None
        cdim = self.chunk + (o.shared_dim if classes else 0)
        norm = (lambda ch: HierarchicalBatchNorm2d(ch, cdim)) if cdim else nn.BatchNorm2d
        self.cond = cdim > 0
        self.linear = nn.Linear(self.first, s * s * w[0])
        self.blocks = nn.ModuleList(GBlock(w[i], w[i + 1], norm) for i in range(k))
        at = attention_side(side, o.attention)
        self.attn = nn.ModuleDict({str(i): SelfAttention(w[i + 1]) for i in range(k) if s * 2 ** (i + 1) == at})
        self.out = nn.Sequential(nn.BatchNorm2d(w[k]), nn.ReLU(), nn.Conv2d(w[k], channels, 3, 1, 1), nn.Tanh())
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                nn.init.orthogonal_(m.weight)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():        # cBN projections start small: gain ~ 1, bias ~ 0
            if isinstance(m, HierarchicalBatchNorm2d):
                nn.init.normal_(m.gain.weight, 0.0, 0.02)
                nn.init.normal_(m.bias.weight, 0.0, 0.02)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], -1)
        zs = z.split([self.first] + [self.chunk] * self.k, 1) if self.chunk else [z] + [z[:, :0]] * self.k
        if self.shared is not None and y is None:
            raise RuntimeError("a class-conditional BigGAN generator was called without labels")
        e = lookup(self.shared, y) if self.shared is not None else None
        h = self.linear(zs[0]).view(z.shape[0], self.w0, self.s, self.s)
        for i, block in enumerate(self.blocks):
            c = None
            if self.cond:
                c = zs[i + 1] if e is None else torch.cat([e.to(zs[i + 1].dtype), zs[i + 1]], 1)
            h = block(h, c)
            if str(i) in self.attn:
                h = self.attn[str(i)](h)
        return self.out(h)

    def penalized_weights(self):
        """G's weight matrices under orthogonal regularization (not the shared embedding, not gains/biases)."""
        for name, p in self.named_parameters():
            if p.dim() >= 2 and not name.startswith("shared"):
                yield p

    def weight_penalty(self) -> Optional[torch.Tensor]:
        """The orthogonal regularization term added to the G loss (None when model.ortho=0)."""
        return self.ortho * ortho_penalty(self.penalized_weights()) if self.ortho else None


def build(shape: tuple, z_dim: int, o: BigGANOptions, classes: int = 0):
    if len(shape) != 3 or shape[1] != shape[2]:
        raise UserError(f"model biggan needs square images, got samples of shape {tuple(shape)}")
    c, side, _ = shape
    at = attention_side(side, o.attention)
    s, k = plan(side, "biggan")
    sides = [s * 2 ** i for i in range(k + 1)]       # G's blocks make 2s..side, D's blocks s..side/2
    if at and at not in sides:
        raise UserError(f"model.attention={at} is not the side of a block's maps at {side} px; "
                        f"choose one of {', '.join(map(str, sides))} or 0 (none)")
    G = BigGANGenerator(z_dim, c, side, o, classes)
    D = ResNetDiscriminator(c, side, o.d_width, o.max_width, attention=SelfAttention, attn_side=at, family="biggan")
    return G, D
