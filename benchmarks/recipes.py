"""Recipes side by side on the embedded digits, each given the same wall-clock budget on this machine.

    python benchmarks/recipes.py                          # every recipe, seeds 0-2, 5 minutes each
    python benchmarks/recipes.py --recipes main,r3gan --seeds 0 --budget 300
    python benchmarks/recipes.py --try "mine=mnist-cgan schedule.lr=linear:0"   # a recipe of your own, measured alike
    python benchmarks/recipes.py --seeds 0 --threads 1 --jobs 2 --try "hinge=- loss=hinge steps=8000"   # fixed steps

A recipe is a preset plus overrides. Each one trains with ``minutes=BUDGET/60``: ganforge times the run's own
first steps and gives it the steps that fill the budget, start-up and the final evaluation included
(train/minutes.py; rows before 2026-12-04 came from this script's own 60-step probe in a child process, the same
rule). The main job runs exactly as ``ganforge train`` does (5 minutes). Every run is measured the way benchmarks/main_job.py measures the main
job: 2,500 samples of the EMA generator (seed 0; conditional runs: the ten classes in turn) against one
stratified half of the 5,000 real digits, features of ganforge's digit classifier (99.4% on held-out digits):
FID, the share the classifier reads with p >= 0.9 ("confident"), and the class balance (the largest deviation
of a class's count from 250, in percent). Images/s is images seen by G per second of training.

A recipe whose overrides set ``steps=N`` trains exactly N steps instead (a search of the main job's settings at
equal steps, where the budget's noise would hide small differences; its rows have ``budget_s`` null and print in
their own table with ``--table --fixed``). ``--threads T`` gives each run T torch threads and ``--jobs J`` runs J
at once: on 2 cores, two 1-thread runs side by side train about 1.4 times the images per second of one 2-thread run,
so a search goes faster (their wall times then describe that sharing, not the machine alone).

Rows are added to benchmarks/results/recipes.json as they finish (a run already there for the same recipe,
overrides, seed and budget is kept, not re-run); the table of means and spreads over seeds is printed at the
end and with --table alone.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from main_job import evaluate, halves  # noqa: E402
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

OUT = Path(__file__).parent / "results" / "recipes.json"

# name: (label, preset, overrides, fixed steps). The textbook DCGAN and the families' presets get the budget's
# steps; the main job runs as shipped.
RECIPES = {
    "dcgan-ns": ("DCGAN (NS)", "mnist-dcgan", ["penalty=none"], False),
    "dcgan-ns-r1": ("DCGAN (NS + R1)", "mnist-dcgan", [], False),
    "sngan-hinge": ("SNGAN (hinge)", "mnist-sngan", [], False),
    "stylegan2": ("StyleGAN2", "mnist-stylegan", [], False),
    "r3gan": ("R3GAN", "mnist-r3gan", [], False),
    "main": ("main job (ganforge train)", None, [], True),
}


def train(preset, overrides, out: Path, name: str) -> float:
    """Wall seconds of ``ganforge train`` in a child process."""
    cmd = [sys.executable, "-m", "ganforge", "train", *([preset] if preset else []), "--out", str(out), f"name={name}",
           "log.progress=off", "log.tb=false", *overrides]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return time.time() - t0


def measure(run_dir: Path, real_x, ia) -> dict:
    import ganforge
    run = ganforge.load_run(run_dir)
    last = run.metrics()[-1]
    m = evaluate(real_x[ia], run.sample(2500, seed=0), ("fid", "modes"))["metrics"]
    counts = m["modes"]["counts"]
    return {"steps": run.step, "fid": round(m["fid"]["value"], 2), "confident_pct": round(100 * m["modes"]["confident"], 1),
            "classes": counts,
            "balance_pct": round(100 * max(abs(c - 250) for c in counts) / 250, 1),
            "images_per_s": round(1000 * last["kimg"] / last["time"], 1), "train_s": round(last["time"], 1)}


def fixed(overrides) -> bool:
    """Whether a recipe's overrides fix its steps (no wall-clock budget)."""
    return any(o.startswith("steps=") for o in overrides)


def table(rows: list, budget: float | None) -> str:
    head = f"{budget / 60:g} min budget" if budget else "fixed steps"
    out = [f"| recipe ({head}) | seeds | steps | wall s | FID | p >= 0.9 | worst class vs uniform | images/s |",
           "|---|---|---|---|---|---|---|---|"]
    rows = [r for r in rows if r["budget_s"] == budget]
    keys = list(dict.fromkeys((r["recipe"], tuple(r["overrides"])) for r in rows))
    for key in keys:
        rs = [r for r in rows if (r["recipe"], tuple(r["overrides"])) == key]

        def cell(key, fmt="{:.1f}", rs=rs):
            v = [r[key] for r in rs]
            return fmt.format(statistics.mean(v)) + (f" ± {fmt.format(statistics.stdev(v))}" if len(v) > 1 else "")
        label = rs[0]["label"] + (f" ({' '.join(rs[0]['overrides'])})" if budget is None else "")
        out.append(f"| {label} | {','.join(str(r['seed']) for r in rs)} | {cell('steps', '{:.0f}')} "
                   f"| {cell('wall_s', '{:.0f}')} | {cell('fid')} | {cell('confident_pct')}% | ±{cell('balance_pct')}% "
                   f"| {cell('images_per_s', '{:.0f}')} |")
    return "\n".join(out)


def run_one(name, label, preset, ov, seed, budget, threads, real, ia) -> dict:
    """Train one recipe and seed in a child process (``minutes=budget`` unless ``budget`` is None) and measure it:
    its row, without ``budget_s``."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        extra = {}
        overrides = [*ov, f"seed={seed}", *([f"threads={threads}"] if threads else [])]
        if budget is not None:
            overrides.append(f"minutes={budget / 60:g}")
        wall = train(preset, overrides, work, "run")
        sized = json.loads((work / "run" / "run.json").read_text()).get("minutes")
        if sized:
            extra = {"probe_s_per_step": sized["s_per_step"], "probe_fixed_s": round(sized["start_s"] + sized["end_s"], 1),
                     "resized": sized.get("resized")}
        return {"recipe": name, "label": label, "preset": preset or "(none: the main job)", "overrides": ov, "seed": seed,
                "wall_s": round(wall, 1), **measure(work / "run", real.x, ia), **extra,
                **({"threads": threads} if threads else {}), "machine": machine(), "date": time.strftime("%Y-%m-%d")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default=",".join(RECIPES), help=f"comma list of {', '.join(RECIPES)}")
    ap.add_argument("--try", dest="extra", action="append", default=[],
                    help='"name=PRESET key=value ..." (PRESET "-" for the main job\'s defaults): one more recipe')
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=float, default=300.0, help="wall seconds per run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once")
    ap.add_argument("--table", action="store_true", help="print the table of what is recorded and stop")
    ap.add_argument("--fixed", action="store_true", help="with --table: the fixed-steps rows")
    a = ap.parse_args()
    done = json.loads(OUT.read_text())["rows"] if OUT.exists() else []
    if a.table:
        print(table(done, None if a.fixed else a.budget))
        return 0
    recipes = {k: RECIPES[k] for k in a.recipes.split(",") if k}
    for spec in a.extra:
        name, _, rest = spec.partition("=")
        preset, *ov = rest.split()
        recipes[name] = (name, None if preset == "-" else preset, ov, False)
    from ganforge.config import load_config
    from ganforge.data import load_dataset
    real = load_dataset(load_config(None, ["data.split=all"]).data)
    ia, _ = halves(real.y)
    todo = []
    for seed in (int(s) for s in a.seeds.split(",")):
        for name, (label, preset, ov, shipped) in recipes.items():
            budget = None if fixed(ov) else a.budget
            if not any((r["recipe"], r["overrides"], r["seed"], r["budget_s"]) == (name, ov, seed, budget) for r in done):
                todo.append((name, label, preset, ov, seed, None if shipped else budget))
    lock = threading.Lock()

    def one(job) -> None:
        row = {**run_one(*job, a.threads, real, ia), "budget_s": None if fixed(job[3]) else a.budget}
        with lock:
            print(json.dumps(row), flush=True)
            done.append(row)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(OUT, json.dumps({"rows": done}, indent=1) + "\n")
    with ThreadPoolExecutor(a.jobs) as pool:
        list(pool.map(one, todo))
    print(table(done, a.budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
