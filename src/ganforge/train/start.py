"""Starting a run: the config planned and checked, the run folder made or reopened, the trainer built.

``plan_run`` decides everything without writing (the config completed,
precision chosen for this machine, a new folder's name or the folder to
resume, a changed config refused); ``start`` builds the trainer, makes or
locks the folder and loads the newest checkpoint; ``train`` is the
notebook's one call (``ganforge.train``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..api import load_run, saved_config
from ..config import Config, build, complete, dump, raw_from
from ..errors import UserError
from ..runs import folder
from . import precision
from .distributed import from_env, rank_device


def finish_config(cfg: Config) -> Config:
    """The config a run trains with: completed (config.complete) and its precision chosen for this machine."""
    cfg = complete(cfg)
    cfg.precision = precision.resolve(cfg.precision, rank_device(cfg.device))
    return cfg


def plan_run(preset: Optional[str], overrides: tuple, out: Path, resume: Optional[Path] = None):
    """(config, run folder, resuming?) for a train command; writes nothing."""
    out = Path(out)
    if resume is None:
        cfg = build(raw_from(preset, overrides))
        if cfg.resume:
            target = out / (cfg.name or folder.default_name(cfg.data.name, cfg.model.name))
            if (target / "config.yaml").is_file():
                resume = target
        if resume is None:
            cfg = finish_config(cfg)                 # a copy: config.complete copies
            run_dir = folder.new_run_dir(out, cfg.name, cfg.data.name, cfg.model.name)
            cfg.name = run_dir.name
            return cfg, run_dir, False
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise UserError(f"cannot resume {run_dir}: " + ("it is a file; give a run folder (RUNS/NAME, with config.yaml)"
                                                        if run_dir.exists() else "no such run folder"))
    raw, saved = saved_config(run_dir)
    wanted = finish_config(build(raw_from(preset, overrides, base=None if preset else raw)))
    wanted.name = run_dir.name
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


def start(preset: Optional[str], overrides: tuple, out: Path, resume: Optional[Path] = None, progress=None):
    """A trainer ready to run: config checked, data and nets built, then the folder made or reopened.

    Under torchrun every rank checks the config and plans the same folder
    before rank 0 creates it; the others then open it as rank 0 left it."""
    cfg, run_dir, resuming = plan_run(preset, overrides, out, resume)
    d = from_env(cfg.device)
    trainer = trainer_class(cfg)(cfg, run_dir, progress)
    d.barrier()                                   # every rank has planned before the folder exists
    if d.main:
        trainer.lock = folder.create(run_dir, dump(cfg), resuming)
    d.barrier()
    try:
        trainer.resumed = resuming and trainer.resume_from_checkpoint()
        if d.main:
            if resuming:
                folder.write_config(run_dir, dump(cfg))
            folder.write_info(run_dir, trainer.run_info())
    except BaseException:
        trainer.release_lock()                    # a refused checkpoint or a failed write: the folder stays usable
        raise
    return trainer, resuming


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

    ``config`` is a preset name or YAML path (None: the main job's defaults);
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
