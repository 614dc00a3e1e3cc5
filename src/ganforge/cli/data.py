"""``ganforge data list``, ``ganforge data show NAME`` and ``ganforge data pack SOURCE``: the datasets, one of them
as a grid, and a user's dataset packed into a zip archive (data/pack.py does the work)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..runs import atomic
from .common import add_insist, apply_insist, count


def add_parser(sub):
    d = sub.add_parser("data", help="list datasets, show one as a grid, or pack one into a zip archive")
    d.add_argument("action", choices=("list", "show", "pack"))
    d.add_argument("name", nargs="?", help="show: a dataset name; pack: the SOURCE (a folder of images, an .npz, "
                   "IDX files, CIFAR-10 batches, or kind:PATH)")
    d.add_argument("options", nargs="*", metavar="key=value", help="show: data options, e.g. resolution=32")
    d.add_argument("--out", default=None, help="show: the grid (default data.png); pack: the archive (default data.zip)")
    d.add_argument("-n", type=count(1, 10000), default=100)
    d.add_argument("--by-class", action=argparse.BooleanOptionalAction, default=True,
                   help="equal numbers of each class (default on)")
    d.add_argument("--force", action="store_true")
    d.add_argument("--resolution", type=count(1, 65536), default=None,
                   help="pack: image side after centre crop and resize (default: arrays their own, folders the "
                   "smaller side of the first image)")
    d.add_argument("--channels", type=int, choices=(1, 3), default=None, help="pack: 1 or 3 (default: the source's)")
    d.add_argument("--labels", action=argparse.BooleanOptionalAction, default=None,
                   help="pack: labels from first-level sub-folders (default: when every image lies in one of at least "
                   "2); --no-labels drops an array's labels")
    d.add_argument("--range", metavar="LO,HI", default=None, help="pack: an npz or IDX array's value range, e.g. -1,1")
    d.add_argument("--progress", choices=("auto", "bar", "lines", "off"), default="auto")
    add_insist(d)
    return d


def run(a) -> int:
    apply_insist(a)
    from ..data import load_dataset, names
    if a.action == "list":
        for name, desc in names().items():
            print(f"{name:16s} {desc}")
        return 0
    if a.action == "pack":
        return _pack(a)
    used = [f for f in ("resolution", "channels", "labels", "range") if getattr(a, f) is not None]
    if used:
        raise UserError(f"--{used[0]} applies to ganforge data pack; show takes data options, e.g. resolution=32")
    if not a.name:
        raise UserError("ganforge data show needs a dataset name, e.g. ganforge data show mnist --out grid.png")
    from ..config import load_config
    from ..viz.grid import as_rgb, grid, save_png
    from ..viz.scatter import toy_png
    cfg = load_config(None, tuple([f"data={a.name}"] + [f"data.{o}" for o in a.options]))
    out = atomic.check_out(Path(a.out or "data.png"), a.force, (".png",))
    ds = load_dataset(cfg.data)
    out.parent.mkdir(parents=True, exist_ok=True)
    if ds.kind == "image":
        import torch
        if ds.y is not None and a.by_class:
            idx = torch.cat([torch.nonzero(ds.y == c).flatten()[: a.n // len(ds.classes) or 1]
                             for c in range(len(ds.classes))])
        else:
            idx = torch.arange(min(a.n, len(ds)))
        if ds.translation:             # image-to-image: rows of A beside B (paired: each input beside its target)
            ia = idx if ds.paired else torch.arange(min(len(idx), len(ds.a)))
            idx = idx[:len(ia)]
            c = max(ds.a.shape[1], ds.x.shape[1])
            save_png(grid(torch.stack([as_rgb(ds.a[ia], c), as_rgb(ds.x[idx], c)], 1).flatten(0, 1), nrow=10), out)
        else:
            save_png(grid(ds.samples[idx]), out)          # only these images are read
    else:
        atomic.write_bytes(out, toy_png(ds.x[:0], ds.x[: a.n], a.name))
    shape = "x".join(str(s) for s in ds.shape)
    if ds.translation:
        shape = f"{'x'.join(str(s) for s in ds.shape_a)} (A) and {shape} (B), {'paired' if ds.paired else 'unpaired'}"
    print(f"{ds.name}: {len(ds)} samples of shape {shape}" + (f", {len(ds.classes)} classes" if ds.classes else "")
          + f"; wrote {out}")
    return 0


def _pack(a) -> int:
    if not a.name:
        raise UserError("ganforge data pack needs a SOURCE, e.g. ganforge data pack photos/ --out photos.zip")
    if a.options:
        raise UserError(f"ganforge data pack takes one SOURCE and flags (--resolution, --channels, --labels), "
                        f"not {a.options[0]!r}")
    from ..data.pack import pack
    from ..metrics.extract import ProgressBar
    bar = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(ProgressBar(total, "packing", a.progress))
        bar[0].update(done)

    r = pack(a.name, a.out or "data.zip", a.resolution, a.channels, a.labels, a.range, a.force, progress)
    if r.skipped_line:
        print(f"ganforge: {r.skipped_line}", file=sys.stderr)
    print(r.line())
    return 0
