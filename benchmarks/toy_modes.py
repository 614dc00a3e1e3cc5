"""Mode coverage of the toy presets over several seeds, beside published numbers.

    python benchmarks/toy_modes.py                 # toy-grid and toy-ring, seeds 0-4
    python benchmarks/toy_modes.py --presets toy-grid --seeds 0 1

Trains each preset once per seed (one after another, so timings are not
shared), evaluates 2,500 samples of the EMA generator with the VEEGAN/PacGAN
protocol and prints a table: modes captured, % high-quality samples, reverse
KL, training seconds (time inside training steps) and wall seconds (the whole
run: start-up, samples, checkpoints). Writes the figures to
benchmarks/results/toy_modes.json with the machine they came from, and the
final samples of the first seed to docs/images/<preset>.png.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.data import load_dataset
from ganforge.metrics.modes import mode_metrics
from ganforge.runs import atomic  # noqa: E402

PUBLISHED = {   # ../shared/REFERENCE.md: PacGAN Table 1 and VEEGAN Table 1 (published, not ours)
    "toy-grid": [("GAN (PacGAN Table 1)", "17.3±0.8", "94.8±0.7", "0.70±0.07"),
                 ("PacGAN4 (PacGAN Table 1)", "24.8±0.2", "93.6±0.6", "0.04±0.01"),
                 ("VEEGAN (VEEGAN Table 1)", "24.6", "40", "–")],
    "toy-ring": [("GAN (PacGAN Table 1)", "6.3±0.5", "98.2±0.2", "0.45±0.09"),
                 ("PacGAN4 (PacGAN Table 1)", "7.8±0.1", "95.9±1.4", "0.07±0.02"),
                 ("VEEGAN (VEEGAN Table 1)", "8", "52.9", "–")],
}


def machine() -> str:
    from ganforge.device import cpu_name
    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}"


def one(preset: str, seed: int, out: Path, picture: bool = False) -> dict:
    t0 = time.time()
    run = ganforge.train(preset, out=out, seed=seed, name=f"{preset}-s{seed}", progress="off")
    wall = time.time() - t0
    data = load_dataset(run.config.data)
    m = mode_metrics(run.sample(2500, seed=0), data.density.means, data.density.std)
    train_s = run.metrics()[-1]["time"]
    if picture:
        shutil.copyfile(run.path / "samples" / f"step-{run.step:07d}.png",
                        Path(__file__).parents[1] / "docs" / "images" / f"{preset}.png")
    return {"preset": preset, "seed": seed, "steps": run.step, "train_s": round(train_s, 1), "wall_s": round(wall, 1),
            **{k: m[k] for k in ("modes", "of", "hq", "kl", "n")}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["toy-grid", "toy-ring"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "toy_modes.json"))
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in a.presets:
            for seed in a.seeds:
                r = one(preset, seed, Path(tmp), picture=seed == a.seeds[0])
                rows.append(r)
                print(f"{preset:9s} seed {seed}: {r['modes']}/{r['of']} modes, {r['hq']:.1f}% HQ, KL {r['kl']:.4f}, "
                      f"train {r['train_s']:.1f} s, wall {r['wall_s']:.1f} s", flush=True)
    print(f"\nmachine: {machine()}\n")
    print("| preset | modes | high-quality % | reverse KL | training s | source |")
    print("|---|---|---|---|---|---|")
    for preset in a.presets:
        rs = [r for r in rows if r["preset"] == preset]

        def ms(key, fmt, rs=rs):
            v = [r[key] for r in rs]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            return f"{fmt.format(statistics.mean(v))}±{fmt.format(sd)}"
        worst = min(rs, key=lambda r: r["hq"])
        print(f"| {preset} ({len(rs)} seeds) | {ms('modes', '{:.1f}')} | {ms('hq', '{:.1f}')} | {ms('kl', '{:.4f}')} "
              f"| {ms('train_s', '{:.0f}')} | ours (worst seed: {worst['modes']}/{worst['of']}, {worst['hq']:.1f}%) |")
        for name, modes, hq, kl in PUBLISHED.get(preset, []):
            print(f"| {name} | {modes} | {hq} | {kl} | – | published |")
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps({"machine": machine(), "n_eval": 2500, "eval_seed": 0, "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
