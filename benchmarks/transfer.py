"""Transfer learning on few images: fine-tune a GAN trained on digits 0-4 on 100 digits 5-9 (issue 25).

    python benchmarks/transfer.py                      # 3 seeds, about 30 minutes on 2 cores
    python benchmarks/transfer.py --seeds 0 --steps 300

The source is the ``mnist-dcgan`` preset trained on the 2,500 or so embedded
MNIST digits of classes 0-4 (``--source-steps``, seed 0, once). The target is
100 digits of classes 5-9, 20 of each (subset seed 0). Each row trains on the
target for the same number of steps (wall time reported beside it; the
source's training is not counted, as in Wang et al. 2018 and Mo et al. 2020):

- ``scratch``: fresh weights; ``scratch+ada``: with adaptive augmentation;
- ``init``: G, D and G's average from the source (``init=RUN``);
- ``init+freezed``: and D's first block frozen (``model.freeze_d=1``; the
  preset's D at 28 px has two blocks before its head);
- ``init+ada``, ``init+freezed+ada``.

Each run's 5,000 EMA samples are measured with the package's digit classifier
(``mnist`` features) against every real digit of classes 5-9: FID, the share
read with p >= 0.9 and the share read as one of 5-9 (a G that kept drawing
the source's classes shows there), and the memorisation test of
benchmarks/limited_data.py against the 100 target images. Writes
benchmarks/results/transfer.json and prints a markdown table (means ± sd over
seeds, and each seed's FID).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from limited_data import measure, ms, subset  # noqa: E402
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "transfer.json"
ROWS = {"scratch": [], "scratch+ada": ["augment=ada"], "init": ["INIT"], "init+freezed": ["INIT", "model.freeze_d=1"],
        "init+ada": ["INIT", "augment=ada"], "init+freezed+ada": ["INIT", "model.freeze_d=1", "augment=ada"]}


def write_npz(path: Path, x01: torch.Tensor, y: torch.Tensor) -> None:
    np.savez(path, x=(x01[:, 0] * 255).round().to(torch.uint8).numpy(), y=y.numpy())


def train(out: Path, data: Path, steps: int, seed: int, items: list) -> None:
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", "mnist-dcgan", f"data=npz:{data}",
                        f"steps={steps}", f"seed={seed}", "eval.metrics=none", "log.progress=off",
                        f"name={out.name}", "--out", str(out.parent), *items], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"training {out.name} failed:\n{r.stderr[-2000:]}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--source-steps", type=int, default=3000)
    p.add_argument("--speed-kimg", type=float, default=50.0)
    p.add_argument("--work", help="keep the run folders here (default: a temporary folder)")
    a = p.parse_args(argv)
    from ganforge.data.embedded import load_mnist
    from ganforge.metrics.extract import extract
    from ganforge.metrics.features import get_extractor
    import ganforge
    x01, y, _ = load_mnist()
    net = get_extractor("mnist")
    low, high = y < 5, y >= 5
    pick = torch.nonzero(high).flatten()[subset(y[high] - 5, 100, classes=5)]
    unseen = torch.ones(len(y), dtype=torch.bool)
    unseen[pick] = False
    unseen &= high
    real = x01 * 2 - 1
    rows = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    done = {(r["row"], r["seed"], r["steps"], r["source_steps"]) for r in rows}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(a.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        write_npz(work / "source.npz", x01[low], y[low])
        write_npz(work / "target.npz", x01[pick], y[pick])
        source = work / f"source-{a.source_steps}"
        if not (source / "checkpoints").is_dir():
            t0 = time.time()
            train(source, work / "source.npz", a.source_steps, 0, [])
            print(f"source: {int(low.sum())} digits 0-4, {a.source_steps} steps, {time.time() - t0:.0f} s",
                  file=sys.stderr)
        for row in a.rows.split(","):
            for seed in map(int, a.seeds.split(",")):
                if (row, seed, a.steps, a.source_steps) in done:
                    continue
                items = [f"init={source}" if i == "INIT" else i for i in ROWS[row]]
                if "augment=ada" in items:
                    items.append(f"augment.speed_kimg={a.speed_kimg}")
                out = work / f"{row.replace('+', '-')}-{seed}-{a.steps}"
                t0 = time.time()
                train(out, work / "target.npz", a.steps, seed, items)
                res = {"row": row, "seed": seed, "steps": a.steps, "source_steps": a.source_steps,
                       "wall_s": round(time.time() - t0, 1),
                       **measure(out, real[high], real[pick], real[unseen][::5], net)}
                got = extract(net, ganforge.load_run(out).sample(5000, seed=0), 5000, 500, keep_features=False,
                              keep_logits=True).logits
                res["target_classes"] = float((got.argmax(1) >= 5).double().mean())
                rows.append(res)
                print(json.dumps(res), file=sys.stderr)
                RESULTS.parent.mkdir(exist_ok=True)
                atomic.write_text(RESULTS, json.dumps({"machine": machine(), "speed_kimg": a.speed_kimg,
                                               "target_images": 100, "source_images": int(low.sum()),
                                               "runs": rows}, indent=1) + "\n")
    table(rows)
    return 0


def table(rows: list) -> None:
    print("| start | steps | FID vs real 5-9 (mean ± sd) | FID per seed | confident % | read as 5-9 % | "
          "memorized % (unseen %) | train s |\n|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["row"], r["steps"], r["source_steps"]) for r in rows},
                  key=lambda k: (k[1], k[2], list(ROWS).index(k[0]) if k[0] in ROWS else 99))
    for row, steps, source_steps in keys:
        rs = [r for r in rows if (r["row"], r["steps"], r["source_steps"]) == (row, steps, source_steps)]
        print(f"| {row} | {steps} | {ms([r['fid'] for r in rs])} | {', '.join(format(r['fid'], '.1f') for r in rs)} | "
              f"{ms([100 * r['confident'] for r in rs])} | {ms([100 * r['target_classes'] for r in rs])} | "
              f"{ms([100 * r['memorized'] for r in rs])} ({ms([100 * r['memorized_unseen'] for r in rs])}) | "
              f"{ms([r['train_s'] for r in rs])} |")


if __name__ == "__main__":
    sys.exit(main())
