"""A user's folder of a few hundred 64 px photos, trained with and without ADA: r_t, p and FID (issue 25).

    python benchmarks/photo_folder.py                    # 2 runs of 1,500 steps, about 25 minutes on 2 cores
    python benchmarks/photo_folder.py --steps 200 --augments ada
    python benchmarks/photo_folder.py --preset folder-r3gan --augments preset --steps 1000

Builds the folder of benchmarks/families_64px.py (400 random 96-160 px crops
of four scikit-image photos, resized to 64 px by the loader), then trains the
DCGAN at 64 px (batch 32) on it once per ``--augments`` entry in a child
``ganforge train`` process, with ``eval.every`` so the report draws FID
(EfficientNet-Lite0 features, the default for RGB images; 400 real crops)
beside ADA's p and r_t = E[sign D(x_real)]. ADA runs with
``augment.speed_kimg`` (default 20 here: a short run; the paper's 500 is for
millions of images). Writes benchmarks/results/photo_folder.json with each
run's curves (step, r_t, p, FID) and the path of its report.html when
``--work`` keeps the runs. ``--preset NAME`` trains a preset on the folder
(``folder-r3gan``) instead of the DCGAN, with its own batch and options
(``--augments preset``: its own augmentation); rows of other presets and
augmentations already in the JSON are kept, a row measured again is replaced.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from families import run_child  # noqa: E402
from families_64px import make_folder  # noqa: E402
from toy_modes import machine  # noqa: E402
from ganforge.config import raw_from  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "photo_folder.json"


def curves(run: Path) -> dict:
    """step, r_t, p and FID from a run's metrics.jsonl and eval log."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [x for x in lines if "rt" in x]
    fid = [(x["step"], x["fid"]) for x in lines if "fid" in x and isinstance(x["fid"], (int, float))]
    return {"step": [x["step"] for x in train], "rt": [round(x["rt"], 4) for x in train],
            "aug_p": [round(x.get("aug_p", 0.0), 5) for x in train], "fid": fid}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--augments", default="none,ada")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--speed-kimg", type=float, default=20.0)
    p.add_argument("--work", help="keep the folder and the runs here (default: a temporary folder)")
    p.add_argument("--preset", help="train this preset on the folder (default: model=dcgan at batch 32)")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(a.work or scratch)
        folder = work / "photos"
        if not folder.is_dir():
            make_folder(folder)
        for aug in a.augments.split(","):
            extra = [] if aug == "preset" else [f"augment={aug}"]
            own = raw_from(a.preset).get("augment") if a.preset else None
            if aug == "ada" or (aug == "preset" and (own == "ada" or isinstance(own, dict) and own.get("name") == "ada")):
                extra.append(f"augment.speed_kimg={a.speed_kimg}")
            what = [a.preset] if a.preset else ["model=dcgan", "batch_size=32"]
            name = f"photos-{a.preset + '-' if a.preset else ''}{aug}-{a.steps}"
            cmd = [sys.executable, "-m", "ganforge", "train", *what, f"data=folder:{folder}", "data.resolution=64",
                   f"steps={a.steps}", f"eval.every={max(a.steps // 2, 1)}",
                   "eval.metrics=fid", "eval.n=1000", "log.every=25", "log.progress=lines", *extra,
                   f"name={name}", "--out", str(work)]
            wall, rss = run_child(cmd, work / f"{name}.log", name)
            c = curves(work / name)
            rows.append({"preset": a.preset, "augment": aug, "steps": a.steps, "wall_s": round(wall, 1), "peak_rss_mb": round(rss),
                         "final_rt": c["rt"][-1], "final_p": c["aug_p"][-1], "final_fid": c["fid"][-1][1] if c["fid"] else None,
                         "report": str(work / name / "report.html") if a.work else None, "curves": c})
            print(f"{aug}: r_t {c['rt'][-1]:.3f}, p {c['aug_p'][-1]:.4f}, FID {rows[-1]['final_fid']}, {wall:.0f} s",
                  file=sys.stderr)
    RESULTS.parent.mkdir(exist_ok=True)
    new = {(r["preset"], r["augment"], r["steps"]) for r in rows}
    kept = [dict(r, machine=r.get("machine") or old["machine"], speed_kimg=r.get("speed_kimg") or old["speed_kimg"])
            for old in ([json.loads(RESULTS.read_text())] if RESULTS.is_file() else []) for r in old["runs"]
            if (r.get("preset"), r["augment"], r["steps"]) not in new]
    rows = [dict(r, machine=machine(), speed_kimg=a.speed_kimg) for r in rows]
    atomic.write_text(RESULTS, json.dumps({"images": 400, "resolution": 64, "runs": kept + rows}, indent=1) + "\n")
    print("| preset | augment | steps | r_t at the end | p at the end | FID (EfficientNet-Lite0, 1,000 vs 400) | train s |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset'] or 'model=dcgan'} | {r['augment']} | {r['steps']} | {r['final_rt']:.3f} | {r['final_p']:.4f} | {r['final_fid']} | "
              f"{r['wall_s']:.0f} |")


if __name__ == "__main__":
    main()
