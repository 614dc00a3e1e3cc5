"""The main job (`ganforge train`, no arguments): wall time, peak memory, and what the samples are.

    python benchmarks/main_job.py

Runs the command in a child process (so its peak resident memory is the
child's own), then judges 2,000 samples of the EMA generator with a small
CNN digit classifier trained here on 90% of the embedded digits (seed 0,
8 epochs, accuracy on the held-out 10% printed): the class histogram of the
samples, the share classified with confidence > 0.9, and a digit Inception
Score exp(E[KL(p(y|x) || p(y))]) (Salimans et al. 2016, with this
classifier instead of Inception), beside the same figures for the real
held-out digits. This judge is a stand-in until the evaluation issue's
digit network; its numbers are comparable only with each other. Writes
benchmarks/results/main_job.json, docs/images/main-job-samples.png (100
samples) and docs/images/mnist-real.png (100 held-out real digits).
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402


def judge_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 49, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def train_judge():
    from ganforge.config import load_config
    from ganforge.data import load_dataset
    tr = load_dataset(load_config(None, ["data.holdout=0.1"]).data)
    te = load_dataset(load_config(None, ["data.holdout=0.1", "data.split=holdout"]).data)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    m = judge_net()
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    for _ in range(8):
        perm = torch.randperm(len(tr), generator=g)
        for i in range(0, len(tr), 64):
            idx = perm[i:i + 64]
            dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()     # small shifts
            x = torch.roll(tr.x[idx], shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(m(x), tr.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        acc = (m(te.x).argmax(1) == te.y).float().mean().item()
    return m, acc, te.x


@torch.no_grad()
def judge(m: nn.Module, x: torch.Tensor) -> dict:
    p = F.softmax(m(x), 1)
    py = p.mean(0)
    score = torch.exp((p * (p.log() - py.log())).sum(1).mean()).item()
    return {"digit_is": round(score, 2), "confident_pct": round((p.max(1).values > 0.9).float().mean().item() * 100, 1),
            "class_histogram": torch.bincount(p.argmax(1), minlength=10).tolist()}


def main() -> int:
    import ganforge
    from ganforge.viz.grid import grid, save_png
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        r = subprocess.run([sys.executable, "-m", "ganforge", "train", "--out", tmp, "log.progress=lines"],
                           stderr=subprocess.PIPE, text=True)
        wall = time.time() - t0
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return r.returncode
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        run = ganforge.load_run(next(Path(tmp).iterdir()))
        x = run.sample(2000, seed=0)
        last = run.metrics()[-1]
    m, acc, real = train_judge()
    out_png = Path(__file__).parents[1] / "docs" / "images" / "main-job-samples.png"
    out_png.parent.mkdir(parents=True, exist_ok=True)
    save_png(grid(F.interpolate(x[:100], scale_factor=2, mode="nearest"), nrow=10), out_png)
    save_png(grid(F.interpolate(real[:100], scale_factor=2, mode="nearest"), nrow=10), out_png.with_name("mnist-real.png"))
    res = {"machine": machine(), "command": "ganforge train", "wall_s": round(wall, 1), "train_s": last["time"],
           "peak_rss_mb": round(peak_mb), "steps": run.step, "kimg": last["kimg"], "precision": run.config.precision,
           "judge_holdout_accuracy": round(acc, 4), "samples (2000, EMA, seed 0)": judge(m, x),
           f"real held-out digits ({len(real)})": judge(m, real)}
    print(json.dumps(res, indent=1))
    out = Path(__file__).parent / "results" / "main_job.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out} and {out_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
