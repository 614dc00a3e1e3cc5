"""The dataset registry: a name (or ``kind:PATH``) becomes a :class:`Dataset`.

Images are float tensors (N, C, H, W) in [-1, 1]; toy data are (N, d) floats
with the exact density attached; labels are int64. A held-out split
(``data.holdout``) is drawn once with a fixed seed, stratified by label, so
the same images are held out in every run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..errors import UserError
from . import files
from .embedded import EMBEDDED
from .toy import TOYS, GaussianMixture
from .transform import from_unit, resize, to_channels

SPLIT_SEED = 20141210          # fixed: the held-out part never depends on the run's seed
TOY_POINTS = 10_000            # the finite sample kept for toys (training draws fresh points)


@dataclass
class Dataset:
    name: str
    x: Tensor
    y: Optional[Tensor] = None
    classes: Optional[list] = None
    density: Optional[GaussianMixture] = None

    @property
    def kind(self) -> str:
        return "image" if self.x.dim() == 4 else "vector"

    @property
    def shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]


def names() -> dict[str, str]:
    """Every registered name and file kind with a one-line description."""
    out = {k: d for k, (_, d) in EMBEDDED.items()}
    out.update({k: d for k, (_, d) in TOYS.items()})
    out.update({f"{k}:PATH": d for k, d in files.FILE_KINDS.items()})
    return out


def _split_name(name: str) -> tuple[str, Optional[str]]:
    if ":" in name:
        kind, path = name.split(":", 1)
        if kind in files.FILE_KINDS:
            if not path:
                raise UserError(f"data={kind}: needs a path, e.g. data={kind}:/path/to/data")
            return kind, path
    return name, None


def holdout_mask(n: int, y: Optional[Tensor], fraction: float) -> Tensor:
    """True for held-out samples: ``fraction`` of each class, fixed seed."""
    mask = torch.zeros(n, dtype=torch.bool)
    if fraction <= 0:
        return mask
    g = torch.Generator().manual_seed(SPLIT_SEED)
    groups = [torch.arange(n)] if y is None else [torch.nonzero(y == c).flatten() for c in torch.unique(y)]
    for idx in groups:
        k = int(round(fraction * len(idx)))
        mask[idx[torch.randperm(len(idx), generator=g)[:k]]] = True
    return mask


def load_dataset(cfg) -> Dataset:
    """The dataset a :class:`~ganforge.config.DataConfig` names, split and shaped."""
    kind, path = _split_name(cfg.name)
    if path is None and kind in TOYS:
        if cfg.resolution is not None or cfg.channels is not None:
            raise UserError(f"data.resolution and data.channels apply to images; {kind} is a toy density of points")
        density = TOYS[kind][0]()
        x = density.sample(TOY_POINTS, torch.Generator().manual_seed(SPLIT_SEED))
        return Dataset(kind, x, density=density)
    if path is None:
        if kind not in EMBEDDED:
            raise UserError(_unknown(cfg.name))
        x, y, classes = EMBEDDED[kind][0]()
    elif kind == "folder":
        x, y, classes = files.load_folder(path, cfg.channels, cfg.resolution, cfg.labels)
    elif kind == "npz":
        x, y, classes = files.load_npz(path)
    elif kind == "idx":
        x, y, classes = files.load_idx(path)
    else:
        x, y, classes = files.load_cifar10(path)
    if cfg.labels and kind != "folder":
        raise UserError("data.labels=true reads labels from sub-folder names: it applies to folder:PATH only")
    if x.dim() == 4:
        x = resize(from_unit(to_channels(x, cfg.channels)), cfg.resolution).contiguous()
    elif cfg.resolution is not None or cfg.channels is not None:
        raise UserError(f"data.resolution and data.channels apply to images; {cfg.name} holds vectors of size {x.shape[1]}")
    if y is not None and classes is None:
        classes = [str(i) for i in range(int(y.max()) + 1)]
    if cfg.holdout > 0 or cfg.split != "train":
        mask = holdout_mask(len(x), y, cfg.holdout)
        keep = {"train": ~mask, "holdout": mask, "all": torch.ones_like(mask)}[cfg.split]
        if not keep.any():
            raise UserError(f"data.split={cfg.split} with data.holdout={cfg.holdout} leaves no samples")
        x, y = x[keep], (y[keep] if y is not None else None)
    return Dataset(cfg.name, x, y, classes)


def _unknown(name: str) -> str:
    import difflib
    known = list(EMBEDDED) + list(TOYS)
    close = difflib.get_close_matches(name, known + [k + ":" for k in files.FILE_KINDS], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown dataset {name!r}{hint}; choose one of {', '.join(known)}, "
            f"or folder:PATH, npz:PATH, idx:PATH, cifar10:PATH")
