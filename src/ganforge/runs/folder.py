"""A run folder on disk: its name, its lock, its config.yaml and run.json, its sample files.

``runs/<name>/`` holds config.yaml (the resolved config), run.json (what the
data looked like), metrics.jsonl (runs.metrics_log), samples/step-N.png and
.npz, checkpoints/ (runs.checkpoint), tb/, eval.json and report.html. A new
run never writes into an existing folder: an unnamed run takes the next free
``<data>-<model>[-N]``; a named one that exists is refused unless resuming.
Resuming refuses a config that differs from the saved one except in the
keys that do not change the numbers already computed (steps, log, eval,
guard, device, threads), as Mimicry's trainer does. Every file goes through
runs.atomic; readers of runs (report, serve, eval, export, the API) use this
module and never the training package.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Optional

import yaml

from ..errors import UserError
from ..schema import read_yaml
from ..version import __version__
from . import atomic

CHANGEABLE_ON_RESUME = ("steps", "log.", "eval.", "guard.", "device", "threads", "resume", "name")


def flat_keys(d: dict, prefix: str = "") -> dict:
    """A nested config dict as {"optim.d.lr": value, ...}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_keys(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def default_name(data: str, model: str) -> str:
    """The folder name of an unnamed run: ``<data>-<model>`` (a folder or file dataset by its base name)."""
    if ":" in data:
        data = Path(data.split(":", 1)[1].rstrip("/")).name or data.split(":", 1)[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{data}-{model}").strip("-.") or "run"


def new_run_dir(out: Path, name: Optional[str], data: str, model: str) -> Path:
    """The folder a new run takes under ``out``: ``name`` (refused if it exists) or the next free default."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if name:
        if "/" in name or name in (".", ".."):
            raise UserError(f"name={name!r} must be a plain folder name (no '/')")
        run_dir = out / name
        if run_dir.exists():
            raise UserError(f"run folder {run_dir} exists; add --resume {run_dir} to continue it, or choose another name=")
        return run_dir
    base = default_name(data, model)
    run_dir, i = out / base, 1
    while run_dir.exists():
        run_dir, i = out / f"{base}-{i}", i + 1
    return run_dir


def check_resumable(saved: dict, wanted: dict, run_dir: Path) -> None:
    """Refuse to resume with a config (nested dicts) that changes a key other than CHANGEABLE_ON_RESUME."""
    a, b = flat_keys(saved), flat_keys(wanted)
    changed = [k for k in sorted(set(a) | set(b))
               if a.get(k) != b.get(k) and not k.startswith(CHANGEABLE_ON_RESUME)]
    if changed:
        k = changed[0]
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise UserError(f"cannot resume {run_dir} with a changed config: {k} was {a.get(k)!r}, now {b.get(k)!r}{more}; "
                        f"only steps, log.*, eval.*, guard.*, device and threads may change")


# ---------------------------------------------------------------- config.yaml and run.json

def write_config(run_dir: Path, text: str) -> None:
    """config.yaml: the resolved config as YAML ``text``, under a header naming the version and the run."""
    atomic.write_text(run_dir / "config.yaml", f"# ganforge {__version__}: the resolved config of run {run_dir.name}\n"
                      + text)


def read_config(run_dir: Path) -> dict:
    """The saved config.yaml of a run as a plain dict; a folder without one, or a cut-down one, is refused."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a ganforge run folder (no config.yaml); give a folder that "
                        "ganforge train made, e.g. runs/NAME")
    saved = read_yaml(path)
    if not {"model", "data"} <= set(saved):     # ganforge writes the whole resolved config
        raise UserError(f"{path} is not the config ganforge train wrote for this run (it lacks "
                        f"{' and '.join(k for k in ('model', 'data') if k not in saved)}); restore that file: "
                        "each checkpoint keeps a copy under its key 'config'")
    return saved


def read_config_text(run_dir: Path) -> tuple[str, dict]:
    """config.yaml as written and as a dict (what a page shows); a folder without one is refused."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a ganforge run folder (no config.yaml)")
    text = path.read_text()
    return text, yaml.safe_load(text) or {}


def write_info(run_dir: Path, info: dict) -> None:
    """run.json: what the data looked like (shape, kind, classes, counts) and the version."""
    atomic.write_json(run_dir / "run.json", {"version": __version__, **info}, indent=1)


def read_info(run_dir: Path) -> dict:
    """run.json, checked to hold the data's shape."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no run.json: the run never started")
    try:
        info = json.loads(path.read_text())
        tuple(info["shape"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is damaged (not the JSON with the data's shape that ganforge writes); "
                        f"ganforge train --resume {run_dir} writes it again") from None
    return info


def read_info_if_any(run_dir: Path) -> dict:
    """run.json as it is, or {} (pages show what there is)."""
    path = Path(run_dir) / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# ---------------------------------------------------------------- samples

def sample_files(run_dir: Path, suffix: str = ".png") -> list[tuple[int, Path]]:
    """(step, path) of the run's samples/step-N files of one suffix (.png grids, .npz arrays), by step."""
    found = []
    for p in (Path(run_dir) / "samples").glob(f"step-*{suffix}"):
        m = re.fullmatch(r"step-(\d+)" + re.escape(suffix), p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def write_samples(run_dir: Path, step: int, png: bytes, arrays: dict, keep: Optional[int]) -> None:
    """samples/step-N.npz (the arrays) and samples/step-N.png (the grid), then only the newest ``keep`` dumps."""
    folder = Path(run_dir) / "samples"
    folder.mkdir(exist_ok=True)
    stem = folder / f"step-{step:07d}"
    atomic.save_npz(stem.with_suffix(".npz"), **arrays)
    atomic.write_bytes(stem.with_suffix(".png"), png)
    prune_samples(run_dir, keep)


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


# ---------------------------------------------------------------- making and locking

class RunLock:
    """An exclusive flock on <run>/.lock while a process trains the run; the kernel drops it when the
    process dies, even by SIGKILL, so a stale lock never blocks a resume."""

    def __init__(self, fd: Optional[int]):
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


def create(run_dir: Path, config_text: str, resuming: bool) -> RunLock:
    """Make the folder of a new run (never an existing one), lock it and write its config; resuming, only
    lock it (the config is written again once the checkpoint has loaded)."""
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
            write_config(run_dir, config_text)
        except BaseException:              # e.g. a full disk: leave no half-made run folder behind
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)      # made by this call a moment ago: the lock file only
            raise
    return lock


def open_for_training(run_dir: Path) -> None:
    """Before a run (new or resumed) trains: checkpoints/ exists and temporaries of killed writers are gone."""
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    for sub in ("", "checkpoints", "samples"):          # "": config.yaml, run.json, metrics.jsonl
        atomic.remove_stale(run_dir / sub)
