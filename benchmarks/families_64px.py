"""Every family on a user's image folder at 64 px: training speed and memory on this machine.

    python benchmarks/families_64px.py [--steps 40] [--batch 32] [--families dcgan,sngan,biggan,stylegan]
    python benchmarks/families_64px.py --families folder-r3gan        # a preset: its own options and batch

Builds a labelled folder of 64 px RGB photos (random 96-160 px crops of four
photos shipped with scikit-image, two sub-folders: cat and coffee vs rocket and
astronaut), then trains each family with its default options on it
(``data=folder:... data.resolution=64``; BigGAN class-conditional on the two
sub-folders) in a child ``ganforge train`` process; an entry that names a preset
(``folder-r3gan``) trains that preset on the folder instead, at its own batch
unless ``--batch`` is given. Prints images per second
after the first logged interval (the warm-up left out), the child's wall time
and peak resident memory, and writes benchmarks/results/families_64px.json
(rows of other families kept, a family measured again replaced).
A speed figure only: 40 steps make no image model.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from families import run_child  # noqa: E402
from toy_modes import machine  # noqa: E402
from ganforge.config import presets, raw_from  # noqa: E402
from ganforge.runs import atomic  # noqa: E402


def make_folder(root: Path, per_class: int = 200) -> None:
    from skimage import data
    rng = np.random.default_rng(0)
    classes = {"cats-and-cups": (data.chelsea(), data.coffee()), "rockets-and-people": (data.rocket(), data.astronaut())}
    for name, photos in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = photos[i % 2]
            s = int(rng.integers(96, 161))
            y, x = int(rng.integers(0, img.shape[0] - s + 1)), int(rng.integers(0, img.shape[1] - s + 1))
            Image.fromarray(img[y:y + s, x:x + s]).save(root / name / f"{i}.png")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--families", default="dcgan,sngan,biggan,stylegan")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, help="default 32 for a family, the preset's own for a preset")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        make_folder(folder)
        for family in a.families.split(","):
            cond = ["model.conditional=true", "data.labels=true"] if family == "biggan" else []
            preset = family in presets()
            what = [family] if preset else [f"model={family}"]
            batch = a.batch or (raw_from(family).get("batch_size", 64) if preset else 32)
            cmd = [sys.executable, "-m", "ganforge", "train", *what, f"data=folder:{folder}", "data.resolution=64",
                   *cond, f"steps={a.steps}", f"batch_size={batch}", "log.every=10",
                   "eval.metrics=none", "log.progress=lines", f"name={family}", "--out", tmp]
            wall, rss = run_child(cmd, Path(tmp) / f"{family}.log", family)
            lines = [json.loads(x) for x in (Path(tmp) / family / "metrics.jsonl").read_text().splitlines()]
            timed = [r for r in lines if "img_s" in r][1:]            # the first interval includes warm-up
            row = {"family": family, "conditional": bool(cond), "resolution": 64, "batch": batch,
                   "steps": a.steps, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
                   "img_s": round(sum(r["img_s"] for r in timed) / len(timed), 1),
                   "wall_s": round(wall, 1), "peak_rss_mb": round(rss)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(__file__).parent / "results" / "families_64px.json"
    kept = [r for r in (json.loads(out.read_text())["rows"] if out.is_file() else [])
            if r["family"] not in {x["family"] for x in rows}]
    atomic.write_text(out, json.dumps({"machine": machine(), "rows": kept + rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
