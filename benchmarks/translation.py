"""The image-to-image presets: training time, scores on held-out data, and pix2pix against L1 alone.

    python benchmarks/translation.py [--presets edges2digits,...] [--steps N] [--out DIR]

Each preset is trained by ``ganforge train PRESET`` in a child process; its
last evaluation (held-out inputs against their ground truth: L1, PSNR, SSIM,
label preservation ``acc`` by the digit classifier, and the FID of the
outputs against the real images of the target domain, digit features for
digits) is read from the run's metrics.jsonl. For a pix2pix preset the same
generator is then trained with L1 alone (``model.gan_weight=0``) for the
same training time: a calibration run measures its seconds per step
(steps 200 to 1,000), which sets its step count;
``time_ratio`` records how close the two training times came. The goal the issue sets: the GAN's outputs
sharper (lower FID) at a PSNR no more than 1 dB below the L1 baseline's,
and label preservation of at least 95%. Rows go to
benchmarks/results/translation.json (replacing earlier rows of the same
preset); each run's last sample grid (input | output | truth) is copied to
docs/images/translate-PRESET.png (-l1 for the baseline).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from families import run_child  # noqa: E402
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCORES = ("l1", "psnr", "ssim", "acc", "acc_truth", "fid", "l1_ba", "psnr_ba", "ssim_ba", "acc_ba", "fid_ba")


def train(preset: str, name: str, tmp: Path, extra: list) -> dict:
    cmd = [sys.executable, "-m", "ganforge", "train", preset, *extra, f"name={name}", "log.progress=lines",
           "--out", str(tmp)]
    wall, rss = run_child(cmd, tmp / f"{name}.log", name)
    rows = [json.loads(x) for x in (tmp / name / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    out = {"name": name, "steps": last["step"], "train_s": round(last["time"], 1), "wall_s": round(wall, 1),
           "peak_rss_mb": round(rss), **{k: round(last[k], 4) for k in SCORES if k in last}}
    grids = sorted((tmp / name / "samples").glob("step-*.png"))
    if grids and not name.endswith("-calibration"):
        shutil.copy(grids[-1], ROOT / "docs" / "images" / f"translate-{name}.png")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default="edges2digits,inpaint-digits,sr-digits,colorize,thin2thick,invert-digits")
    p.add_argument("--steps", type=int, default=None, help="override the presets' steps (a quick check)")
    p.add_argument("--no-baseline", action="store_true", help="skip the L1-only runs")
    p.add_argument("--out", default=None, help="keep the runs in this folder (default: a temporary one)")
    a = p.parse_args()
    from ganforge.config import load_config
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(a.out or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for preset in a.presets.split(","):
            steps = [f"steps={a.steps}"] if a.steps else []
            row = {"preset": preset, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
                   "gan": train(preset, preset, tmp, steps)}
            if load_config(preset).model.name == "pix2pix" and not a.no_baseline:
                name = f"{preset}-l1-calibration"
                train(preset, name, tmp, ["model.gan_weight=0", "steps=1000", "log.every=200", "eval.metrics=none"])
                times = [json.loads(x)["time"] for x in (tmp / name / "metrics.jsonl").read_text().splitlines()]
                per_step = (times[-1] - times[0]) / 800          # steps 200 to 1,000: after the first steps' warm-up
                n = max(1, round(row["gan"]["train_s"] / per_step))
                row["l1"] = train(preset, f"{preset}-l1", tmp, ["model.gan_weight=0", f"steps={n}"])
                g, b = row["gan"], row["l1"]
                row["time_ratio"] = round(b["train_s"] / g["train_s"], 3)    # the baseline's training time / the GAN's
                row["goals"] = {"sharper": g["fid"] < b["fid"], "psnr_within_1db": g["psnr"] >= b["psnr"] - 1.0,
                                **({"acc_95": g["acc"] >= 0.95} if "acc" in g else {})}
            elif "acc" in row["gan"]:
                row["goals"] = {"acc_95": row["gan"]["acc"] >= 0.95}
            rows.append(row)
            print(json.dumps(row))
    if not a.steps:
        path = Path(__file__).parent / "results" / "translation.json"
        old = json.loads(path.read_text())["rows"] if path.is_file() else []
        mine = {r["preset"] for r in rows}
        atomic.write_text(path, json.dumps({"machine": machine(), "rows": [r for r in old if r["preset"] not in mine] + rows},
                                   indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
