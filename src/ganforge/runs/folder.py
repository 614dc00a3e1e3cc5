"""A run folder on disk: its name, its lock, its config.yaml and run.json, its sample files.

``runs/<name>/`` holds config.yaml (the resolved config), run.json (what the
data looked like), metrics.jsonl (runs.metrics_log), samples/step-N.png and
.npz, checkpoints/ (runs.checkpoint), tb/, eval.json and report.html. A new
run never writes into an existing folder: an unnamed run takes the next free
``<preset>[-N]`` (``runs/mnist-main`` for ``ganforge train``), or
``<data>-<model>[-N]`` where the command line picks the data or the family;
a named one that exists is refused unless resuming.
Resuming refuses a config that differs from the saved one except in the
keys that do not change the numbers already computed (steps, log, eval,
guard, device, threads), as Mimicry's trainer does. Every file goes through
runs.atomic; readers of runs (report, serve, eval, export, the API) use this
module and never the training package.

A run's name is a plain folder name (NAME_RULE). A folder with nothing but
``.lock`` and config.yaml's temporary file is what a start killed before its
config.yaml was whole leaves (``unfinished_start``): the next start of that
name takes it over. Files of the run that are FIFOs, folders or links where
ganforge keeps regular files (or the reverse) are one line (``check_layout``),
never a hang, a traceback or a deletion.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import sys
from pathlib import Path
from typing import Optional


from ..errors import UserError
from ..schema import load_yaml_text, read_yaml
from ..version import __version__
from . import atomic, regular

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


NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
NAME_WORDS = ("letters, digits, '.', '_' and '-', beginning with a letter, a digit or '_', at most 100 "
              "characters")


def check_name(name: str) -> None:
    """Refuse a run name that is not a plain folder name (a newline, a NUL, a '/', 300 characters, '..')."""
    if not NAME_RULE.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:36] + "...'"
        raise UserError(f"name={shown} is not a run name: use {NAME_WORDS}")


def default_name(data: str, model: str, preset: Optional[str] = None) -> str:
    """The folder name of an unnamed run: the preset's name when one is given (``mnist-main``, ``mnist-cgan``; a YAML
    file by its stem), else ``<data>-<model>`` (a folder or file dataset by its base name)."""
    if preset:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(preset).stem).strip("-.")[:90] or "run"
    if ":" in data:
        data = Path(data.split(":", 1)[1].rstrip("/")).name or data.split(":", 1)[0]
    data = data[:80 - min(len(model), 40)]             # room for the model and a "-N" within NAME_RULE
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{data}-{model}").strip("-.")[:90] or "run"


def unfinished_start(run_dir: Path) -> bool:
    """Whether ``run_dir`` is what a start killed before its config.yaml was whole leaves: a real folder
    holding nothing but regular files, .lock and config.yaml's temporary file (or nothing at all)."""
    run_dir = Path(run_dir)
    try:
        if run_dir.is_symlink() or not run_dir.is_dir():
            return False
        return all((e.name == ".lock" or atomic.is_temporary(e.name, "config.yaml"))
                   and e.is_file(follow_symlinks=False) for e in os.scandir(run_dir))
    except OSError:
        return False


def _locked(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock (tested without creating or changing anything)."""
    try:
        fd = os.open(run_dir / ".lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def new_run_dir(out: Path, name: Optional[str], data: str, model: str, preset: Optional[str] = None) -> Path:
    """The folder a new run takes under ``out``: ``name`` (refused if it exists, unless an unfinished start)
    or the next default (``default_name``) that is free (or an unfinished start that no process holds)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if name:
        check_name(name)
        run_dir = out / name
        if run_dir.exists() and not unfinished_start(run_dir):
            raise UserError(f"run folder {run_dir} exists; add --resume {run_dir} to continue it, or choose another name=")
        return run_dir
    base = default_name(data, model, preset)
    run_dir, i = out / base, 1
    while run_dir.exists() and not (unfinished_start(run_dir) and not _locked(run_dir)):
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
    """config.yaml: the resolved config as YAML ``text``, under a header naming the version and the run (an
    old run's name outside NAME_RULE as a Python literal, so that a newline cannot break the header)."""
    name = run_dir.name if NAME_RULE.fullmatch(run_dir.name) else repr(run_dir.name)
    regular.check(run_dir / "config.yaml")
    atomic.write_text(run_dir / "config.yaml", f"# ganforge {__version__}: the resolved config of run {name}\n"
                      + text)


def _no_config(run_dir: Path, path: Path) -> UserError:
    what = regular.kind(path)
    if what:
        return regular.refusal(path, what)
    if any(Path(run_dir).glob("checkpoints/step-*.pt")):
        return UserError(f"{run_dir} has checkpoints but no config.yaml: put back the run's config.yaml (every "
                         "checkpoint keeps a copy under its key 'config'), or train a new run")
    return UserError(f"{run_dir} is not a ganforge run folder (no config.yaml); give a folder that "
                     "ganforge train made, e.g. runs/NAME")


def read_config(run_dir: Path) -> dict:
    """The saved config.yaml of a run as a plain dict; a folder without one, or a cut-down one, is refused."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise _no_config(run_dir, path)
    saved = read_yaml(path)
    if not {"model", "data"} <= set(saved):     # ganforge writes the whole resolved config
        raise UserError(f"{path} is not the config ganforge train wrote for this run (it lacks "
                        f"{' and '.join(k for k in ('model', 'data') if k not in saved)}); restore that file: "
                        "each checkpoint keeps a copy under its key 'config'")
    return saved


def read_config_text(run_dir: Path) -> tuple[str, dict]:
    """config.yaml as written and as a dict (what a page shows); a folder without one is refused."""
    path = Path(run_dir) / "config.yaml"
    text = regular.read_text(path) if path.is_file() else None
    if text is None:
        raise _no_config(run_dir, path)
    saved = load_yaml_text(text, str(path)) or {}
    if not isinstance(saved, dict):
        raise UserError(f"{path} is not the config ganforge train wrote for this run (a {type(saved).__name__}, "
                        "not a mapping of keys); restore that file: each checkpoint keeps a copy under its key "
                        "'config'")
    return text, saved


def write_info(run_dir: Path, info: dict) -> None:
    """run.json: what the data looked like (shape, kind, classes, counts) and the version."""
    regular.check(run_dir / "run.json")
    atomic.write_json(run_dir / "run.json", {"version": __version__, **info}, indent=1)


def read_info(run_dir: Path) -> dict:
    """run.json, checked to hold the data's shape."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        what = regular.kind(path)
        raise regular.refusal(path, what) if what else UserError(f"{run_dir} has no run.json: the run never started")
    try:
        info = json.loads(regular.read_bytes(path) or b"")
        tuple(info["shape"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise UserError(f"{path} is damaged (not the JSON with the data's shape that ganforge writes); "
                        f"ganforge train --resume {run_dir} writes it again") from None
    return info


def read_info_if_any(run_dir: Path) -> dict:
    """run.json as it is, or {} when there is none or it is damaged, a list, a FIFO (pages show what there is)."""
    path = Path(run_dir) / "run.json"
    try:
        info = json.loads(regular.read_bytes(path) or b"{}") if path.is_file() else {}
    except (UserError, ValueError, RecursionError):
        return {}
    return info if isinstance(info, dict) else {}


# ---------------------------------------------------------------- samples

def sample_files(run_dir: Path, suffix: str = ".png") -> list[tuple[int, Path]]:
    """(step, path) of the run's samples/step-N files of one suffix (.png grids, .npz arrays), by step."""
    found = []
    for p in (Path(run_dir) / "samples").glob(f"step-*{suffix}"):
        m = re.fullmatch(r"step-(\d+)" + re.escape(suffix), p.name)
        if m and regular.kind(p, follow=False) is None:    # never a FIFO, folder or link ganforge did not write
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


def _not_a_lock(lock: Path, what: str) -> UserError:
    return UserError(f"{lock} is {what}, not the lock file ganforge makes: move it away and try again")


def hold_lock(run_dir: Path) -> RunLock:
    """Lock the run (its .lock file: created, or a regular file already there; never followed through a link,
    so the pid it writes cannot land in another file)."""
    lock = Path(run_dir) / ".lock"
    what = regular.kind(lock, follow=False)
    if what:
        raise _not_a_lock(lock, what)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:         # a link put there since the check above
            raise _not_a_lock(lock, "a symbolic link") from None
        raise
    st = os.fstat(fd)
    what = regular.describe(st.st_mode) or ("a hard link to another file" if st.st_nlink > 1 else None)
    if what:                               # the pid written below would land in that file
        os.close(fd)
        raise _not_a_lock(lock, what)
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
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as e:                   # a full disk: the line names the file
        os.close(fd)
        raise OSError(e.errno, e.strerror, str(lock)) from None
    return RunLock(fd)


def create(run_dir: Path, config_text: str, resuming: bool) -> RunLock:
    """Make the folder of a new run (never an existing one), lock it and write its config; resuming, only
    lock it (the config is written again once the checkpoint has loaded)."""
    appeared = UserError(f"run folder {run_dir} appeared while starting; choose another name=")
    again = False
    if not resuming:
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()
        except FileExistsError:
            if not unfinished_start(run_dir):
                raise appeared from None
            again = True                   # a start killed before its config.yaml was whole: take it over
        except OSError as e:
            raise UserError(f"cannot create run folder {run_dir}: {e.strerror or e}") from None
    try:
        lock = hold_lock(run_dir)
    except OSError:                        # a full disk at the lock: no half-made folder left behind
        if not resuming:
            remove_unfinished(run_dir)
        raise
    if not resuming:
        try:
            if again:
                if not unfinished_start(run_dir):       # something else arrived while the lock was taken
                    raise appeared
                atomic.remove_stale(run_dir)
                print(f"ganforge: warning: {run_dir} was left by a start stopped before its config.yaml was "
                      "written; starting it again", file=sys.stderr)
            write_config(run_dir, config_text)
        except BaseException:              # e.g. a full disk: leave no half-made run folder behind
            lock.release()
            remove_unfinished(run_dir)
            raise
    return lock


def remove_unfinished(run_dir: Path) -> None:
    """Remove an unfinished start (its .lock, config.yaml's temporary file and the folder); a folder that
    holds anything else is left as it is."""
    if not unfinished_start(run_dir):
        return
    for entry in os.scandir(run_dir):
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def check_layout(run_dir: Path) -> None:
    """Refuse in one line a run folder whose config.yaml, run.json or metrics.jsonl is not a regular file, or
    whose checkpoints/, samples/ or tb/ is not a folder (before anything is read or written)."""
    for name in ("config.yaml", "run.json", "metrics.jsonl"):
        regular.check(run_dir / name)
    for name in ("checkpoints", "samples", "tb"):
        path = run_dir / name
        if path.exists() and not path.is_dir():
            raise UserError(f"{path} is {regular.kind(path) or 'a file'}, not a folder: ganforge keeps the run's "
                            "checkpoints/, samples/ and tb/ there; move it away and try again")


def open_for_training(run_dir: Path) -> None:
    """Before a run (new or resumed) trains: its layout checked, checkpoints/ exists and temporaries of killed
    writers are gone."""
    check_layout(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    for sub in ("", "checkpoints", "samples"):          # "": config.yaml, run.json, metrics.jsonl
        atomic.remove_stale(run_dir / sub)
