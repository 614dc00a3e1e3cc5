"""``ganforge sample RUN --out FILE``: draw samples from a run's generator as a grid (.png) or an array (.npz).

Conditional runs also draw one class (``--class``), a row per class
(``--per-class``) or rows that move from one class to another
(``--interpolate A,B``); families with the truncation trick take ``--truncation``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..runs import atomic
from .. import memory
from .common import SEED, add_insist, apply_insist, count


def add_parser(sub):
    s = sub.add_parser("sample", help="draw samples from a run's generator")
    s.add_argument("run")
    s.add_argument("-n", type=count(), default=64)
    s.add_argument("--out", required=True, help="a .png grid or an .npz file (array x; images with range [-1, 1] beside it)")
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--no-ema", action="store_true", help="use the trained generator, not its moving average")
    s.add_argument("--truncation", type=float, default=None, help="truncation: biggan draws z within [-T, T]; stylegan pulls w towards its mean by psi")
    s.add_argument("--nrow", type=count(), default=None, help="images per row of the grid")
    s.add_argument("--class", dest="label", default=None, metavar="K",
                   help="conditional runs: samples of class K (an index or a class name)")
    s.add_argument("--per-class", action="store_true", help="conditional runs: a grid with one row per class "
                   "(--nrow images each, default 8)")
    s.add_argument("--interpolate", metavar="A,B", default=None, help="conditional runs: rows of fixed z whose "
                   "class moves from A to B in --nrow steps (default 8); -n // nrow rows")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_insist(s)
    return s


def run(a) -> int:
    from ..api import load_run
    from ..viz.grid import grid, save_png
    from ..viz.scatter import toy_png
    out = atomic.check_out(Path(a.out), a.force, {".png": "a grid", ".npz": "array x"})
    if sum(v is not None and v is not False for v in (a.label, a.per_class, a.interpolate)) > 1:
        raise UserError("choose one of --class, --per-class and --interpolate")
    apply_insist(a)
    run = load_run(a.run)
    shape = run.info.get("shape") or []
    memory.check(memory.tensor_bytes(4 * a.n, shape), f"-n {a.n} samples of "
                 f"{'x'.join(map(str, shape))}", "ask for fewer (-n)")
    x, n, nrow = _conditional_samples(run, a) if (a.label is not None or a.per_class or a.interpolate) else \
        (run.sample(a.n, seed=a.seed, ema=not a.no_ema, truncation=a.truncation), a.n, a.nrow)
    a.n, a.nrow = n, nrow
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        ranged = {"range": np.array([-1.0, 1.0])} if x.dim() == 4 else {}   # images: ganforge's [-1, 1], said
        atomic.save_npz(out, x=x.numpy(), **ranged)
    elif x.dim() == 4:
        save_png(grid(x, nrow=a.nrow), out)
    else:
        from ..data import load_dataset
        real = load_dataset(run.config.data).samples[: a.n]
        atomic.write_bytes(out, toy_png(x, real, f"{run.path.name} step {run.step}"))
    print(f"wrote {a.n} samples to {out}")
    return 0


def _conditional_samples(run, a):
    """(samples, n, images per row) for --class K, --per-class (a row per class) or --interpolate A,B
    (rows of fixed z whose label moves from class A to class B in --nrow steps)."""
    import torch

    from ..rng import Stream
    if not run.n_classes:
        raise UserError(f"{run.path} is not class-conditional: --class, --per-class and --interpolate need a run "
                        "trained with model.conditional=true")
    kw = {"seed": a.seed, "ema": not a.no_ema, "truncation": a.truncation}
    if a.label is not None:
        return run.sample(a.n, label=a.label, **kw), a.n, a.nrow
    cols = a.nrow or 8
    if a.per_class:
        n = run.n_classes * cols
        return run.sample(n, label=torch.arange(run.n_classes).repeat_interleave(cols), **kw), n, cols
    parts = a.interpolate.split(",")
    if len(parts) != 2:
        raise UserError(f"--interpolate takes two classes A,B, got {a.interpolate!r}")
    i, j = (run.class_index(p.strip()) for p in parts)
    rows = max(1, a.n // cols)
    z = torch.randn(rows, run.config.model.z_dim, generator=Stream(a.seed, "sample").next()).repeat_interleave(cols, 0)
    t = torch.linspace(0, 1, cols).repeat(rows)
    w = torch.zeros(rows * cols, run.n_classes)
    w[:, i] += 1 - t
    w[:, j] += t
    return run.sample(rows * cols, label=w, z=z, **kw), rows * cols, cols
