"""``ganforge export RUN --out G.safetensors``: a run's generator as one safetensors file (ganforge.export).

The file holds the generator's weights (the moving average by default when the
run keeps one) and its config, and loads without unpickling anything:
``ganforge.load_generator(path)``.
"""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    x = sub.add_parser("export", help="write a run's generator (weights and config) to one .safetensors file "
                       "that loads without pickle: ganforge.load_generator(path)")
    x.add_argument("run")
    x.add_argument("--out", required=True, help="the file to write; must end in .safetensors")
    x.add_argument("--raw", action="store_true", help="the trained generator, not its moving average (EMA)")
    x.add_argument("--checkpoint", default="latest", metavar="latest|best|PATH",
                   help="the newest checkpoint that loads (default), checkpoints/best.pt kept by eval.best, "
                   "or a checkpoint file")
    x.add_argument("--force", action="store_true", help="replace --out if it exists")
    return x


def run(a) -> int:
    from ..export import export_generator
    meta = export_generator(Path(a.run), Path(a.out), which=a.checkpoint, raw=a.raw, force=a.force)
    weights = "moving-average (EMA)" if meta["weights"] == "ema" else "trained"
    print(f"wrote the {weights} {meta['config']['model']['name']} generator of {a.run} at step {meta['step']} "
          f"({meta['checkpoint']}) to {a.out}")
    return 0
