"""Starting a run: the config planned and checked, the run folder made or reopened, the trainer built.

``plan_run`` decides everything without writing (the config completed,
precision chosen for this machine, a new folder's name or the folder to
resume, a changed config refused); ``start`` builds the trainer, makes or
locks the folder and loads the newest checkpoint; ``train`` is the
notebook's one call (``ganforge.train``).

A folder left by a start killed before its config.yaml was whole starts
again (by name, or with ``--resume`` and a config); a resume that finds no
checkpoint while metrics.jsonl goes past the first one is refused rather
than erased; run.json records the device type and CPU threads, and a resume
that changes either says in one line that it will not be bit-exact. A run
with ``init=`` takes another run's weights at step 0 (train.transfer),
before its folder exists; a resume loads its own checkpoint instead.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, Union

from ..api import load_run, saved_config
from ..config import Config, build, complete, dump, job_preset, raw_from
from ..errors import UserError
from ..runs import folder
from ..runs.metrics_log import scan
from . import minutes, precision, schedules, transfer
from .distributed import from_env, rank_device


def finish_config(cfg: Config) -> Config:
    """The config a run trains with: completed (config.complete) and its precision chosen for this machine."""
    cfg = complete(cfg)
    cfg.precision = precision.resolve(cfg.precision, rank_device(cfg.device))
    return cfg


def run_label(job: Optional[str], overrides: tuple = ()) -> Optional[str]:
    """The preset that names an unnamed run's folder (runs.folder.default_name): the job's preset (job_preset),
    unless the overrides pick the data or the family (``data=folder:my300`` names it ``my300-dcgan``)."""
    own = raw_from(None, overrides)
    return None if any(isinstance(own.get(s), dict) and "name" in own[s] for s in ("data", "model")) else job


def plan_run(preset: Optional[str], overrides: tuple, out: Path, resume: Optional[Path] = None):
    """(config, run folder, resuming?) for a train command; writes nothing."""
    out = Path(out)
    if resume is None:
        job = job_preset(preset, overrides)
        cfg, label = build(raw_from(job, overrides)), run_label(job, overrides)
        if cfg.name:
            folder.check_name(cfg.name)
        if cfg.resume:
            target = out / (cfg.name or folder.default_name(cfg.data.name, cfg.model.name, label))
            if (target / "config.yaml").is_file():
                resume = target
        if resume is None:
            cfg = finish_config(cfg)                 # a copy: config.complete copies
            run_dir = folder.new_run_dir(out, cfg.name, cfg.data.name, cfg.model.name, label)
            cfg.name = run_dir.name
            return cfg, run_dir, False
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise UserError(f"cannot resume {run_dir}: " + ("it is a file; give a run folder (RUNS/NAME, with config.yaml)"
                                                        if run_dir.exists() else "no such run folder"))
    if folder.unfinished_start(run_dir):         # killed before its config.yaml was whole: start it again
        if not preset:
            raise UserError(f"{run_dir} was left by a start stopped before its config.yaml was written: there is "
                            "nothing to resume; start it again with its config, e.g. ganforge train CONFIG "
                            f"[key=value ...] --resume {run_dir}")
        cfg = finish_config(build(raw_from(preset, overrides)))
        cfg.name = run_dir.name
        return cfg, run_dir, False
    folder.check_layout(run_dir)
    raw, saved = saved_config(run_dir)
    wanted = finish_config(build(raw_from(preset, overrides, base=None if preset else raw)))
    wanted.name = run_dir.name
    if wanted.precision == "auto":                # measured when the run started: a resume keeps that choice
        wanted.precision = saved.precision
    if wanted.minutes is not None:                # so were the steps of minutes=M (config.yaml has them)
        wanted.steps, wanted.minutes = saved.steps, saved.minutes
    folder.check_resumable(saved.to_dict(), wanted.to_dict(), run_dir)
    return wanted, run_dir, True


def trainer_class(cfg: Config):
    """The core loop, or its image-to-image form for the pix2pix and cyclegan families."""
    from ..nets import FAMILIES
    from .loop import Trainer
    if FAMILIES[cfg.model.name].game == "gan":
        return Trainer
    from .translate import TranslationTrainer
    return TranslationTrainer


def start(preset: Optional[str], overrides: tuple, out: Path, resume: Optional[Path] = None, progress=None,
          started: Optional[float] = None):
    """A trainer ready to run: config checked, data and nets built, then the folder made or reopened. ``started``:
    the time.time() when the command began, from which ``minutes=`` counts (None: now).

    Under torchrun every rank checks the config and plans the same folder
    before rank 0 creates it; the others then open it as rank 0 left it."""
    cfg, run_dir, resuming = plan_run(preset, overrides, out, resume)
    d = from_env(cfg.device)
    trainer = trainer_class(cfg)(cfg, run_dir, progress)
    init = None if resuming else transfer.start_from(trainer)     # init=: weights of another run, at step 0 only
    trainer.sized = sized = minutes.size(trainer, started or time.time()) if cfg.minutes and not resuming else None
    d.barrier()                                   # every rank has planned before the folder exists
    if d.main:
        trainer.lock = folder.create(run_dir, dump(cfg), resuming)
    d.barrier()
    try:
        trainer.resumed = resuming and trainer.resume_from_checkpoint()
        if resuming and not trainer.resumed:
            refuse_lost_checkpoints(run_dir)
            init = transfer.start_from(trainer)
        if d.main:
            if resuming:
                planned = folder.read_config(run_dir).get("steps")
                folder.write_config(run_dir, dump(cfg))
            before = folder.read_info_if_any(run_dir)
            kept = {k: before[k] for k in ("precision_auto",) if k in before}     # the choice made at the start
            folder.write_info(run_dir, {**kept, **trainer.run_info(), **machine(trainer), **transfer.record(init, before),
                                        **({"minutes": sized} if sized else {})})
            if trainer.resumed:
                warn_inexact(run_dir, before, machine(trainer), trainer.step)
                warn_rescheduled(run_dir, trainer, planned)
    except BaseException:
        trainer.release_lock()                    # a refused checkpoint or a failed write: the folder stays usable
        raise
    return trainer, resuming


def refuse_lost_checkpoints(run_dir: Path) -> None:
    """A resume that finds no checkpoint starts from step 0 and cuts metrics.jsonl back to it. That is what a
    kill before the first checkpoint asks for; a log that goes past the first checkpoint (of the config the
    run last trained with) says the checkpoints were deleted, and is refused rather than erased."""
    every = folder.read_config(run_dir).get("log", {})
    every = every.get("checkpoint_every") if isinstance(every, dict) else None
    rows, _ = scan(run_dir / "metrics.jsonl")
    last = max((r["step"] for r in rows), default=0)
    if isinstance(every, int) and last > every:
        raise UserError(f"cannot resume {run_dir}: it has no checkpoint, but its metrics.jsonl logs steps up to "
                        f"{last}, past the first checkpoint (step {every}): checkpoints/ was deleted or emptied, and "
                        "starting again from step 0 would erase those lines; train a new run instead (another "
                        "name=), or put the checkpoints back")


def machine(trainer) -> dict:
    """What run.json records of the machine, beside the data: the device type and torch's CPU threads."""
    import torch
    return {"device": trainer.device.type, "threads": torch.get_num_threads()}


def warn_inexact(run_dir: Path, before: dict, now: dict, step: int) -> None:
    """One line when a resume changes what keeps it bit-exact with a run that never stopped: the device
    type, or on the CPU the number of threads (matrix products and reductions split by thread)."""
    then_dev, then_n = before.get("device"), before.get("threads")
    if isinstance(then_dev, str) and then_dev != now["device"]:
        what = f"on {then_dev} until step {step} and now on {now['device']}", f"device={then_dev}"
    elif now["device"] == "cpu" and type(then_n) is int and then_n != now["threads"]:
        what = (f"on {then_n} CPU thread{'s' if then_n != 1 else ''} until step {step} and now uses "
                f"{now['threads']}", f"threads={then_n}")
    else:
        return
    print(f"ganforge: warning: {run_dir} trained {what[0]}: the resumed run will not match a run that never stopped "
          f"to the bit (resume with {what[1]} to keep it exact)", file=sys.stderr)


def warn_rescheduled(run_dir: Path, trainer, planned) -> None:
    """One line when a resume changes ``steps`` and a schedule drawn over the run's length (``schedule.lr:
    linear:0,start=0.75``) already took values that depend on it: the run is then neither the old plan nor a
    run of the new length from the start."""
    steps, k = trainer.cfg.steps, trainer.step
    if type(planned) is not int or planned == steps:
        return
    names = ", ".join(f"schedule.{n}" for n, s in trainer.schedules.items()
                      if not schedules.same_so_far({n: s}, k, planned, steps))
    if not names:
        return
    print(f"ganforge: warning: {run_dir} ran its first {k} steps on the {names} of a run of {planned} steps and goes on "
          f"with those of a run of {steps} steps: it will equal neither (resume with steps={planned} to keep its plan)",
          file=sys.stderr)


def _overrides(kwargs: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in kwargs.items():
        if isinstance(v, dict):
            out += _overrides(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}={'null' if v is None else v}")
    return out


def train(config: Optional[str] = None, out: Union[str, Path] = "runs", resume: Union[str, Path, bool, None] = None,
          progress: str = "auto", **overrides):
    """Train a run and return its handle (a ganforge.api.Run).

    ``config`` is a preset name or YAML path (None: the main job, see config.job_preset);
    ``overrides`` are config keys, nested dicts or dotted strings via
    ``**{"optim.g.lr": 1e-4}``. ``resume`` is a run folder to continue, or
    True to continue the named run if it exists (as ``resume=true``).
    """
    if isinstance(resume, bool):                       # resume=True: the named run, if it exists
        overrides["resume"], resume = resume, None
    trainer, _ = start(config, tuple(_overrides(overrides)), Path(out), Path(resume) if resume else None,
                       progress=None if progress == "auto" else progress)
    trainer.run()
    return load_run(trainer.run_dir)
