"""Transfer learning on the nets: the ``init`` section, weights matched tensor by tensor, FreezeD's frozen blocks.

Wang et al. 2018, "Transferring GANs: generating images from limited data":
starting G and D from networks trained on other data beats training from
scratch when the new data are few. Mo, Cho & Shin 2020, "Freeze the
Discriminator: a Simple Baseline for Fine-Tuning GANs" (FreezeD): keep the
lower layers of D, those nearest the image, as they were, and fine-tune the
rest. A family's D lists its blocks from the input side with
``block_list()`` (dcgan: each strided conv with its norm and activation;
sngan and biggan: each residual block, BigGAN's self-attention with the
block before it; stylegan: each resolution, the first with fromRGB; r3gan:
each stage that downsamples, the first with the 1x1 conv from the image); its
last layers (the head, the projection, the class head) are never a block.

:func:`fit` sorts a source's tensors against a net's own: those that fit,
those the source lacks, those only it has, those of another shape or dtype.
:func:`freeze` turns off the gradients of D's first N blocks; train.build
leaves those parameters out of D's optimizer, so they get no update, no
Adam moments and no weight decay, and a checkpoint's optimizer holds only
the trained ones (a resume builds the same split from the config). The
section lives here, with the code it configures, so that ganforge.config
can hold it without importing the training package (as data.options).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ..errors import UserError
from ..schema import opt


@dataclass
class InitConfig:
    """Start a new run from another run's weights (transfer learning; step 0, fresh optimizers and streams)."""
    name: Optional[str] = opt(None, "a run folder (its newest checkpoint), a checkpoint .pt, or a generator "
                              ".safetensors of ganforge export (G only: D starts fresh, G's average from G); the "
                              "same model family; null: fresh weights")
    mismatch: str = opt("error", "tensors that do not fit (missing in the source, unexpected, another shape): error "
                        "(one line naming them) or reinit (they keep their fresh initialisation)",
                        choices=("error", "reinit"))


def size(t) -> str:
    return str(tuple(int(s) for s in t.shape))


@dataclass
class Fit:
    """A source state_dict sorted against a net's own: ``take`` (name -> source tensor) and the misfits."""
    take: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)         # the net's names the source lacks
    unexpected: list = field(default_factory=list)      # the source's names the net lacks
    other: list = field(default_factory=list)           # (name, what): another shape, dtype or not a tensor

    def misfits(self, prefix: str) -> list[str]:
        """Each misfit in a few words, its name under ``prefix`` (G., D., G_ema.)."""
        return ([f"{prefix}{k} ({what})" for k, what in self.other]
                + [f"{prefix}{k} (not in the source)" for k in self.missing]
                + [f"{prefix}{k} (only in the source)" for k in self.unexpected])


def fit(own: dict, theirs: dict) -> Fit:
    """``theirs`` (a source's state_dict) against ``own`` (the net's): what can be copied and what cannot."""
    out = Fit()
    for k, want in own.items():
        if k not in theirs:
            out.missing.append(k)
            continue
        got = theirs[k]
        if not isinstance(got, torch.Tensor):
            out.other.append((k, f"{type(got).__name__} in the source, a tensor here"))
        elif tuple(got.shape) != tuple(want.shape):
            out.other.append((k, f"{size(got)} in the source, {size(want)} here"))
        elif got.dtype != want.dtype:
            out.other.append((k, f"{str(got.dtype)[6:]} in the source, {str(want.dtype)[6:]} here"))
        else:
            out.take[k] = got
    out.unexpected = [k for k in theirs if k not in own]
    return out


def listing(names: list[str], first: int = 3) -> str:
    """The first few names, and how many more."""
    more = f" and {len(names) - first} more" if len(names) > first else ""
    return ", ".join(names[:first]) + more


# ---------------------------------------------------------------- FreezeD

def blocks(D: nn.Module) -> Optional[list]:
    """D's blocks from the input side (``D.block_list()``), or None for a D without blocks."""
    block_list = getattr(D, "block_list", None)
    found = block_list() if callable(block_list) else None
    return list(found) if found else None


def freeze(D: nn.Module, n: int, family: str) -> None:
    """FreezeD: no gradient for the parameters of D's first ``n`` blocks (n = 0: nothing)."""
    if not n:
        return
    found = blocks(D)
    if found is None:
        raise UserError(f"model.freeze_d={n}: the {family} family's D has no blocks to freeze; FreezeD works with "
                        "dcgan, sngan, stylegan, biggan and r3gan (model.freeze_d=0 here)")
    if n > len(found):
        raise UserError(f"model.freeze_d={n}: this {family} D has {len(found)} blocks (its head is never frozen); "
                        f"choose 0 to {len(found)}")
    for block in found[:n]:
        block.requires_grad_(False)
