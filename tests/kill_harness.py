"""Kill anywhere: the harness that SIGKILLs a run at random moments and inside its writes, and resumes it.

A kill at a random moment mostly lands in a training step, because steps are
where the time goes; the moments that break runs in practice are rarer: a
checkpoint or a sample file half written. The one atomic write
(ganforge.runs.atomic) has pause points for them: with
``GANFORGE_FAULT_PAUSE=checkpoints:N`` (or ``samples:N``) the N-th file
written into that folder of the run stops halfway and says so on stderr, so
the harness can kill it there.

:func:`kill_anywhere` trains a run straight through, then trains it again
killed with SIGKILL ``kills`` times (during steps at random moments, during
sample writing, during checkpoint writing) and resumed each time. After
every kill it checks that the newest checkpoint loads (no fallback to an
older one), that no more than ``log.checkpoint_every`` logged steps were
lost, and at the end that metrics.jsonl and every tensor of the final
checkpoint equal the uninterrupted run's, bit for bit (the CPU is
deterministic). Used by tests/test_faults.py (a few kills) and
benchmarks/faults.py (20 and more); it lives with the tests, not in the
package. The atomic-rename discipline it tests is SQLite's and every careful
checkpointer's; the harness follows the spirit of crash-consistency testing
such as ALICE (Pillai et al., OSDI 2014).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ganforge.runs.atomic import ENV, ENV_S


def _cmd(*args) -> list:
    return [sys.executable, "-m", "ganforge", *map(str, args)]


def _last_logged(run: Path) -> int:
    from ganforge.runs.metrics_log import read_metrics
    lines = read_metrics(run / "metrics.jsonl")
    return int(lines[-1]["step"]) if lines else 0


def _inode(run: Path):
    try:
        return (run / "metrics.jsonl").stat().st_ino
    except FileNotFoundError:
        return None


def _watch(proc, lines: list) -> threading.Thread:
    def read():
        for line in proc.stderr:
            lines.append(line)
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def kill_anywhere(work: Path, preset: str, overrides: list, kills: int = 20, seed: int = 0,
                  kinds=("step", "samples", "checkpoints"), log: Callable = print, timeout: float = 300) -> dict:
    """Run the experiment described in the module doc; returns a report (raises AssertionError on a failure)."""
    import torch

    from ganforge.runs.checkpoint import list_checkpoints, load, step_of
    work = Path(work)
    opts = dict(o.split("=", 1) for o in overrides)
    steps, every = int(opts["steps"]), int(opts["log.checkpoint_every"])
    log_every, samples_every = int(opts.get("log.every", 50)), int(opts.get("log.samples_every", 500))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop(ENV, None)
    t0 = time.time()
    r = subprocess.run(_cmd("train", preset, *overrides, "name=straight", "--out", work), env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    straight_s = time.time() - t0
    run, rng = work / "killed", random.Random(seed)
    args = ["train", preset, *overrides, "name=killed", "--out", work]
    record = []
    while len(record) < kills:
        kind = kinds[len(record) % len(kinds)]
        start = max(step_of(c) for c in list_checkpoints(run / "checkpoints")) if (run / "checkpoints").is_dir() \
            and list_checkpoints(run / "checkpoints") else 0
        left = steps - start
        e = dict(env, **{ENV_S: "30"})
        if kind == "checkpoints":
            if left <= every:
                kind = "step"
            else:
                e[ENV] = f"checkpoints:{rng.randint(1, max(1, min(3, left // every - 1)))}"
        if kind == "samples":
            if left <= samples_every:
                kind = "step"
            else:
                e[ENV] = f"samples:{rng.randint(1, max(1, min(2, left // samples_every - 1)))}"
        if left <= log_every:
            break                               # too close to the end to interrupt
        lines: list = []
        before = _inode(run)
        proc = subprocess.Popen(_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=e)
        reader = _watch(proc, lines)
        deadline = time.time() + timeout
        where = None
        if kind == "step":                      # wait until it trains: metrics.jsonl rewritten, then a new line
            while time.time() < deadline and proc.poll() is None and (_inode(run) == before or _last_logged(run) <= start):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            while time.time() < deadline and proc.poll() is None and not any("ganforge-fault-pause" in x for x in lines):
                time.sleep(0.005)
            where = next((x.split(":", 1)[1].strip() for x in lines if "ganforge-fault-pause" in x), None)
            assert where, f"kill {len(record) + 1}: the run never reached its {kind} pause; stderr: {''.join(lines)[-500:]}"
        if proc.poll() is not None:
            reader.join(5)
            assert proc.returncode == 0, "".join(lines)[-2000:]
            break                               # it finished before the kill: nothing left to interrupt
        logged = _last_logged(run)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(5)
        ckpts = list_checkpoints(run / "checkpoints")
        newest = step_of(ckpts[-1]) if ckpts else 0
        if ckpts:
            state = load(ckpts[-1])                             # the newest loads: no fallback needed
            assert int(state["step"]) == newest
        lost = logged - newest
        assert lost <= every, f"kill {len(record) + 1}: {lost} logged steps lost (checkpoint_every={every})"
        torn = sorted(p.name for folder in ("checkpoints", "samples") for p in (run / folder).glob(".*.tmp-*"))
        if kind != "step":
            assert torn, f"kill {len(record) + 1} during {where}: no half-written temporary file was left"
        record.append({"kind": kind, "where": where, "logged_step": logged, "checkpoint": newest, "lost": lost,
                       "torn": torn})
        log(f"kill {len(record):2d} {kind:<11} {where or '':<32} logged step {logged:5d}, newest checkpoint "
            f"{newest:5d} (lost {lost}){', torn: ' + ', '.join(torn) if torn else ''}")
        args = ["train", "--resume", run]
    r = subprocess.run(_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    stale = [p for folder in ("checkpoints", "samples") for p in (run / folder).glob(".*.tmp-*")]
    assert not stale, f"temporary files left after the last resume: {stale}"
    a, b = _numbers(work / "straight"), _numbers(run)
    assert a == b, "metrics.jsonl differs from the uninterrupted run's"
    sa = torch.load(list_checkpoints(work / "straight" / "checkpoints")[-1], weights_only=True)
    sb = torch.load(list_checkpoints(run / "checkpoints")[-1], weights_only=True)
    differ = _first_difference(sa, sb)
    assert differ is None, f"final checkpoint differs from the uninterrupted run's at {differ}"
    return {"kills": len(record), "record": record, "straight_s": round(straight_s, 1),
            "max_lost": max((x["lost"] for x in record), default=0), "metrics_lines": len(a),
            "kinds": {k: sum(x["kind"] == k for x in record) for k in kinds}}


SKIP = ("time", "version", "config")


def _numbers(run: Path) -> list:
    from ganforge.runs.metrics_log import WALL_CLOCK_KEYS, read_metrics
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_KEYS} for r in read_metrics(run / "metrics.jsonl")]


def _first_difference(a, b, path: str = "state") -> Optional[str]:
    import torch
    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return None if same else path
    if isinstance(a, dict):
        if set(a) != set(b):
            return path
        for k in a:
            if k in SKIP and path == "state":
                continue
            d = _first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return path
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _first_difference(x, y, f"{path}[{i}]"))), None)
    return None if a == b else path
