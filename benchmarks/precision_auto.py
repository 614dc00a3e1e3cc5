"""What ``precision=auto`` measures on this CPU for each preset's nets, and what the measurement costs at start-up.

    python benchmarks/precision_auto.py [--presets main,mnist-dcgan,mnist-sngan,mnist-stylegan,mnist-biggan,toy-ring]

For each preset (``main``: the main job, ``ganforge train`` with no preset) it loads the data, then runs
train.precision_auto.measure exactly as a run's first start does (a fresh build of the preset's G and D, a step's
forward and backward in fp32 and bf16, alternating rounds until the verdict is clear), bypassing the cache, and
prints the two step times, their ratio, the rounds, the choice (bf16 at a ratio of at least MARGIN) and the
seconds the measurement took. Writes benchmarks/results/precision_auto.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402

from ganforge.config import load_config  # noqa: E402
from ganforge.data import load_dataset  # noqa: E402
from ganforge.train import precision_auto  # noqa: E402
from ganforge.runs import atomic  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="main,mnist-dcgan,mnist-sngan,mnist-stylegan,mnist-biggan,toy-ring")
    a = p.parse_args()
    name, flags = precision_auto.cpu_info()
    bf16_flags = sorted(f for f in flags if "bf16" in f or f.startswith("amx"))
    print(f"{machine()}; bf16 flags: {', '.join(bf16_flags) or 'none'}; threads {torch.get_num_threads()}")
    rows = []
    for preset in a.presets.split(","):
        cfg = load_config(None if preset == "main" else preset, [])
        data = load_dataset(cfg.data)
        t0 = time.perf_counter()
        r = precision_auto.measure(cfg, data, cfg.batch_size, torch.device("cpu"))
        took = time.perf_counter() - t0
        r.update(preset=preset, model=cfg.model.name, batch=cfg.batch_size, seconds=round(took, 2),
                 precision="bf16" if r["ratio"] >= precision_auto.MARGIN else "fp32")
        rows.append(r)
        print(f"{preset:15s} {cfg.model.name:9s} batch {cfg.batch_size:4d}  fp32 {r['fp32_ms']:9.1f} ms  "
              f"bf16 {r['bf16_ms']:9.1f} ms  ratio {r['ratio']:.2f}  rounds {r['rounds']:2d}  -> {r['precision']}  "
              f"(measured in {took:.1f} s)")
    out = Path(__file__).parent / "results" / "precision_auto.json"
    atomic.write_text(out, json.dumps({"machine": machine(), "bf16_flags": bf16_flags, "threads": torch.get_num_threads(),
                               "margin": precision_auto.MARGIN, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
