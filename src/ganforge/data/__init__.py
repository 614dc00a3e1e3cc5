"""The dataset registry: a name (or ``kind:PATH``) becomes a :class:`Dataset`.

Images are held as stored (uint8; data/store.py) and read as float tensors
(N, C, H, W) in [-1, 1], a batch at a time (``Dataset.samples``) or whole
(``Dataset.x``, for small data); toy data are (N, d) floats with the exact
density attached; labels are int64. A held-out split
(``data.holdout``) is drawn once with a fixed seed, stratified by label, so
the same images are held out in every run.

An image-to-image dataset (data.tasks, ``pairs:PATH``, ``unpaired:PATH``)
holds domain A in ``a`` beside domain B in ``x``: paired, ``x[i]`` is the
target of ``a[i]``; unpaired, the domains are split apart (each by its own
labels) and, where the mapping is known, ``a_true``/``b_true`` hold each
image's true translation.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import Tensor

from .. import memory
from ..errors import UserError
from . import files, folder
from .embedded import EMBEDDED
from .store import Images, images_of
from .tasks import TASKS, Task
from .toy import TOYS, GaussianMixture
from .transform import from_unit, range_line, resize, to_channels

SPLIT_SEED = 20141210          # fixed: the held-out part never depends on the run's seed
TOY_POINTS = 10_000            # the finite sample kept for toys (training draws fresh points)


@dataclass
class Dataset:
    name: str
    samples: Union[Tensor, Images]        # images as stored (Images), or a tensor (points; image-to-image data)
    y: Optional[Tensor] = None
    classes: Optional[list] = None
    density: Optional[GaussianMixture] = None
    a: Optional[Tensor] = None            # image-to-image: domain A (the inputs); x is domain B
    paired: bool = True
    y_a: Optional[Tensor] = None          # unpaired: A's labels (paired: y serves both)
    a_true: Optional[Tensor] = None       # unpaired, known mapping: each A image's true B image
    b_true: Optional[Tensor] = None       # ... and each B image's true A image
    values: Optional[dict] = None         # npz/IDX: how the pixel values were read (transform.array_to_unit)
    _x: Optional[Tensor] = field(default=None, init=False, repr=False, compare=False)

    @property
    def x(self) -> Tensor:
        """Every sample as one float tensor, made on first use: for small data (the labs, ``data show``);
        training and evaluation read ``samples`` a batch at a time."""
        if isinstance(self.samples, Tensor):
            return self.samples
        if self._x is None:
            memory.check(memory.tensor_bytes(len(self.samples), self.samples.shape[1:]),
                         f"{self.name} as floats ({len(self.samples)} images of {'x'.join(map(str, self.shape))})",
                         "lower data.resolution")
            self._x = self.samples.all()
        return self._x

    @property
    def kind(self) -> str:
        return "image" if self.samples.dim() == 4 else "vector"

    @property
    def translation(self) -> bool:
        return self.a is not None

    @property
    def shape_a(self) -> tuple:
        return tuple(self.a.shape[1:]) if self.a is not None else ()

    @property
    def shape(self) -> tuple:
        return tuple(self.samples.shape[1:])

    def __len__(self) -> int:
        return self.samples.shape[0]

    def fingerprint(self) -> dict:
        """Rows, shape and a hash of up to 1,024 evenly spaced rows of each array: what a resume compares
        with its checkpoint's, to tell the user that the data changed in between."""
        import hashlib
        h = hashlib.blake2b(digest_size=8)
        for t in (self.samples, self.y, self.a, self.y_a):
            if t is None:
                h.update(b"-")
                continue
            rows = torch.linspace(0, len(t) - 1, min(len(t), 1024)).round().long()
            h.update(str(tuple(t.shape)).encode())
            for part in rows.split(64):        # stored images are converted (and decoded) 64 at a time
                h.update(t[part].detach().cpu().contiguous().numpy().tobytes())
        return {"n": len(self), "shape": list(self.shape), "hash": h.hexdigest()}


def names() -> dict[str, str]:
    """Every registered name and file kind with a one-line description."""
    out = {k: d for k, (_, d) in EMBEDDED.items()}
    out.update({k: d for k, (_, d) in TOYS.items()})
    out.update({k: d for k, (_, d) in TASKS.items()})
    out.update({f"{k}:PATH": d for k, d in files.FILE_KINDS.items()})
    out.update({f"{k}:PATH": d for k, d in PAIR_KINDS.items()})
    return out


PAIR_KINDS = {
    "pairs": "paired images: A|B side-by-side files, or A/ and B/ folders of matching names (pix2pix)",
    "unpaired": "two image folders PATH/trainA and PATH/trainB (testA/testB, if there, are held out; CycleGAN)",
}


def _split_name(name: str) -> tuple[str, Optional[str]]:
    if ":" in name:
        kind, path = name.split(":", 1)
        if kind in files.FILE_KINDS or kind in PAIR_KINDS:
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
    if (path is None and kind in TASKS) or kind in PAIR_KINDS:
        return _load_translation(cfg, kind, path)
    if cfg.channels_a is not None:
        raise UserError("data.channels_a applies to image-to-image data (a task, pairs:PATH or unpaired:PATH)")
    if cfg.cache == "none" and kind != "zip":
        raise UserError(f"data.cache=none streams an image archive (zip:PATH); {cfg.name} is read whole. Pack it "
                        "with ganforge data pack, or stream a folder as zip:FOLDER")
    if cfg.labels and kind != "folder":
        raise UserError("data.labels=true reads labels from sub-folder names: it applies to folder:PATH only")
    values = None
    if cfg.range is not None and kind not in ("npz", "idx"):
        raise UserError(f"data.range (--range) says how the numbers of an npz or IDX array are scaled; {cfg.name} "
                        "holds images whose range their format fixes")
    if path is None:
        if kind not in EMBEDDED:
            raise UserError(_unknown(cfg.name))
        x, y, classes = EMBEDDED[kind][0]()
    elif kind == "folder":
        x, y, classes = folder.load_folder(path, cfg.channels, cfg.resolution, cfg.labels)
    elif kind == "zip":
        x, y, classes = _load_archive(path, cfg)
    elif kind in ("npz", "idx"):
        x, y, classes, values = (files.load_npz if kind == "npz" else files.load_idx)(path, cfg.range)
        if values is not None and (values["clipped"] or values["from"] == "floats' default"):
            print(f"ganforge: note: {range_line(path, values)}", file=sys.stderr)
    else:
        x, y, classes = files.load_cifar10(path)
    if isinstance(x, Images):
        pass                               # an archive: decoded to the configured form
    elif x.dim() == 4:
        whites = (values["range"][1],) if values and values["range"][0] == 0 and not values["clipped"] else ()
        x = images_of(x, cfg.channels, cfg.resolution, (255.0, 16.0, *whites))
    elif cfg.resolution is not None or cfg.channels is not None:
        raise UserError(f"data.resolution and data.channels apply to images; {cfg.name} holds vectors of size {x.shape[1]}")
    if isinstance(x, Images) and cfg.resolution is not None:     # converted 64 at a time (the fingerprint)
        memory.check(memory.tensor_bytes(64, x.shape[1:]), f"data.resolution={cfg.resolution} "
                     f"({'x'.join(map(str, x.shape[1:]))} images as floats, 64 at a time)", "lower data.resolution")
    if y is not None and classes is None:
        classes = [str(i) for i in range(int(y.max()) + 1)]
    if cfg.holdout > 0 or cfg.split != "train":
        keep = _keep(cfg, len(x), y)
        x, y = (x.subset(keep) if isinstance(x, Images) else x[keep]), (y[keep] if y is not None else None)
    return Dataset(cfg.name, x, y, classes, values=values)


def _load_archive(path: str, cfg):
    """An archive's images streamed (an :class:`Images` over the archive) or decoded into memory, per
    data.cache; the line of what was skipped goes to stderr."""
    from .archive import decode_archive, open_archive
    from .store import TensorSource
    src, y, classes, skipped = open_archive(path, cfg.channels, cfg.resolution)
    lines = [skipped] if skipped else []
    mode = cfg.cache
    if mode == "auto":
        room = cfg.cache_gb * 1e9 if cfg.cache_gb is not None else 0.5 * (memory.available() or 0)
        mode = "ram" if len(src) * src.channels * src.side ** 2 <= room else "none"
    if mode == "ram":
        stored, kept, bad = decode_archive(src)
        if bad:
            lines.append(f"{len(bad)} unreadable: {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}")
            y = y[torch.tensor(kept)] if y is not None else None
        images = Images(TensorSource(stored))
    else:
        images = Images(src)
    if lines:
        print(f"ganforge: {'; '.join(lines)}; using {len(images)} images", file=sys.stderr)
    return images, y, classes


def _shape(x: Tensor, channels, resolution) -> Tensor:
    side = resolution or x.shape[-1]
    memory.check(memory.tensor_bytes(2 * len(x), (channels or x.shape[1], side, side)),
                 f"data.resolution={side} ({len(x)} images of {channels or x.shape[1]}x{side}x{side}, as floats)",
                 "lower data.resolution")
    return resize(from_unit(to_channels(x, channels)), resolution).contiguous()


def _unpaired_folders(root: str, cfg) -> Task:
    from pathlib import Path
    base = Path(root).expanduser()
    folder.need_dir(base, "unpaired image folder")
    if not ((base / "trainA").is_dir() and (base / "trainB").is_dir()):
        raise UserError(f"unpaired:{root} needs the folders trainA and trainB (CycleGAN's layout)")
    side = cfg.resolution or 256
    parts = {k: folder.load_folder(str(base / k), cfg.channels_a if k.endswith("A") else cfg.channels, side,
                                   False)[0].float() / 255.0
             for k in ("trainA", "trainB", "testA", "testB") if (base / k).is_dir()}
    if ("testA" in parts) != ("testB" in parts):
        raise UserError(f"unpaired:{root} has only one of testA and testB; add the other or remove it")
    if "testA" in parts:               # the folder's own held-out split (data.holdout does not apply): label 1
        ya = torch.cat([torch.zeros(len(parts["trainA"])), torch.ones(len(parts["testA"]))]).long()
        yb = torch.cat([torch.zeros(len(parts["trainB"])), torch.ones(len(parts["testB"]))]).long()
        return Task(torch.cat([parts["trainA"], parts["testA"]]), torch.cat([parts["trainB"], parts["testB"]]),
                    ya, yb, ["train", "test"], paired=False)
    return Task(parts["trainA"], parts["trainB"], None, None, None, paired=False)


def _load_translation(cfg, kind: str, path: Optional[str]) -> Dataset:
    if cfg.labels:
        raise UserError("data.labels=true reads labels from sub-folder names: it applies to folder:PATH only")
    if kind == "pairs":
        from .paired import load_pairs
        a, b, _ = load_pairs(path, cfg.resolution, cfg.channels_a, cfg.channels)
        t = Task(a, b, None, None, None, paired=True)
    elif kind == "unpaired":
        t = _unpaired_folders(path, cfg)
    else:
        t = TASKS[kind][0]()
    own_split = kind == "unpaired" and t.classes == ["train", "test"]
    a, b = _shape(t.a, cfg.channels_a, cfg.resolution), _shape(t.b, cfg.channels, cfg.resolution)
    a_true = None if t.a_true is None else _shape(t.a_true, cfg.channels, cfg.resolution)
    b_true = None if t.b_true is None else _shape(t.b_true, cfg.channels_a, cfg.resolution)
    if t.paired:
        keep = _keep(cfg, len(b), t.y_b)
        ka = kb = keep
    else:
        ka = (t.y_a == 1) if own_split else _keep(cfg, len(a), t.y_a)
        kb = (t.y_b == 1) if own_split else _keep(cfg, len(b), t.y_b)
        if own_split and cfg.split != "holdout":
            ka, kb = (~ka, ~kb) if cfg.split == "train" else (torch.ones_like(ka), torch.ones_like(kb))
    pick = lambda v, k: None if v is None else v[k]  # noqa: E731
    classes = None if own_split else t.classes
    return Dataset(cfg.name, b[kb], pick(None if own_split else t.y_b, kb), classes, a=a[ka], paired=t.paired,
                   y_a=None if t.paired or own_split else pick(t.y_a, ka), a_true=pick(a_true, ka),
                   b_true=pick(b_true, kb))


def _keep(cfg, n: int, y: Optional[Tensor]) -> Tensor:
    """The rows of the configured split (data.holdout, data.split)."""
    if cfg.holdout <= 0 and cfg.split == "train":
        return torch.ones(n, dtype=torch.bool)
    mask = holdout_mask(n, y, cfg.holdout)
    keep = {"train": ~mask, "holdout": mask, "all": torch.ones_like(mask)}[cfg.split]
    if not keep.any():
        raise UserError(f"data.split={cfg.split} with data.holdout={cfg.holdout} leaves no samples")
    return keep


def _unknown(name: str) -> str:
    import difflib
    known = list(EMBEDDED) + list(TOYS) + list(TASKS)
    close = difflib.get_close_matches(name, known + [k + ":" for k in (*files.FILE_KINDS, *PAIR_KINDS)], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown dataset {name!r}{hint}; choose one of {', '.join(known)}, "
            f"or folder:PATH, zip:PATH, npz:PATH, idx:PATH, cifar10:PATH, pairs:PATH, unpaired:PATH")
