"""Many small MLP GANs trained at once: S independent copies as one batched network.

The collapse experiment trains every objective on several seeds. Nets this
small are bound by per-operation overhead, not arithmetic, so S copies are
evaluated together: each Linear layer of ganforge's MLP becomes a weight of
shape (S, in, out) applied with one batched matmul to inputs of shape
(S, N, in). The copies are built by ganforge's own MLP builders (one seed
each) and their weights stacked, so copy s computes exactly what the core's
net with seed s computes; the loss is the sum of the S per-copy losses and
Adam works element by element, so the copies also train independently.
PacGAN packing (Lin et al. 2018) reshapes D's input to (S, N/m, m·d).
"""
from __future__ import annotations

import torch
from torch import nn

from ..nets.mlp import MLPDiscriminator, MLPGenerator


class StackedMLP(nn.Module):
    def __init__(self, nets: list[nn.Sequential]):
        super().__init__()
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        self.acts = nn.ModuleList([m for m in nets[0] if not isinstance(m, nn.Linear)])
        self.weights = nn.ParameterList([nn.Parameter(torch.stack([ls[i].weight.detach().t() for ls in linears]))
                                         for i in range(len(linears[0]))])
        self.biases = nn.ParameterList([nn.Parameter(torch.stack([ls[i].bias.detach() for ls in linears]).unsqueeze(1))
                                        for i in range(len(linears[0]))])

    @property
    def copies(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(S, N, in) -> (S, N, out)."""
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.acts):
                x = self.acts[i](x)
        return x


def stacked_pair(seeds: list[int], dim: int, z_dim: int, hidden: int, layers: int, pack: int = 1):
    """(G, D) stacks of ganforge's MLP generator and discriminator, one copy per seed."""
    gs, ds = [], []
    for s in seeds:
        torch.manual_seed(s)
        gs.append(MLPGenerator(z_dim, (dim,), hidden, layers, "relu").net)
        ds.append(MLPDiscriminator((dim,), hidden, layers, pack).net)
    return StackedMLP(gs), StackedMLP(ds)


def discriminate(D: StackedMLP, x: torch.Tensor, pack: int) -> torch.Tensor:
    """D's outputs (S, N/pack) for samples (S, N, d), ``pack`` at a time."""
    s, n, d = x.shape
    return D(x.reshape(s, n // pack, pack * d)).squeeze(2)
