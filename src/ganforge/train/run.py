"""Run folders: create a new one, or reopen one to resume it.

``runs/<name>/`` holds config.yaml (the resolved config), run.json (what the
data looked like), metrics.jsonl, samples/, checkpoints/ and tb/. A new run
never writes into an existing folder: an unnamed run takes the next free
``<data>-<model>[-N]``; a named one that exists is refused unless resuming.
Resuming refuses a config that differs from the saved one except in the
keys that do not change the numbers already computed (steps, log, eval,
device, threads), as Mimicry's trainer does.
"""
from __future__ import annotations

import copy
import fcntl
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Optional


from .. import __version__
from ..config import Config, build, dump, raw_from, raw_from_dict, read_yaml
from ..errors import UserError
from ..losses import LOSSES
from ..penalties import DEFAULT_EVERY, DEFAULT_WEIGHT
from . import checkpoint, precision
from .distributed import rank_device

CHANGEABLE_ON_RESUME = ("steps", "log.", "eval.", "guard.", "device", "threads", "resume", "name")


def resolve(cfg: Config) -> Config:
    """Replace every 'auto'/null default with the concrete value it stands for."""
    cfg = copy.deepcopy(cfg)
    loss = LOSSES[cfg.loss]
    if cfg.penalty.name == "auto":
        cfg.penalty.name = loss.penalty
    if loss.penalty != "none" and cfg.penalty.name != loss.penalty:
        raise UserError(f"loss={cfg.loss} includes penalty {loss.penalty}, but the config sets penalty.name="
                        f"{cfg.penalty.name}: add penalty={loss.penalty}, or use loss=wasserstein with your penalty")
    if cfg.penalty.name != "none" and cfg.penalty.weight is None:
        cfg.penalty.weight = DEFAULT_WEIGHT[cfg.penalty.name]
    if cfg.penalty.every is None:
        cfg.penalty.every = DEFAULT_EVERY.get(cfg.penalty.name, 1)
    if cfg.clip is None:
        cfg.clip = loss.clip or 0.0
    cfg.precision = precision.resolve(cfg.precision, rank_device(cfg.device))
    return cfg


def default_name(cfg: Config) -> str:
    data = cfg.data.name
    if ":" in data:
        data = Path(data.split(":", 1)[1].rstrip("/")).name or data.split(":", 1)[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{data}-{cfg.model.name}").strip("-.") or "run"


def flat_keys(d: dict, prefix: str = "") -> dict:
    """A nested config dict as {"optim.d.lr": value, ...}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_keys(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def sample_files(run_dir: Path, suffix: str = ".png") -> list[tuple[int, Path]]:
    """(step, path) of the run's samples/step-N files of one suffix (.png grids, .npz arrays), by step."""
    found = []
    for p in (Path(run_dir) / "samples").glob(f"step-*{suffix}"):
        m = re.fullmatch(r"step-(\d+)" + re.escape(suffix), p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def prune_samples(run_dir: Path, keep: Optional[int]) -> int:
    """Delete all but the newest ``keep`` sample dumps (step-N.png and step-N.npz) of a run; how many files."""
    if keep is None:
        return 0
    files = sample_files(run_dir, ".png") + sample_files(run_dir, ".npz")
    newest = set(sorted({s for s, _ in files})[-keep:])
    gone = [p for s, p in files if s not in newest]
    for p in gone:
        p.unlink(missing_ok=True)
    return len(gone)


def check_resumable(saved: Config, wanted: Config, run_dir: Path) -> None:
    a, b = flat_keys(saved.to_dict()), flat_keys(wanted.to_dict())
    changed = [k for k in sorted(set(a) | set(b))
               if a.get(k) != b.get(k) and not k.startswith(CHANGEABLE_ON_RESUME)]
    if changed:
        k = changed[0]
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise UserError(f"cannot resume {run_dir} with a changed config: {k} was {a.get(k)!r}, now {b.get(k)!r}{more}; "
                        f"only steps, log.*, eval.*, guard.*, device and threads may change")


def write_config(cfg: Config, run_dir: Path) -> None:
    header = f"# ganforge {__version__}: the resolved config of run {run_dir.name}\n"
    checkpoint.atomic_write_bytes(dump(cfg, header).encode(), run_dir / "config.yaml")


def _saved_config(run_dir: Path) -> tuple[dict, Config]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a ganforge run folder (no config.yaml); give a folder that "
                        "ganforge train made, e.g. runs/NAME")
    saved = read_yaml(path)
    if not {"model", "data"} <= set(saved):     # ganforge writes the whole resolved config
        raise UserError(f"{path} is not the config ganforge train wrote for this run (it lacks "
                        f"{' and '.join(k for k in ('model', 'data') if k not in saved)}); restore that file: "
                        "each checkpoint keeps a copy under its key 'config'")
    raw = raw_from_dict(saved)
    return raw, build(raw)


def plan_run(preset: Optional[str], overrides: tuple, out: Path, resume: Optional[Path] = None):
    """(config, run folder, resuming?) for a train command; writes nothing."""
    out = Path(out)
    if resume is None:
        cfg = build(raw_from(preset, overrides))
        if cfg.resume:
            target = out / (cfg.name or default_name(cfg))
            if (target / "config.yaml").is_file():
                resume = target
        if resume is None:
            return _new_run(resolve(cfg), out) + (False,)
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise UserError(f"cannot resume {run_dir}: " + ("it is a file; give a run folder (RUNS/NAME, with config.yaml)"
                                                        if run_dir.exists() else "no such run folder"))
    raw, saved = _saved_config(run_dir)
    wanted = build(raw_from(preset, overrides, base=None if preset else raw))
    wanted = resolve(wanted)
    wanted.name = run_dir.name
    check_resumable(saved, wanted, run_dir)
    return wanted, run_dir, True


def _new_run(cfg: Config, out: Path) -> tuple[Config, Path]:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if cfg.name:
        if "/" in cfg.name or cfg.name in (".", ".."):
            raise UserError(f"name={cfg.name!r} must be a plain folder name (no '/')")
        run_dir = out / cfg.name
        if run_dir.exists():
            raise UserError(f"run folder {run_dir} exists; add --resume {run_dir} to continue it, or choose another name=")
    else:
        base = default_name(cfg)
        run_dir, i = out / base, 1
        while run_dir.exists():
            run_dir, i = out / f"{base}-{i}", i + 1
    cfg = copy.deepcopy(cfg)
    cfg.name = run_dir.name
    return cfg, run_dir


def create_run(cfg: Config, run_dir: Path, resuming: bool) -> RunLock:
    """Make the folder of a new run (never an existing one), lock it and write its config; resuming, only
    lock it (:func:`start` writes the config once the checkpoint has loaded)."""
    if not resuming:
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()
        except FileExistsError:
            raise UserError(f"run folder {run_dir} appeared while starting; choose another name=") from None
        except OSError as e:
            raise UserError(f"cannot create run folder {run_dir}: {e.strerror or e}") from None
    lock = hold_lock(run_dir)
    if not resuming:
        try:
            write_config(cfg, run_dir)
        except BaseException:              # e.g. a full disk: leave no half-made run folder behind
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)      # made by this call a moment ago: the lock file only
            raise
    return lock


class RunLock:
    """An exclusive flock on <run>/.lock while a process trains the run; the kernel drops it when the
    process dies, even by SIGKILL, so a stale lock never blocks a resume."""

    def __init__(self, fd: int):
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def hold_lock(run_dir: Path) -> RunLock:
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{run_dir} is being trained by another process; wait for it or stop it first") from None
    except OSError as e:                   # a file system without flock (some NFS and SMB mounts): train unlocked
        os.close(fd)
        print(f"ganforge: warning: cannot lock {run_dir} ({e.strerror or e}); a second trainer on this folder "
              "would not be refused", file=sys.stderr)
        return RunLock(None)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RunLock(fd)


def load_saved_config(run_dir: Path) -> Config:
    return _saved_config(Path(run_dir))[1]


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
    from .distributed import from_env
    from .loop import write_run_info
    cfg, run_dir, resuming = plan_run(preset, overrides, out, resume)
    d = from_env(cfg.device)
    trainer = trainer_class(cfg)(cfg, run_dir, progress)
    d.barrier()                                   # every rank has planned before the folder exists
    if d.main:
        trainer._lock = create_run(cfg, run_dir, resuming)
    d.barrier()
    try:
        trainer.resumed = resuming and trainer.resume_from_checkpoint()
        if d.main:
            if resuming:
                write_config(cfg, run_dir)
            write_run_info(trainer)
    except BaseException:
        if trainer._lock is not None:          # a refused checkpoint or a failed write: the folder stays usable
            trainer._lock.release()
            trainer._lock = None
        raise
    return trainer, resuming
