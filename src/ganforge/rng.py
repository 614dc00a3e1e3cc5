"""Seeded random streams whose n-th draw depends only on (seed, purpose, n).

Every tensor of randomness in a run (data order, z, interpolation weights)
comes from a :class:`Stream`. Because a draw is a pure function of its
counter, a stream's whole state is one integer: checkpoints store counters,
and a resumed run continues with exactly the numbers it would have drawn.
"""
from __future__ import annotations

import hashlib

import torch


def derive(*parts) -> int:
    """A 63-bit seed from any printable parts (stable across runs and machines)."""
    h = hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


class Stream:
    def __init__(self, seed: int, purpose: str, device="cpu"):
        self.seed, self.purpose, self.count = seed, purpose, 0
        self._gen = torch.Generator(device=device)

    def next(self) -> torch.Generator:
        """A generator seeded for the next draw."""
        self._gen.manual_seed(derive(self.seed, self.purpose, self.count))
        self.count += 1
        return self._gen

    def state_dict(self) -> dict:
        return {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])


def truncated_normal(shape: tuple, threshold: float, generator: torch.Generator) -> torch.Tensor:
    """Standard normal values, each redrawn from ``generator`` until it lies in [-threshold, threshold]
    (the truncation trick of Brock et al. 2019; deterministic given the generator)."""
    z = torch.randn(*shape, generator=generator)
    while True:
        bad = z.abs() > threshold
        k = int(bad.sum())
        if not k:
            return z
        z[bad] = torch.randn(k, generator=generator)
