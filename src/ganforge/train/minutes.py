"""``minutes=M``: a run sized by wall time, its steps fixed once, before step 0, by timing the run's own steps.

A fixed ``steps`` took 4.7 minutes on one day of a shared 2-core CPU and 6.3 on another, and a GPU runs it in
seconds. With ``minutes`` the built trainer takes a snapshot of its state (``Trainer.state_dict``, what a
checkpoint holds), trains ``WARMUP`` steps, then timed chunks of whole lazy-regularizer intervals (always
``MIN_STEPS`` steps, then on to ``MIN_SECONDS`` unless that passes ``MAX_SHARE`` of the budget; the median
chunk gives the seconds per step), times one sample grid, one checkpoint written to a scratch folder and one
evaluation on at most ``EVAL_PROBE`` samples (scaled to ``eval.n``; a first one before it computes the real
data's statistics, which the first evaluation needs anyway), and loads the snapshot back, so step 0 starts
from the very state it would have had without the timing. Then

    steps = (budget - seconds already spent by the command - the end's work) / seconds per step

with each step planned ``SLACK`` longer than timed, the grids, checkpoints and evaluations at their intervals
spread over the steps, and the end's work the last evaluation, the first and last grids, the last checkpoint
and ``END_S`` for the report. ``steps`` goes into config.yaml with ``minutes: null`` (what was measured goes into
run.json), so every schedule is a function of a step count fixed before step 0, a resume continues that run,
and its config.yaml trains it again bit-exactly. Under ``--nproc N`` every rank takes the same steps and rank
0's figures decide. Fixing wall time rather than steps is the practice of compute-budgeted training (e.g.
Geiping & Goldstein 2023, "Cramming: training a language model on a single GPU in one day"); the timing is
this module's own.
"""
from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ..errors import UserError
from ..config import dump
from ..runs import checkpoint, folder
from . import schedules

WARMUP = 10             # untimed steps first (allocations, oneDNN's primitives, torch.compile)
MIN_STEPS = 16          # timed steps: always at least this many (StyleGAN2's lazy intervals are 4 and 16) ...
MIN_SECONDS = 3.0       # ... and then on to this long, unless that passes MAX_SHARE of the budget
MAX_SHARE = 0.05
EVAL_PROBE = 500        # samples of the timed evaluation
END_S = 3.0             # the report, the summary and the exit, after the last step (report.html 0.1-0.4 s, exit 1.2 s)
SLACK = 1.08            # steps are timed early and the machine's speed drifts: plan each step this much longer
RESIZE_AT = (0.4, 0.6, 0.7)  # at these shares of the planned steps, the steps are sized again from the run's pace ...
RESIZE_SLACK = 1.08     # ... each step of the rest planned this much longer (paces of one run differ by 10%)


def to_cpu_copy(obj):
    """A deep copy with every tensor copied to the CPU (a snapshot that costs no GPU memory)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu_copy(v) for v in obj)
    return obj


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _lazy_interval(cfg) -> int:
    """Timed steps come in whole multiples of this (the lazy R1 and path-length intervals)."""
    every = [cfg.penalty.every or 1] if cfg.penalty.name not in ("none", "auto") else [1]
    every.append(getattr(cfg.model.arch, "pl_every", 1) or 1)
    return math.lcm(*every)


def _train_steps(trainer, budget_s: float) -> tuple[int, float]:
    """Warm-up steps, then timed chunks of whole lazy intervals; (timed steps, seconds per step): the median of
    the chunks' rates, since a shared machine's interruptions only ever slow a chunk down."""
    def one():
        trainer.set_lr()
        trainer.accumulate(trainer.game.step())          # as Trainer.iteration, the log's running sums included
        trainer.step += 1
        trainer.images += trainer.cfg.batch_size
        if trainer.ema:
            trainer.ema.update(trainer.cfg.batch_size, trainer.images)
    for _ in range(WARMUP):
        one()
    unit, chunks = _lazy_interval(trainer.cfg), []
    limit = max(MIN_SECONDS, MAX_SHARE * budget_s)
    while len(chunks) * unit < MIN_STEPS or sum(chunks) < MIN_SECONDS:
        chunks.append(_timed(lambda: [one() for _ in range(unit)], trainer.device))
        if len(chunks) * unit >= MIN_STEPS and sum(chunks) >= limit:     # MIN_STEPS always: a median of few
            break
    return len(chunks) * unit, statistics.median(chunks) / unit


def measure(trainer, budget_s: float) -> dict:
    """Seconds per step and of each periodic piece of work, with the trainer put back as it was."""
    snapshot = to_cpu_copy(trainer.state_dict())
    try:
        n, per_step = _train_steps(trainer, budget_s)
        out = {"probe_steps": n, "s_per_step": per_step}
        if trainer.dist.main:
            out["grid_s"] = _timed(trainer.samples_picture, trainer.device)
            with tempfile.TemporaryDirectory() as scratch:
                out["checkpoint_s"] = _timed(lambda: checkpoint.save(Path(scratch), trainer.state_dict(), 0, 1),
                                             trainer.device)
    finally:
        trainer.precision.failed = []
        trainer.load_state_dict(snapshot, "the state before timing the steps of minutes=")
    e = trainer.cfg.eval
    with torch.random.fork_rng(devices=[trainer.device] if trainer.device.type == "cuda" else []):
        if trainer.evaluation.evaluator() is not None:        # every rank: the extraction is shared
            k = min(e.n, EVAL_PROBE)
            out["eval_first_s"] = _timed(lambda: trainer.evaluation.measure(trainer, n=k), trainer.device)  # + real stats
            out["eval_s"] = _timed(lambda: trainer.evaluation.measure(trainer, n=k), trainer.device) * e.n / k
    return trainer.dist.broadcast_object(out) if trainer.dist.active else out     # rank 0's figures decide


def _no_time(minutes: float, spent: float, end: float, per_step) -> UserError:
    step = f", at {per_step:.3g} s a step" if per_step else ""
    return UserError(f"minutes={minutes:g} leaves no time to train: the start took {spent:.0f} s and the end needs "
                     f"about {end:.0f} s{step}; give more minutes, or steps=N")


def size(trainer, started: float) -> dict:
    """Set ``trainer.cfg.steps`` from ``cfg.minutes`` (counted from ``started``, a time.time() of the command's
    start) and clear ``minutes``; what was measured, for run.json. UserError if nothing is left to train."""
    cfg = trainer.cfg
    budget = cfg.minutes * 60.0
    if not trainer.dist.active and time.time() - started + END_S >= budget:     # spent already: time nothing
        # (under --nproc the ranks decide together, from rank 0's figures, below)
        raise _no_time(cfg.minutes, time.time() - started, END_S, None)
    m = measure(trainer, budget)
    grid, ckpt, ev = m.get("grid_s", 0.0), m.get("checkpoint_s", 0.0), m.get("eval_s", 0.0)
    per_step = (SLACK * m["s_per_step"] + grid / cfg.log.samples_every + ckpt / cfg.log.checkpoint_every
                + (ev / cfg.eval.every if cfg.eval.every else 0.0))
    end = ev + 2 * grid + ckpt + END_S              # the grids of step 0 and the last step
    spent = time.time() - started
    if trainer.dist.active:
        spent = trainer.dist.broadcast_object(spent)
    steps = int((budget - spent - end) / per_step)
    if steps < 1:
        raise _no_time(cfg.minutes, spent, end, per_step)
    cfg.steps, cfg.minutes = steps, None
    trainer.progress.total = steps
    trainer.resize_plan = _next({"started": started, "budget": budget, "end": ev + grid + ckpt + END_S,
                                 "periodic": per_step - SLACK * m["s_per_step"], "shares": RESIZE_AT}, 0, 0.0, steps)
    return {"minutes": budget / 60.0, "steps": steps, "start_s": round(spent, 2), "end_s": round(end, 2),
            **{k: round(v, 5) if isinstance(v, float) else v for k, v in m.items()}}


def _next(plan: dict, step: int, train_time: float, steps: int):
    """The plan for the next sizing after ``step`` (None when no share of RESIZE_AT is left after it)."""
    shares = [f for f in plan["shares"] if int(f * steps) > step]
    if not shares:
        return None
    return {**plan, "at": int(shares[0] * steps), "shares": shares[1:], "since": (step, train_time)}


def resize(trainer) -> None:
    """At each share ``RESIZE_AT`` of the planned steps (Trainer.iteration): the steps again, from the seconds
    per step of the run so far (``train_time``) rather than the timing's early guess, so a machine that
    slowed down or sped up after the timing still ends near the budget. Only where no schedule has yet used the
    step count (the main job's learning-rate decay starts at 75% of the run: at 40% its steps may become
    anything from 53% of the plan up, at 60% from 80%, at 70% from 93%); otherwise the plan stands. config.yaml
    and run.json then say the steps that ran, so the run is, bit for bit, that config's run with ``steps``
    given. Under ``--nproc N`` rank 0's figures decide."""
    p = trainer.resize_plan
    cfg, k, old = trainer.cfg, trainer.step, trainer.cfg.steps
    # the slower of the pace since the last sizing and the pace since step 0: a machine that slowed down is
    # believed at once, one that sped up only as far as its whole run so far (an SNGAN run here ended 1% late
    # after a fast window between its sizings)
    rate = max((trainer.train_time - p["since"][1]) / (k - p["since"][0]), trainer.train_time / k)
    left = p["budget"] - (time.time() - p["started"]) - p["end"]
    new = k + max(1, int(left / (RESIZE_SLACK * rate + p["periodic"])))
    if trainer.dist.active:
        new, rate = trainer.dist.broadcast_object((new, rate))
    done = {"at": k, "s_per_step": round(rate, 5)}
    if new == old or not schedules.same_so_far(trainer.schedules, k, old, new):
        done.update(kept=old, would_be=new)
    else:
        cfg.steps = trainer.progress.total = new
        done["from"] = old
        trainer.sized["steps"] = new
        if trainer.dist.main:
            folder.write_config(trainer.run_dir, dump(cfg))
    trainer.sized["resized"] = [*trainer.sized.get("resized", []), done]
    trainer.resize_plan = _next(p, k, trainer.train_time, cfg.steps)
    if trainer.dist.main:
        folder.write_info(trainer.run_dir, {**folder.read_info_if_any(trainer.run_dir), "minutes": trainer.sized})
