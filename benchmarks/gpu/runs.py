"""The tests, fp16, loader and quality sections of benchmarks/gpu_check.py: the CUDA-marked tests, the main job at
fp16 with the gradient scaler, StyleGAN2 at 256 px streamed from a zip, and the main job at fp32 against bf16."""
from __future__ import annotations

import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ganforge.runs import atomic

from .common import (QUIET, ROOT, SMOKE_MAIN, SMOKE_NETS, Share, child, error_tail, free_memory, main_job_fid,
                     photo_like)

def run_tests(ctx, share: Share) -> dict:
    import importlib.util
    # only the files that mark a test: a module the GPU machine cannot import (a missing optional package) then
    # cannot stop the run at collection; --continue-on-collection-errors for one that marks and still fails to import
    files = sorted(str(f.relative_to(ROOT)) for f in (ROOT / "tests").glob("test_*.py") if "mark.cuda" in f.read_text())
    cmd = [sys.executable, "-m", "pytest", "-q" if ctx.smoke else "-v", "-m", "cuda", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", *files]         # -v: a line per test, so a timeout still names them
    if ctx.smoke:
        cmd.append("--co")
    elif importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", "4"]
    timeout = max(10.0, share.left())
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ctx.env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)            # pytest and the ganforge children it started
        out, _ = proc.communicate()
        timed_out = True
    except BaseException:                              # the whole budget ran out (OverBudget), or Ctrl-C
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    atomic.write_text(ctx.out / "tests.log", out)
    r = {"command": " ".join(cmd[2:]), "files": files, "returncode": proc.returncode, "timed_out": timed_out,
         "timeout_s": round(timeout), "wall_s": round(time.monotonic() - t0, 1), "log": "tests.log"}
    tail = "\n".join(out.strip().splitlines()[-3:])
    if ctx.smoke:
        m = re.search(r"(\d+)(?:/(\d+))? tests? collected", out)
        r["collected"] = int(m.group(1)) if m else 0
        r["ids"] = [ln for ln in out.splitlines() if "::" in ln and not ln.startswith(("FAILED", "ERROR"))]
    else:
        r.update(pytest_counts(out, tail))
    r["failed_tests"] = sorted({m.group(2) for m in re.finditer(r"(^|\s)(?:FAILED|ERROR) (tests/\S+)", out, re.M)}
                               | {m.group(1) for m in re.finditer(r"^(tests/\S+::\S+) (?:FAILED|ERROR)", out, re.M)})
    r["summary"] = tail.splitlines()[-1] if tail else ""
    return r


def pytest_counts(out: str, tail: str) -> dict:
    """passed/failed/skipped/errors from pytest's last line, or, cut short (a timeout), from its -v lines."""
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", tail)}
    if not counts:
        per_test = re.findall(r"(?:^\[gw\d+\] \[ *\d+%\] (PASSED|FAILED|SKIPPED|ERROR) )|(?:^tests/\S+ (PASSED|FAILED|"
                              r"SKIPPED|ERROR))", out, re.M)
        for a, b in per_test:
            k = (a or b).lower()
            counts[k] = counts.get(k, 0) + 1
        counts["from"] = "per-test lines (no summary line)"
    return {"passed": counts.get("passed", 0), "failed": counts.get("failed", 0), "skipped": counts.get("skipped", 0),
            "errors": counts.get("error", 0) + counts.get("errors", 0), **({"counted": counts["from"]} if "from" in counts
                                                                            else {})}


def run_fp16(ctx, share: Share, r: dict) -> dict:
    if ctx.cuda:
        return fp16_run(ctx, share, r, "fp16")
    if ctx.smoke:              # the section's code, run at bf16 on the CPU so that it cannot rot unseen
        r["dry_run_bf16_cpu"] = fp16_run(ctx, share, {}, "bf16")
    r["skipped"] = "needs CUDA"
    return r


def fp16_run(ctx, share: Share, r: dict, precision: str) -> dict:
    from ganforge.errors import UserError
    from ganforge.runs.metrics_log import read_metrics
    from ganforge.train.start import start
    reserve = 10 if ctx.smoke else 25                     # the FID at the end
    limit = min(8.0 if ctx.smoke else 120.0, share.left() - reserve)
    if limit < 10 and not ctx.smoke:
        return {"skipped": "time"}
    every = 1 if ctx.smoke else 100
    chunk = 2 if ctx.smoke else 200
    ov = [f"precision={precision}", f"device={ctx.device}", *QUIET, f"log.every={every}", "log.samples_every=1000000",
          "log.checkpoint_every=1000000", f"steps={chunk}", "name=fp16", *(SMOKE_MAIN if ctx.smoke else ())]
    tr, _ = start(None, tuple(ov), ctx.work / "fp16")
    guard_calls: list = []
    on_nonfinite = tr.guard.on_nonfinite

    def noted(trainer, stats):
        guard_calls.append({"step": trainer.step, "failed": list(trainer.precision.failed)})
        return on_nonfinite(trainer, stats)

    tr.guard.on_nonfinite = noted
    t0 = time.perf_counter()
    while True:
        try:
            tr.run()
        except UserError as e:                    # the guard stopped the run (train.guard.Diverged)
            r["stopped"] = str(e)
            break
        spent = time.perf_counter() - t0
        per_step = spent / max(tr.step, 1)
        left = limit - spent
        if ctx.smoke or left < 20 * per_step + 2:
            break
        n = int(min(left / per_step * 0.9, 5000) // every * every)
        if n < every:
            break
        tr.cfg.steps = tr.step + n
    rows = read_metrics(tr.run_dir / "metrics.jsonl")
    losses = [v for row in rows for k, v in row.items() if k in ("loss_d", "loss_g")]
    r.update(precision=precision, steps=tr.step, wall_s=round(time.perf_counter() - t0, 1),
             train_s=round(tr.train_time, 1), img_s=round(tr.images / max(tr.train_time, 1e-9), 1), overrides=ov,
             losses_finite=all(math.isfinite(v) for v in losses), last=rows[-1] if rows else None,
             guard_dropped=len(guard_calls), guard_events=guard_calls[:10],
             metrics_nonfinite=sum(row.get("nonfinite", 0) for row in rows),
             scaler_skipped_updates=dict(tr.precision.skipped), scaler_final_scale={k: s.get_scale() for k, s in tr.precision.scalers.items()})
    tr.release_lock()
    ctx.save()
    try:
        r["eval"] = main_job_fid(ctx, tr.run_dir, 200 if ctx.smoke else 2500)
    except Exception:
        r["eval"] = {"error": error_tail(1500)}
    return r


def streamed_run(ctx, archive: Path, side: int, cache: str, steps: int, batch: int, timeout: float) -> dict:
    from ganforge.runs.metrics_log import read_metrics
    name = f"loader-{cache}"
    cmd = [sys.executable, "-m", "ganforge", "train", "model=stylegan", f"data=zip:{archive}", f"data.resolution={side}",
           f"data.cache={cache}", f"steps={steps}", f"batch_size={batch}", f"device={ctx.device}", *QUIET, "log.every=1",
           f"precision={'bf16' if ctx.cuda else 'fp32'}", "channels_last=true",
           f"log.checkpoint_every={steps}", f"log.samples_every={steps}", f"name={name}",
           *(SMOKE_NETS["stylegan"] + ("threads=1",) if ctx.smoke else ()), "--out", str(ctx.work / "loader-runs")]
    wall, _ = child(ctx, cmd, timeout)
    rows = read_metrics(ctx.work / "loader-runs" / name / "metrics.jsonl")
    steady = rows[len(rows) // 4:]                       # as benchmarks/data_scale.py: the first quarter is warm-up
    out = {"cache": cache, "steps": steps, "batch": batch, "precision": "bf16" if ctx.cuda else "fp32", "wall_s": round(wall, 1),
           "img_s": round(float(np.median([x["img_s"] for x in steady])), 1)}
    if steady and "data_wait" in steady[0]:
        out["data_wait"] = round(float(np.mean([x["data_wait"] for x in steady])), 4)
    return out


def run_loader(ctx, share: Share, r: dict) -> dict:
    from ganforge.data.stream import default_workers
    n, side = (40, 32) if ctx.smoke else (2000, 256)
    steps, batch = (4, 8) if ctx.smoke else (40, 32)
    src, archive = ctx.work / "loader.npz", ctx.work / "loader.zip"
    np.savez(src, x=photo_like(n, side, seed=1))
    wall, _ = child(ctx, [sys.executable, "-m", "ganforge", "data", "pack", str(src), "--out", str(archive),
                          "--resolution", str(side), "--progress", "off"], share.left())
    r.update(images=n, resolution=side, workers=default_workers(), pack_s=round(wall, 1),
             archive_mb=round(archive.stat().st_size / 1e6, 1))
    ctx.save()
    r["streamed"] = streamed_run(ctx, archive, side, "none", steps, batch, share.left())
    ctx.save()
    if ctx.smoke:
        r["in_memory"] = {"skipped": "smoke"}
    elif share.left() > 1.5 * r["streamed"]["wall_s"]:
        r["in_memory"] = streamed_run(ctx, archive, side, "ram", steps, batch, share.left())
    else:
        r["in_memory"] = {"skipped": "time"}
    s = r["streamed"]
    if "data_wait" in s:
        r["gpu_waits_for_data"] = s["data_wait"] > 0.05
    speed = next((g for g in ctx.res.get("speed", {}).get("groups", []) if g.get("group") == "stylegan-256"), {})
    row = next((x for x in speed.get("rows", []) if x.get("precision") == "bf16" and x.get("channels_last")
                and not x.get("compile") and "img_s" in x), None)
    if row:
        r["speed_section_in_memory_img_s"] = {"img_s": row["img_s"], "batch": speed["batch"],
                                              "note": "the speed section's stylegan-256 bf16 channels-last row (npz)"}
    return r


# ------------------------------------------------------------------ quality

def run_quality(ctx, share: Share, r: dict) -> dict:
    from ganforge.train.start import start
    steps = 3 if ctx.smoke else 1500
    n = 200 if ctx.smoke else 2500
    r.update(steps=steps, n=n, rows=[])
    est = 0.0
    for seed in (0, 1):
        for p in ("fp32", "bf16"):
            item = {"precision": p, "seed": seed}
            if share.left() < est * 1.1 and not ctx.smoke:
                r["rows"].append({**item, "skipped": "time"})
                continue
            t = time.perf_counter()
            try:
                ov = [f"precision={p}", f"device={ctx.device}", f"seed={seed}", f"steps={steps}", *QUIET,
                      "log.every=100", f"name=q-{p}-s{seed}", *(SMOKE_MAIN if ctx.smoke else ())]
                tr, _ = start(None, tuple(ov), ctx.work / "quality")
                tr.run()
                item.update(train_s=round(tr.train_time, 1), **main_job_fid(ctx, tr.run_dir, n))
                del tr
            except Exception:
                item["error"] = error_tail()
            item["wall_s"] = round(time.perf_counter() - t, 1)
            est = max(est, item["wall_s"])
            r["rows"].append(item)
            free_memory()
            ctx.save()
    by = {p: [x["fid"] for x in r["rows"] if x.get("precision") == p and "fid" in x] for p in ("fp32", "bf16")}
    if all(len(v) == 2 for v in by.values()):
        mean = {p: statistics.mean(v) for p, v in by.items()}
        spread = max(abs(v[0] - v[1]) for v in by.values())
        r["compare"] = {"fid_mean": {p: round(m, 3) for p, m in mean.items()}, "seed_spread": round(spread, 3),
                        "bf16_within_seed_spread": abs(mean["bf16"] - mean["fp32"]) <= spread}
    return r
