"""Stacked MNIST (1,000 modes): modes captured and KL of a DCGAN trained here, as in VEEGAN and PacGAN.

    python benchmarks/stacked_mnist.py [--steps 3000]

Trains `ganforge train data=stacked-mnist` (the main job's DCGAN recipe on
the 10,000 RGB stacks of three embedded digits) in a child process, then
classifies each channel of 26,000 EMA samples with ganforge's MNIST
classifier (the papers' protocol: 26,000 samples) and counts the distinct
modes and KL(q || uniform over 1,000). The 10,000 real stacks are measured
the same way. Writes benchmarks/results/stacked_mnist.json and
docs/images/stacked-mnist-samples.png.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402


def modes(x: torch.Tensor) -> dict:
    from ganforge.metrics.evaluate import Evaluator, RealSet, Settings
    ev = Evaluator(RealSet("stacked-mnist", x[:2], None, digits="stacked"), Settings(metrics=("modes",), features="mnist"))
    m = ev(x, len(x))["metrics"]["modes"]
    return {"modes": m["modes"], "of": m["of"], "kl": round(m["kl"], 4), "n": m["n"]}


def main(argv=None) -> int:
    import ganforge
    from ganforge.config import load_config
    from ganforge.data import load_dataset
    from ganforge.viz.grid import grid, save_png
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        r = subprocess.run([sys.executable, "-m", "ganforge", "train", "--out", tmp, "data=stacked-mnist",
                            f"steps={a.steps}", "log.progress=lines"], stderr=subprocess.PIPE, text=True)
        wall = time.time() - t0
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return r.returncode
        run = ganforge.load_run(next(Path(tmp).iterdir()))
        x = run.sample(26000, seed=0)
    real = load_dataset(load_config(None, ("data=stacked-mnist", "data.split=all")).data)
    res = {"machine": machine(), "command": f"ganforge train data=stacked-mnist steps={a.steps}", "wall_s": round(wall, 1),
           "generated (26,000, EMA)": modes(x), "real stacks (10,000)": modes(real.x),
           "true modes among the real stacks": int(len(torch.unique(real.y)))}
    png = Path(__file__).parents[1] / "docs" / "images" / "stacked-mnist-samples.png"
    save_png(grid(F.interpolate(x[:64], scale_factor=2, mode="nearest"), nrow=8), png)
    print(json.dumps(res, indent=1))
    out = Path(__file__).parent / "results" / "stacked_mnist.json"
    atomic.write_text(out, json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
