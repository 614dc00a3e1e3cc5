"""The speed section of benchmarks/gpu_check.py: training-step images/s, peak GPU memory and MFU per family,
precision, memory layout and compile, against a matmul peak measured in the same run (issue 27)."""
from __future__ import annotations

import math
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .common import QUIET, Share, error_tail, free_memory, photo_like, smoke_nets, sync

PUBLISHED_STYLEGAN_256 = {
    "img_s": [41, 46], "published": True,
    "source": "stylegan2-ada-pytorch README (Karras et al. 2020): one V100, 256 px, --cfg=auto (batch 16, 64 channels "
              "at 256 px, 2 mapping layers, fp16 in the 4 highest resolutions), ADA on: 21.6-24.2 s/kimg "
              "(shared/REFERENCE.md)",
    "not_the_same_net": "ours: ganforge's stylegan defaults (g_width 32 at full resolution, w_dim 256, 8 mapping "
                        "layers), batch 32, no augmentation, on an H200"}
COMPILE_GROUPS = ("dcgan-64-b256", "stylegan-256")   # compilation takes tens of seconds a net: the goal and the anchor
GOAL_MFU = 0.35                       # the goal for DCGAN 64 px batch 256: this share of the bf16 matmul peak


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
