"""``ganforge data list`` and ``ganforge data show NAME``: the datasets, and one of them as a grid."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..runs import atomic
from .common import add_insist, apply_insist, count


def add_parser(sub):
    d = sub.add_parser("data", help="list datasets or show one as a grid")
    d.add_argument("action", choices=("list", "show"))
    d.add_argument("name", nargs="?")
    d.add_argument("options", nargs="*", metavar="key=value", help="data options, e.g. resolution=32")
    d.add_argument("--out", default="data.png")
    d.add_argument("-n", type=count(1, 10000), default=100)
    d.add_argument("--by-class", action=argparse.BooleanOptionalAction, default=True,
                   help="equal numbers of each class (default on)")
    d.add_argument("--force", action="store_true")
    add_insist(d)
    return d


def run(a) -> int:
    apply_insist(a)
    from ..data import load_dataset, names
    if a.action == "list":
        for name, desc in names().items():
            print(f"{name:16s} {desc}")
        return 0
    if not a.name:
        raise UserError("ganforge data show needs a dataset name, e.g. ganforge data show mnist --out grid.png")
    from ..config import load_config
    from ..viz.grid import as_rgb, grid, save_png
    from ..viz.scatter import toy_png
    cfg = load_config(None, tuple([f"data={a.name}"] + [f"data.{o}" for o in a.options]))
    out = atomic.check_out(Path(a.out), a.force, (".png",))
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
            save_png(grid(ds.x[idx]), out)
    else:
        atomic.write_bytes(out, toy_png(ds.x[:0], ds.x[: a.n], a.name))
    shape = "x".join(str(s) for s in ds.shape)
    if ds.translation:
        shape = f"{'x'.join(str(s) for s in ds.shape_a)} (A) and {shape} (B), {'paired' if ds.paired else 'unpaired'}"
    print(f"{ds.name}: {len(ds)} samples of shape {shape}" + (f", {len(ds.classes)} classes" if ds.classes else "")
          + f"; wrote {out}")
    return 0
