"""The family presets on the embedded digits: training time on this machine and the numbers they reach.

    python benchmarks/families.py [--presets mnist-cgan,...] [--steps N]
    python benchmarks/families.py --presets "mnist-cgan@model.d_cond=projection"   # a variant: preset@key=value+...

Each preset is trained by ``ganforge train PRESET`` in a child process
(wall time and peak resident memory are the child's; its output goes to
OUT/NAME.log). Its EMA generator is
then measured with the ``mnist`` features (the digit classifier shipped in
the package, 99.4% on held-out digits): FID of 5,000 samples against the
5,000 real digits, and for class-conditional presets the digit classifier's
accuracy on 1,000 samples per class drawn for that class (``class_acc``)
and the mean per-class FID of those samples against the real digits of the
class (``fid_class``). Adds its rows to benchmarks/results/families.json
(replacing earlier rows of the same preset and overrides) and writes one
per-class grid per conditional preset (a sample grid per unconditional one)
to docs/images/.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

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
    else:
        save_png(grid(run.sample(64, seed=3), nrow=8), ROOT / "docs" / "images" / f"{run_dir.name}-samples.png")
    return out


def run_child(cmd: list, log_path: Path, what: str) -> tuple[float, float]:
    """Run ``cmd`` with its output in ``log_path``; (wall seconds, the child's own peak resident MB).
    Exits with the log's tail if it fails."""
    t = time.time()
    with open(log_path, "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{what} failed:\n{log_path.read_text()[-3000:]}")
    return time.time() - t, usage.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default="mnist-cgan,mnist-sngan,mnist-biggan,mnist-stylegan")
    p.add_argument("--steps", type=int, default=None, help="override the presets' steps (a quick check)")
    p.add_argument("--out", default=None, help="keep the runs in this folder (default: a temporary one)")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.out or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for spec in a.presets.split(","):
            preset, _, extra = spec.partition("@")
            overrides = [o for o in extra.split("+") if o]
            name = preset + "".join("-" + o.split("=", 1)[1] for o in overrides)
            cmd = [sys.executable, "-m", "ganforge", "train", preset, *overrides, f"name={name}", "log.progress=lines",
                   "--out", tmp] + ([f"steps={a.steps}"] if a.steps else [])
            if (Path(tmp) / name).exists():
                sys.exit(f"{Path(tmp) / name} exists; remove it or give another --out")
            wall, rss = run_child(cmd, Path(tmp) / f"{name}.log", preset)
            row = {"preset": preset, "overrides": overrides, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
                   "steps": a.steps or "preset", "wall_s": round(wall, 1),
                   "peak_rss_mb": round(rss), **measure(Path(tmp) / name)}
            rows.append(row)
            print(json.dumps(row))
    path = Path(__file__).parent / "results" / "families.json"
    if not a.steps:                   # rows of other presets measured earlier stay; these replace their own
        old = json.loads(path.read_text())["rows"] if path.is_file() else []
        key = lambda r: (r["preset"], tuple(r.get("overrides", ())))  # noqa: E731
        mine = {key(r) for r in rows}
        kept = [r for r in old if key(r) not in mine]
        atomic.write_text(path, json.dumps({"machine": machine(), "rows": kept + rows}, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
