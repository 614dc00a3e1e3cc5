"""The family presets on the embedded digits: training time on this machine and the numbers they reach.

    python benchmarks/families.py [--presets mnist-cgan,...] [--steps N]

Each preset is trained by ``ganforge train PRESET`` in a child process
(wall time and peak resident memory are the child's). Its EMA generator is
then measured with the ``mnist`` features (the digit classifier shipped in
the package, 99.4% on held-out digits): FID of 5,000 samples against the
5,000 real digits, and for class-conditional presets the digit classifier's
accuracy on 1,000 samples per class drawn for that class (``class_acc``)
and the mean per-class FID of those samples against the real digits of the
class (``fid_class``). Writes benchmarks/results/families.json and one
per-class grid per conditional preset to docs/images/.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def measure(run_dir: Path) -> dict:
    from ganforge.api import load_run
    from ganforge.metrics.evaluate import Evaluator, Settings, class_scores
    from ganforge.metrics.sources import from_data_config
    from ganforge.viz.grid import grid, save_png
    run = load_run(run_dir)
    real = from_data_config(run.config.data)
    ev = Evaluator(real, Settings(metrics=("fid",), features="mnist"))
    out = {"fid": ev(run.sampler(5000, seed=1), 5000)["metrics"]["fid"]["value"]}
    if run.n_classes:
        y = torch.arange(run.n_classes).repeat_interleave(1000)
        x = run.sample(len(y), seed=2, label=y)
        out.update({k: v for k, v in class_scores(ev, x, y).items()})
        per = run.sample(run.n_classes * 10, seed=3, label=torch.arange(run.n_classes).repeat_interleave(10))
        save_png(grid(per, nrow=10), ROOT / "docs" / "images" / f"{run_dir.name}-per-class.png")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default="mnist-cgan")
    p.add_argument("--steps", type=int, default=None, help="override the presets' steps (a quick check)")
    p.add_argument("--out", default=None, help="keep the runs in this folder (default: a temporary one)")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.out or scratch
        for preset in a.presets.split(","):
            cmd = [sys.executable, "-m", "ganforge", "train", preset, f"name={preset}", "log.progress=lines",
                   "--out", tmp] + ([f"steps={a.steps}"] if a.steps else [])
            if (Path(tmp) / preset).exists():
                sys.exit(f"{Path(tmp) / preset} exists; remove it or give another --out")
            t = time.time()
            r = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.time() - t
            if r.returncode:
                sys.exit(f"{preset} failed:\n{r.stderr[-3000:]}")
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            row = {"preset": preset, "steps": a.steps or "preset", "wall_s": round(wall, 1),
                   "peak_rss_mb_max_so_far": round(rss), **measure(Path(tmp) / preset)}
            rows.append(row)
            print(json.dumps(row))
    out = {"machine": machine(), "rows": rows}
    path = Path(__file__).parent / "results" / "families.json"
    if not a.steps:
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
