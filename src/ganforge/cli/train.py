"""``ganforge train``: train a run (a new folder under --out, or --resume one), on one process or N (torchrun).

The end of a run rewrites its report.html (report.write_report) and prints a
short summary (steps and time, the last evaluation and its extractor, the
paths of the report, the last samples and the latest checkpoint, and the
command that samples from it); a stop by Ctrl-C or SIGTERM writes a checkpoint and
prints the command that continues it.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from ..errors import UserError
from .common import add_config_items, add_insist, apply_insist, count, split_args
from .report import report_after_training


def add_parser(sub):
    t = sub.add_parser("train", help="train a GAN (no arguments: DCGAN on the embedded MNIST digits)")
    add_config_items(t)
    t.add_argument("--out", default="runs", help="parent folder of run folders (default: runs)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    t.add_argument("--nproc", type=count(1, 1024), default=1,
                   help="train data-parallel on N processes (launches torchrun; batch_size is the global batch)")
    add_insist(t)
    return t


def run(a) -> int:
    import os
    t0 = getattr(a, "started", None) or time.time()       # the process's start (cli.process_started)

    from ..train import precision_auto
    from ..train.start import plan_run, start
    apply_insist(a)
    if a.nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {a.nproc}")
    preset, overrides = split_args(a.items)
    if a.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from ..train.distributed import Dist, check_batch, gpus_for
        cfg, _, _ = plan_run(preset, tuple(overrides), Path(a.out), Path(a.resume) if a.resume else None)
        check_batch(cfg.batch_size, Dist(world=a.nproc), getattr(cfg.model.arch, "pack", 1))   # mistakes: one line here
        gpus_for(cfg.device, a.nproc)
        return _torchrun(a.nproc, a.argv)
    trainer, resuming = start(preset, tuple(overrides), Path(a.out), Path(a.resume) if a.resume else None,
                              started=getattr(a, "started", None))
    cfg, run_dir = trainer.cfg, trainer.run_dir
    if resuming and trainer.dist.main:
        trainer.progress.say(f"resuming {run_dir} from step {trainer.step}" if trainer.resumed
                             else f"{run_dir} has no checkpoint yet: starting it from step 0")
    elif trainer.dist.main:
        trainer.progress.say(f"run {run_dir}: {cfg.model.name} on {cfg.data.name} ({len(trainer.data)} samples), "
                             f"loss {cfg.loss}, {cfg.steps} steps{_sized(trainer)}, {trainer.device} {cfg.precision}"
                             + (f", {trainer.dist.world} processes" if trainer.dist.active else "")
                             + (f" ({precision_auto.why(trainer.precision_choice)})" if trainer.precision_choice else ""))
    result = trainer.run()
    if trainer.dist.main:
        report_after_training(run_dir)
    quiet = os.environ.get("GANFORGE_LAUNCHED") == "1"    # under --nproc: the launcher reports the stop
    if not trainer.dist.main:
        rc = 0 if quiet or not result["stopped"] else 130
    elif result["stopped"]:
        again = f" --nproc {trainer.dist.world}" if trainer.dist.active else ""
        print(f"stopped at step {result['step']}; checkpoint written. Continue with: ganforge train --resume {run_dir}"
              f"{again}", file=sys.stderr)
        rc = 0 if quiet else 130
    else:
        print(summary(trainer, result["step"], time.time() - t0))
        rc = 0
    if trainer.dist.active:
        trainer.dist.leave(rc)
    return rc


def _sized(trainer) -> str:
    """How minutes= chose the steps, for the run's first line."""
    m = getattr(trainer, "sized", None)
    return f" (to fill {m['minutes']:g} minutes at {1000 * m['s_per_step']:.0f} ms a step)" if m else ""


def summary(trainer, step: int, wall: float) -> str:
    """The end of a finished run in a few lines: steps and time, the last evaluation with its extractor, and the
    paths of the report, the last sample grid and the latest checkpoint, with the command that samples from it."""
    from ..metrics import registry
    from ..runs.checkpoint import list_checkpoints
    from ..runs.metrics_log import read_metrics
    run_dir = trainer.run_dir
    lines = [f"done: {run_dir} at step {step} ({_clock(wall)} in all, {_clock(trainer.train_time)} training)"]
    keys = registry.table_keys()
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if any(k in r for k in keys)]
    if rows:
        space = trainer.evaluation.described()
        shown = ", ".join(f"{k} {_num(rows[-1][k])}" for k in keys if isinstance(rows[-1].get(k), (int, float)))
        lines.append(f"  evaluation at step {rows[-1]['step']}" + (f" ({space})" if space else "") + f": {shown}")
    found = [("report", run_dir / "report.html"),
             ("samples", max((run_dir / "samples").glob("step-*.png"), default=None)),
             ("checkpoint", (list_checkpoints(run_dir / "checkpoints") or [None])[-1])]
    lines += [f"  {name + ':':11s} {path}" for name, path in found if path is not None and Path(path).is_file()]
    lines.append(f"  sample from it: ganforge sample {run_dir} -n 64 --out samples.png")
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _torchrun(n: int, argv: list[str]) -> int:
    """Relaunch this train command as n processes under torchrun (gloo on CPUs, NCCL on GPUs)."""
    import os
    import subprocess
    rest, skip = [], False
    for arg in argv:            # drop --nproc N / --nproc=N; torchrun's workers get the rest
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "ganforge", *rest]
    env = dict(os.environ, GANFORGE_LAUNCHED="1")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    # torchrun runs in a session of its own, so Ctrl-C reaches only this process, which passes it to the
    # workers alone: they stop at one step, write a checkpoint and exit 0, and torchrun ends quietly
    # (a signal to torchrun itself would end in its traceback).
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    stopped = []

    def forward(signum, frame):
        stopped.append(signum)
        for pid in _children(proc.pid):
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 130 if stopped and code == 0 else code


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    import os
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out
