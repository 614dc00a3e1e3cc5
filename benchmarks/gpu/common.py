"""What the sections of benchmarks/gpu_check.py share: the budget, the run context, the machine, stand-in data,
the main job's FID, child processes and the one atomic write of the results."""
from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
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
    from ganforge.device import cpu_name
    m = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
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


def child(ctx, cmd: list, timeout: float) -> tuple:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5.0, timeout), env=ctx.env, cwd=ROOT)
    if p.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd[2:]))} exited {p.returncode}: {p.stderr[-1500:]}")
    return time.perf_counter() - t, p
