"""Soak: train for hours with periodic evaluation; memory must stay flat and checkpoints within a disk budget.

Starts ``ganforge train`` (the real command, a DCGAN on the embedded MNIST
digits with an FID + mode evaluation every ``--eval-every`` steps and a
checkpoint every ``--ckpt-every``, keeping the last ``--keep``) and samples
every ``--poll`` seconds: the process's resident memory (VmRSS from /proc),
the number and bytes of checkpoint files, and the bytes of the whole run
folder. At the end (``--hours`` elapsed, or the run finished) it stops the run
with SIGINT (the clean stop that writes a checkpoint) and reports:

- memory: RSS at the end of the first quarter (evaluators and caches built),
  its largest rise above that over the last three quarters, and the
  least-squares slope there in MB per hour; flat means a rise of at most
  ``--max-growth-mb`` (default 50);
- checkpoints: the most files ever seen (at most keep + 1, the new file being
  written before the oldest is removed) and the most bytes, against a budget
  of (keep + 1) checkpoint sizes;
- the run folder's growth per hour over the last three quarters (sample
  grids and metrics are kept, by design: they are the record of the run).

Not run in CI. ``python benchmarks/soak.py --hours 3`` writes
benchmarks/results/soak.json; ``--hours 0.05`` is a smoke test. With
``--samples-keep N`` the sample dumps rotate too (``log.samples_keep``), and
the count of dumps must stay at most N: the whole run folder then stays
within a budget.
"""
import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def slope_per_hour(t: list, y: list) -> float:
    n = len(t)
    if n < 2:
        return 0.0
    mt, my = sum(t) / n, sum(y) / n
    var = sum((a - mt) ** 2 for a in t)
    return 3600 * sum((a - mt) * (b - my) for a, b in zip(t, y)) / var if var else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--keep", type=int, default=3)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--samples-every", type=int, default=1000)
    ap.add_argument("--samples-keep", type=int, default=None, help="log.samples_keep (default: keep every dump)")
    ap.add_argument("--result", default="soak.json", help="file name under benchmarks/results/")
    ap.add_argument("--poll", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-growth-mb", type=float, default=50.0,
                    help="flat: the RSS never rises more than this above its value at the end of the first quarter")
    ap.add_argument("--out", type=Path, default=None, help="run folder parent (default: a temporary folder)")
    a = ap.parse_args()
    work = a.out or Path(tempfile.mkdtemp(prefix="ganforge-soak-"))
    run = work / "soak"
    cmd = [sys.executable, "-m", "ganforge", "train", "mnist-dcgan", "steps=10000000", "name=soak", "--out", str(work),
           f"threads={a.threads}", f"log.keep_last={a.keep}", f"log.checkpoint_every={a.ckpt_every}",
           f"eval.every={a.eval_every}", "eval.n=1000", f"log.samples_every={a.samples_every}", "log.every=100",
           "log.progress=off"] + ([f"log.samples_keep={a.samples_keep}"] if a.samples_keep else [])
    print(" ".join(cmd[2:]))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0, rows, end = time.time(), [], time.time() + a.hours * 3600
    try:
        while time.time() < end and proc.poll() is None:
            time.sleep(a.poll)
            ck = list((run / "checkpoints").glob("step-*.pt")) if (run / "checkpoints").exists() else []
            ck_all = list((run / "checkpoints").iterdir()) if (run / "checkpoints").exists() else []
            lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
            step = json.loads(lines[-1])["step"] if lines else 0
            evals = sum('"fid"' in x for x in lines)
            row = {"t": round(time.time() - t0, 1), "step": step, "evals": evals, "rss_mb": round(rss_mb(proc.pid), 1),
                   "ckpt_files": len(ck), "ckpt_folder_files": len(ck_all),
                   "ckpt_mb": round(folder_bytes(run / "checkpoints") / 2**20, 2),
                   "run_mb": round(folder_bytes(run) / 2**20, 2),
                   "sample_dumps": len(list((run / "samples").glob("step-*.png"))) if (run / "samples").exists() else 0}
            rows.append(row)
            if len(rows) % max(1, int(300 / a.poll)) == 1:
                print(f"{row['t'] / 60:6.1f} min  step {step:7d}  evals {evals:3d}  RSS {row['rss_mb']:7.1f} MB  "
                      f"checkpoints {row['ckpt_files']} ({row['ckpt_mb']:.1f} MB)  run folder {row['run_mb']:.1f} MB",
                      flush=True)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=600)[1]
    print(f"train exited {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    late = rows[len(rows) // 4:]
    slope = slope_per_hour([r["t"] for r in late], [r["rss_mb"] for r in late])
    one = max((p.stat().st_size for p in (run / "checkpoints").glob("step-*.pt")), default=0) / 2**20
    budget = (a.keep + 1) * one
    hours = rows[-1]["t"] / 3600 if rows else 0
    result = {
        "hours": round(hours, 3), "steps": rows[-1]["step"] if rows else 0, "evals": rows[-1]["evals"] if rows else 0,
        "rss_mb_at_quarter": late[0]["rss_mb"] if late else None, "rss_mb_end": rows[-1]["rss_mb"] if rows else None,
        "rss_mb_max": max(r["rss_mb"] for r in rows) if rows else None,
        "rss_slope_mb_per_hour": round(slope, 2),
        "rss_growth_mb": round(max(r["rss_mb"] for r in late) - late[0]["rss_mb"], 1) if late else None,
        "keep": a.keep, "max_ckpt_files": max((r["ckpt_files"] for r in rows), default=0),
        "max_ckpt_mb": max((r["ckpt_mb"] for r in rows), default=0), "ckpt_budget_mb": round(budget, 2),
        "run_mb_end": rows[-1]["run_mb"] if rows else 0,
        "run_mb_per_hour_late": round((late[-1]["run_mb"] - late[0]["run_mb"]) * 3600
                                      / max(late[-1]["t"] - late[0]["t"], 1), 2) if late else None,
        "samples_keep": a.samples_keep, "max_sample_dumps": max((r["sample_dumps"] for r in rows), default=0),
        "train_exit": proc.returncode,
    }
    result["memory_flat"] = result["rss_growth_mb"] is not None and result["rss_growth_mb"] <= a.max_growth_mb
    result["within_budget"] = (result["max_ckpt_files"] <= a.keep + 1 and result["max_ckpt_mb"] <= budget + 0.01
                               and (a.samples_keep is None or result["max_sample_dumps"] <= a.samples_keep))
    print(json.dumps(result, indent=1))
    out = Path(__file__).parent / "results" / a.result
    atomic.write_text(out, json.dumps({"machine": machine(), "torch": torch.__version__, "threads": a.threads,
                               "command": " ".join(cmd[2:]), "result": result, "samples": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    sys.exit(0 if result["memory_flat"] and result["within_budget"] and proc.returncode == 130 else 1)


if __name__ == "__main__":
    main()
