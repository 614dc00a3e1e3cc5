"""The main job (`ganforge train`, no arguments): wall time, peak memory, and class coverage.

    python benchmarks/main_job.py

Runs the command in a child process (so its peak resident memory is the
child's own), then draws 1,000 samples from the EMA generator and labels
them with a logistic-regression classifier on raw pixels, trained on 90% of
the embedded digits and scored on the held-out 10%. Prints the class
histogram of the samples, so "digits of all ten classes" is a count, not an
impression. (A pixel classifier is a rough judge; the evaluation issue's
digit network replaces it.) Writes benchmarks/results/main_job.json.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402


def classifier():
    from sklearn.linear_model import LogisticRegression
    from ganforge.config import load_config
    from ganforge.data import load_dataset
    tr = load_dataset(load_config(None, ["data.holdout=0.1"]).data)
    te = load_dataset(load_config(None, ["data.holdout=0.1", "data.split=holdout"]).data)
    clf = LogisticRegression(max_iter=300, C=0.05).fit(tr.x.flatten(1).numpy(), tr.y.numpy())
    return clf, float(clf.score(te.x.flatten(1).numpy(), te.y.numpy()))


def main() -> int:
    import ganforge
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
        x = run.sample(1000, seed=0)
        clf, acc = classifier()
        pred = clf.predict(x.flatten(1).numpy())
        hist = np.bincount(pred, minlength=10).tolist()
        last = run.metrics()[-1]
        grid_src = sorted((run.path / "samples").glob("step-*.png"))[-1]
        out_png = Path(__file__).parents[1] / "docs" / "images" / "main-job-samples.png"
        out_png.parent.mkdir(parents=True, exist_ok=True)
        out_png.write_bytes(grid_src.read_bytes())
    res = {"machine": machine(), "wall_s": round(wall, 1), "train_s": last["time"], "peak_rss_mb": round(peak_mb),
           "steps": run.step, "img_s_last": last["img_s"], "precision": run.config.precision,
           "classifier_holdout_accuracy": round(acc, 4), "class_histogram_of_1000_samples": hist,
           "classes_present": sum(h > 0 for h in hist)}
    print(json.dumps(res, indent=1))
    out = Path(__file__).parent / "results" / "main_job.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out} and {out_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
