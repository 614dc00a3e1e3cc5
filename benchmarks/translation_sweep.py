"""pix2pix recipes side by side: the paper's, the presets', and L1 alone, on the digit tasks, two seeds each.

    python benchmarks/translation_sweep.py [--device cuda] [--jobs 30] [--presets sr-digits,...] [--out DIR]

Every row is one ``ganforge train PRESET OVERRIDES seed=S device=D threads=1``
run, all started at once (up to --jobs at a time); the table gives the last
evaluation of each (held-out PSNR, label preservation and digit-feature FID
of G's EMA against real digits). The recipes, as overrides of the presets:

- paper: the non-saturating loss, the 70 px PatchGAN (d_layers 3), no instance noise;
- preset: the preset as it stands (least-squares loss, 34 px PatchGAN, instance noise 0.1 on D's image side);
- L1 alone: model.gan_weight=0 for the same time as the preset on the 2-core CPU: no D is trained,
  so it takes more steps per second; the steps are the preset's times the ratio of the two step rates
  that benchmarks/translation.py measured (benchmarks/results/translation.json), 1.36 to 1.52.

``--variant "NAME: KEY=VALUE ..."`` (repeatable) adds recipes of one's own
(with model.gan_weight=0 among them, time-matched as L1 alone is);
``--recipes`` picks among them all.

This is the sweep that chose the presets' recipe; it needs many runs, so it
is meant for a GPU machine (30 runs at once took about 5 minutes on one
H100); benchmarks/translation.py is the 2-core CPU measurement with the
time-matched baseline. Rows go to benchmarks/results/translation_sweep.json, or the file --results names (not with --steps).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {
    "paper": ["loss=nonsaturating", "model.d_layers=3", "model.d_noise=0"],
    "preset": [],
    "L1 alone": ["model.gan_weight=0"],
}
SCORES = ("psnr", "ssim", "acc", "fid")
STEPS = {"sr-digits": 5000, "edges2digits": 5000, "inpaint-digits": 5000, "colorize": 3000}


def l1_steps_per_gan_step(preset: str) -> float:
    """How many L1-alone steps the 2-core CPU ran in the time of one GAN step (benchmarks/translation.py)."""
    rows = json.loads((ROOT / "benchmarks" / "results" / "translation.json").read_text())["rows"]
    for r in rows:
        if r["preset"] == preset and "l1" in r:
            return (r["l1"]["steps"] / r["l1"]["train_s"]) / (r["gan"]["steps"] / r["gan"]["train_s"])
    return 1.0


def overrides(preset: str, recipe: str, steps) -> list:
    if "model.gan_weight=0" in RECIPES[recipe]:
        return [*RECIPES[recipe], f"steps={round((steps or STEPS[preset]) * l1_steps_per_gan_step(preset))}"]
    return [*RECIPES[recipe], *([f"steps={steps}"] if steps else [])]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default="sr-digits,edges2digits,inpaint-digits")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=30)
    p.add_argument("--steps", type=int, default=None, help="override the presets' steps (a quick check)")
    p.add_argument("--out", default=None, help="keep the runs in this folder (default: a temporary one)")
    p.add_argument("--variant", action="append", default=[], help='"NAME: KEY=VALUE ..." a recipe of one\'s own')
    p.add_argument("--recipes", default=None, help="comma-separated recipe names (default: all)")
    p.add_argument("--results", default="translation_sweep.json", help="file name under benchmarks/results")
    a = p.parse_args()
    for v in a.variant:
        name, _, rest = v.partition(":")
        RECIPES[name.strip()] = rest.split()
    recipes = a.recipes.split(",") if a.recipes else list(RECIPES)
    runs = [(preset, recipe, int(seed)) for preset in a.presets.split(",") for recipe in recipes
            for seed in a.seeds.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(a.out or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        start, live, rows = time.time(), [], []
        for i, (preset, recipe, seed) in enumerate(runs):
            while len(live) >= a.jobs:
                live = [x for x in live if x.poll() is None]
                time.sleep(1)
            name = f"{i:02d}-{preset}-{recipe.replace(' ', '-')}-s{seed}"
            cmd = [sys.executable, "-m", "ganforge", "train", preset, *overrides(preset, recipe, a.steps), f"seed={seed}",
                   f"device={a.device}", "threads=1", f"name={name}", "log.progress=off", "--out", str(tmp)]
            live.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.err", "w")))
        for x in live:
            x.wait()
        for i, (preset, recipe, seed) in enumerate(runs):
            name = f"{i:02d}-{preset}-{recipe.replace(' ', '-')}-s{seed}"
            path = tmp / name / "metrics.jsonl"
            if not path.exists():
                print(f"{name} failed: {(tmp / f'{name}.err').read_text()[-500:]}", file=sys.stderr)
                continue
            logged = [json.loads(x) for x in path.read_text().splitlines()]
            last = ([r for r in logged if "psnr" in r] or logged)[-1]          # the last evaluation
            rows.append({"preset": preset, "recipe": recipe, "overrides": overrides(preset, recipe, a.steps),
                         "seed": seed, "steps": last["step"],
                         "train_s": round(last["time"], 1), **{k: round(last[k], 4) for k in SCORES if k in last}})
    print(f"{len(rows)} runs in {time.time() - start:.0f} s on {a.device}")
    print("| preset | recipe | seed | steps | PSNR | labels | FID |\n|---|---|---|---|---|---|---|")
    for r in rows:
        acc, psnr, fid = (f"{100 * r['acc']:.1f}%" if "acc" in r else "-", f"{r['psnr']:.2f} dB" if "psnr" in r else "-",
                          f"{r['fid']:.1f}" if "fid" in r else "-")
        print(f"| {r['preset']} | {r['recipe']} | {r['seed']} | {r['steps']} | {psnr} | {acc} | {fid} |")
    import torch
    gpu = torch.cuda.get_device_name() if a.device != "cpu" and torch.cuda.is_available() else None
    out = {"command": " ".join(sys.argv), "machine": machine(), "device": a.device, "gpu": gpu, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    if a.steps is None:                                  # a quick check leaves the measured rows alone
        atomic.write_text((ROOT / "benchmarks" / "results" / a.results), json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
