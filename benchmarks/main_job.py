"""The main job (`ganforge train`, no arguments): wall time, peak memory, and how good its samples are.

    python benchmarks/main_job.py

Runs the command in a child process (so its peak resident memory is the
child's own), then measures the EMA generator with ganforge's evaluation and
its ``mnist`` features (the digit classifier shipped in the package, 99.4%
on held-out digits): the 5,000 embedded digits are split into two
stratified halves A and B of 2,500; FID, KID, digit IS, precision/recall,
density/coverage and the class histogram are computed for real half B
against half A (what "as good as real data" reads at this N) and for 2,500
generated digits against half A, plus FID of 5,000 generated digits
against all 5,000 real ones. Writes benchmarks/results/main_job.json,
docs/images/main-job-samples.png (100 samples) and docs/images/mnist-real.png.
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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

METRICS = ("fid", "kid", "is", "pr", "dc", "modes")


def halves(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint stratified halves of the indices (fixed seed)."""
    g = torch.Generator().manual_seed(0)
    a, b = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        a.append(idx[: len(idx) // 2])
        b.append(idx[len(idx) // 2:])
    return torch.cat(a), torch.cat(b)


def summary(r: dict) -> dict:
    m = r["metrics"]
    out = {"fid": round(m["fid"]["value"], 3)}
    if "kid" in m:
        out.update({"kid": round(m["kid"]["value"], 5), "kid_std": round(m["kid"]["std"], 5),
                    "digit_is": round(m["is"]["value"], 3), "precision": round(m["pr"]["precision"], 4),
                    "recall": round(m["pr"]["recall"], 4), "density": round(m["dc"]["density"], 4),
                    "coverage": round(m["dc"]["coverage"], 4), "classes": m["modes"]["counts"],
                    "kl_uniform": round(m["modes"]["kl"], 4), "confident_pct": round(100 * m["modes"]["confident"], 1)})
    return out


def evaluate(real_ref: torch.Tensor, fake: torch.Tensor, metrics=METRICS) -> dict:
    from ganforge.metrics.evaluate import Evaluator, RealSet, Settings
    ev = Evaluator(RealSet("mnist", real_ref, None, digits="mnist"), Settings(metrics=metrics, features="mnist"))
    return ev(fake, len(fake))


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
        last = run.metrics()[-1]
        sized = json.loads((run.path / "run.json").read_text()).get("minutes")     # how minutes= chose the steps
        x5 = run.sample(5000, seed=0)
    from ganforge.config import load_config
    from ganforge.data import load_dataset
    from ganforge.metrics.features import get_extractor
    real = load_dataset(load_config(None, ["data.split=all"]).data)
    ia, ib = halves(real.y)
    a, b = real.x[ia], real.x[ib]
    out_png = Path(__file__).parents[1] / "docs" / "images" / "main-job-samples.png"
    out_png.parent.mkdir(parents=True, exist_ok=True)
    save_png(grid(F.interpolate(x5[:100], scale_factor=2, mode="nearest"), nrow=10), out_png)
    save_png(grid(F.interpolate(b[:: len(b) // 100][:100], scale_factor=2, mode="nearest"), nrow=10),
             out_png.with_name("mnist-real.png"))
    ex = get_extractor("mnist").describe()
    res = {"machine": machine(), "command": "ganforge train", "wall_s": round(wall, 1), "train_s": last["time"],
           "peak_rss_mb": round(peak_mb), "steps": run.step, "kimg": last["kimg"], "precision": run.config.precision,
           **({"minutes": sized} if sized else {}), "features": ex, "real half B (2,500) vs real half A (2,500)": summary(evaluate(a, b)),
           "generated (2,500, EMA, seed 0) vs real half A (2,500)": summary(evaluate(a, x5[:2500])),
           "generated (5,000) vs all real (5,000): FID": summary(evaluate(real.x, x5, ("fid",)))["fid"],
           "in-training evaluation at the last step (2,500 vs 5,000)": {k: last[k] for k in ("fid", "modes", "kl", "confident")
                                                                       if k in last}}
    print(json.dumps(res, indent=1))
    out = Path(__file__).parent / "results" / "main_job.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(res, indent=1) + "\n")
    print(f"wrote {out} and {out_png}")
    return 0


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sys.exit(main())
