"""Issue 9: bad input gets one clear line and exit code 2, never a traceback, and nothing is overwritten.

Every row of CASES drives the real command line (``ganforge.cli.main``) on a mistake a user makes: broken
image folders, npz, IDX and CIFAR files; config values, keys and YAML files; checkpoints from another run,
a newer ganforge or cut short; run folders and ``--out`` paths that are taken. Each must end with exit code
2 and exactly one line on stderr, ``ganforge: error: ...``, that names the file, key or value and says what
is allowed; the files under the test's folder (bytes and mtimes) are the same afterwards and no run folder
is left behind. A few rows run again in a separate process, to show no traceback reaches stderr.

The loader's good side is tested here too: unreadable, non-image and hidden files among good images are
skipped and counted in one line and training goes on; images of every mode and size load with the right
values.

``python tests/test_bad_input.py`` prints the table: each case and the exact line the user sees.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

import ganforge  # noqa: E402
from ganforge.cli import main  # noqa: E402
from ganforge.runs import checkpoint  # noqa: E402

from conftest import run_cli  # noqa: E402

TINY_DCGAN = ["model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "log.progress=off",
              "eval.metrics=none", "log.tb=false", "log.samples_every=100"]
CKPT = "checkpoints/step-0000002.pt"


# ---------------------------------------------------------------- the runs and files the cases start from

def make_runs(folder: Path) -> dict:
    """A tiny DCGAN run and a toy MLP run of 2 steps each; cases copy them before changing anything."""
    kw = dict(o.split("=") for o in TINY_DCGAN)
    dcgan = ganforge.train("mnist-dcgan", out=folder, steps=2, progress="off", name="dcgan", **kw).path
    toy = ganforge.train("toy-ring", out=folder, steps=2, progress="off", name="toy", **{"eval.metrics": "none",
                                                                                         "log.tb": "false"}).path
    return {"dcgan": dcgan, "toy": toy}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("runs"))


def copy_run(runs: dict, which: str, dst: Path) -> Path:
    shutil.copytree(runs[which], dst)
    return dst


def png_bytes(value=100, size=(8, 8)) -> bytes:
    import io
    buf = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def folder(t: Path, name: str, files: dict) -> Path:
    """A folder ``t/name`` holding ``files`` ({relative name: bytes})."""
    root = t / name
    root.mkdir()
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def put(path: Path, data) -> Path:
    """Write bytes or text to path; the path."""
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return path


def npz(t: Path, name: str, **arrays) -> Path:
    p = t / name
    np.savez(p, **arrays)
    return p


def idx_bytes(arr: np.ndarray, dims=None) -> bytes:
    dims = arr.shape if dims is None else dims
    return (struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
            + arr.astype(np.uint8).tobytes())


def cifar_batch(t: Path, obj) -> Path:
    root = t / "cifar"
    root.mkdir()
    (root / "data_batch_1").write_bytes(obj if isinstance(obj, bytes) else pickle.dumps(obj))
    return root


class RunsCode:
    """Unpickled, it would create the file 'pwned' in the current folder (the test's folder)."""

    def __reduce__(self):
        return (open, ("pwned", "w"))


def with_checkpoint(runs, t: Path, change: Callable[[Path], None], which="dcgan") -> Path:
    run = copy_run(runs, which, t / "run")
    change(run / CKPT)
    return run


def foreign_checkpoint(runs):
    return lambda p: shutil.copy(runs["toy"] / CKPT, p)


def newer_checkpoint(p: Path) -> None:
    state = torch.load(p, weights_only=True)
    state["format"] = checkpoint.FORMAT + 1
    torch.save(state, p)


def missing_key_checkpoint(p: Path) -> None:
    state = torch.load(p, weights_only=True)
    del state["G"][sorted(state["G"])[0]]
    torch.save(state, p)


def half(p: Path) -> bytes:
    """The first half of a file's bytes."""
    data = p.read_bytes()
    return data[: len(data) // 2]


def cut_checkpoint(p: Path) -> None:
    p.write_bytes(half(p))


# ---------------------------------------------------------------- the table

@dataclass
class Case:
    id: str
    what: str
    setup: Callable        # (tmp folder, runs) -> argv; writes the files the case needs
    needles: tuple         # each must appear in the line; {t} stands for the tmp folder


def show(src: str) -> list:
    return ["data", "show", src, "--out", "shown.png"]


def train(*items: str) -> list:
    return ["train", *items, "--out", "runs"]


CASES = [
    # ---- image folders
    Case("folder-none-usable", "a folder whose only image files are corrupt or empty (and a text file)",
         lambda t, r: show(f"folder:{folder(t, 'imgs', {'a.png': os.urandom(300), 'b.png': b'', 'n.txt': b'x'})}"),
         ("none of the 2 image files under {t}/imgs could be read", "a.png: cannot identify image file",
          "give a folder of PNG, JPEG, BMP, WebP, GIF or TIFF files")),
    Case("folder-none-usable-train", "train on a folder with no usable image: no run folder is left",
         lambda t, r: train(f"data=folder:{folder(t, 'imgs', {'x.png': png_bytes()[:40]})}", *TINY_DCGAN),
         ("the one image file under {t}/imgs could not be read", "x.png")),
    Case("folder-empty", "an empty folder",
         lambda t, r: show(f"folder:{folder(t, 'imgs', {})}"),
         ("no images under {t}/imgs (the folder is empty)", "give a folder of PNG, JPEG")),
    Case("folder-no-images", "only a text file and hidden files",
         lambda t, r: show(f"folder:{folder(t, 'imgs', {'n.csv': b'1,2', '.DS_Store': b'x', '._a.png': b'x'})}"),
         ("no images under {t}/imgs (1 not images; 2 hidden)", "give a folder of PNG")),
    Case("folder-missing", "a folder that does not exist",
         lambda t, r: show(f"folder:{t}/nope"), ("image folder {t}/nope does not exist",)),
    Case("folder-is-a-file", "folder:PATH naming a file",
         lambda t, r: show(f"folder:{put(t / 'one.png', png_bytes())}"),
         ("image folder {t}/one.png is not a folder",)),
    # ---- npz
    Case("npz-no-x", "an npz without array x",
         lambda t, r: show(f"npz:{npz(t, 'd.npz', images=np.zeros((3, 4, 4)))}"),
         ("{t}/d.npz has no array 'x' (found: images)",)),
    Case("npz-nan", "images with NaN",
         lambda t, r: show(f"npz:{npz(t, 'd.npz', x=np.full((3, 4, 4), np.nan))}"),
         ("{t}/d.npz 'x' holds NaN or infinite values", "must be finite")),
    Case("npz-inf-vectors", "vectors with Inf",
         lambda t, r: show(f"npz:{npz(t, 'd.npz', x=np.array([[0.0, np.inf]] * 3))}"),
         ("{t}/d.npz", "'x' must hold finite numbers")),
    Case("npz-rank-1", "x of rank 1",
         lambda t, r: show(f"npz:{npz(t, 'd.npz', x=np.zeros(3))}"),
         ("{t}/d.npz: 'x' must have 2 (vectors), 3 or 4 (images) dimensions, got shape (3,)",)),
    Case("npz-rank-5", "x of rank 5",
         lambda t, r: show(f"npz:{npz(t, 'd.npz', x=np.zeros((2, 3, 4, 4, 1)))}"),
         ("'x' must have 2 (vectors), 3 or 4 (images) dimensions, got shape (2, 3, 4, 4, 1)",)),
    Case("npz-strings", "images of strings",
         lambda t, r: show(f"npz:{npz(t, 'd.npz', x=np.full((3, 4, 4), 'a'))}"),
         ("{t}/d.npz 'x' has an unsupported dtype <U1", "must be uint8, uint16, bool")),
    Case("npz-objects", "an object array (np.load runs without pickle)",
         lambda t, r: (np.savez(t / "d.npz", x=np.array([{"a": 1}, None], dtype=object)), show(f"npz:{t}/d.npz"))[1],
         ("{t}/d.npz", "'x'", "pickle")),
    Case("npz-not-npz", "a text file named .npz",
         lambda t, r: show(f"npz:{put(t / 'd.npz', 'hello')}"),
         ("{t}/d.npz is not an npz file", "write one with np.savez(PATH, x=array)")),
    Case("npz-truncated", "the first half of an npz",
         lambda t, r: show(f"npz:{put(t / 'd.npz', half(npz(t, 'full.npz', x=np.zeros((50, 8, 8)))))}"),
         ("{t}/d.npz is a damaged npz archive, perhaps cut short", "np.savez(PATH, x=array)")),
    Case("npz-is-npy", "an .npy array given as npz:PATH",
         lambda t, r: (np.save(t / "d.npy", np.zeros((3, 4, 4))), show(f"npz:{t}/d.npy"))[1],
         ("{t}/d.npy is a single .npy array, not an .npz archive", "np.savez(PATH, x=array)")),
    # ---- IDX
    Case("idx-bad-magic", "an IDX file with a wrong magic number",
         lambda t, r: show("idx:" + str(put(t / "train-images-idx3-ubyte", b"\x01\x02\x03\x04rest").parent)),
         ("{t}/train-images-idx3-ubyte is not an IDX file (bad magic number 01 02 03 04",
          "MNIST's files start 00 00 08 03 for images")),
    Case("idx-empty-file", "a zero-byte IDX file",
         lambda t, r: show(f"idx:{put(t / 'train-images-idx3-ubyte', b'').parent}"),
         ("{t}/train-images-idx3-ubyte is not an IDX file (the file is empty",)),
    Case("idx-short-body", "an IDX file shorter than its header says",
         lambda t, r: show(f"idx:{put(t / 'imgs', idx_bytes(np.zeros((2, 4, 4)))[:-5])}"),
         ("{t}/imgs: IDX header says (2, 4, 4) (32 bytes) but the file holds 27 bytes",)),
    Case("idx-no-images", "an IDX header of 0 images",
         lambda t, r: show(f"idx:{put(t / 'imgs', idx_bytes(np.zeros((0, 4, 4))))}"),
         ("{t}/imgs: IDX header says shape (0, 4, 4), which holds no values",)),
    Case("idx-absurd-header", "an IDX header of 4e9 x 4e9 x 4e9 images (no overflow, no allocation)",
         lambda t, r: show(f"idx:{put(t / 'imgs', idx_bytes(np.zeros(0), dims=(4_000_000_000,) * 3))}"),
         ("{t}/imgs: IDX header says (4000000000, 4000000000, 4000000000) (64000000000000000000000000000 bytes) "
          "but the file holds 0 bytes",)),
    Case("idx-gzip-cut", "a gzipped IDX file cut short",
         lambda t, r: show(f"idx:{put(t / 'imgs.gz', gzip.compress(idx_bytes(np.zeros((20, 8, 8))))[:-12])}"),
         ("cannot read IDX file {t}/imgs.gz",)),
    Case("idx-labels-mismatch", "3 labels for 2 images",
         lambda t, r: (put(t / "train-labels-idx1-ubyte", idx_bytes(np.zeros(3))),
                       show(f"idx:{put(t / 'train-images-idx3-ubyte', idx_bytes(np.zeros((2, 4, 4))))}"))[1],
         ("{t}/train-labels-idx1-ubyte: expected 2 labels, got shape (3,)",)),
    Case("idx-labels-huge", "an int32 IDX labels file holding 2e9 (no class list of 2e9 names is built)",
         lambda t, r: (put(t / "train-labels-idx1-ubyte", struct.pack(">BBBBI", 0, 0, 0x0C, 1, 2)
                           + np.array([1, 2_000_000_000], ">i4").tobytes()),
                       show(f"idx:{put(t / 'train-images-idx3-ubyte', idx_bytes(np.zeros((2, 4, 4))))}"))[1],
         ("{t}/train-labels-idx1-ubyte: labels must be class indices from 0 to 99999", "to 2000000000")),
    # ---- CIFAR-10
    Case("cifar-not-a-pickle", "a data_batch_1 of garbage",
         lambda t, r: show(f"cifar10:{cifar_batch(t, b'garbage')}"),
         ("{t}/cifar/data_batch_1 is not a CIFAR-10 python batch", "cifar-10-python.tar.gz")),
    Case("cifar-bad-data", "'data' of the wrong shape",
         lambda t, r: show(f"cifar10:{cifar_batch(t, {b'data': np.zeros((2, 10), np.uint8), b'labels': [0, 1]})}"),
         ("{t}/cifar/data_batch_1: 'data' must be a uint8 array of shape (N, 3072)",)),
    Case("cifar-string-labels", "labels that are not class indices",
         lambda t, r: show(f"cifar10:{cifar_batch(t, {b'data': np.zeros((2, 3072), np.uint8), b'labels': ['a', 'b']})}"),
         ("{t}/cifar/data_batch_1: 'labels' must list one class index 0..9 per image (2 of them)",)),
    Case("cifar-label-12", "a label beyond CIFAR-10's 10 classes",
         lambda t, r: show(f"cifar10:{cifar_batch(t, {b'data': np.zeros((2, 3072), np.uint8), b'labels': [0, 12]})}"),
         ("'labels' must list one class index 0..9 per image",)),
    Case("cifar-code-pickle", "a pickle that would create a file when loaded: refused, never run",
         lambda t, r: show(f"cifar10:{cifar_batch(t, {b'data': RunsCode(), b'labels': []})}"),
         ("{t}/cifar/data_batch_1 is not a CIFAR-10 python batch (refused global", "open")),
    Case("cifar-no-batches", "a folder without data_batch_N",
         lambda t, r: show(f"cifar10:{folder(t, 'cifar', {'readme.html': b'x'})}"),
         ("{t}/cifar has no data_batch_1..5 (the python version of CIFAR-10)",)),
    # ---- config
    Case("config-unknown-key", "a misspelt key",
         lambda t, r: train("stpes=5"), ("unknown config key 'stpes'; did you mean 'steps'?",)),
    Case("config-unknown-key-yaml", "a misspelt key in a YAML file",
         lambda t, r: train(put(t / "c.yaml", "optim:\n  g:\n    lrr: 0.001\n").name),
         ("unknown config key 'optim.g.lrr'; did you mean 'optim.g.lr'?",)),
    Case("config-steps-abc", "steps=abc", lambda t, r: train("steps=abc"),
         ("steps must be an integer >= 1, got 'abc'",)),
    Case("config-batch-1.5", "batch_size=1.5", lambda t, r: train("batch_size=1.5"),
         ("batch_size must be an integer >= 1, got '1.5'",)),
    Case("config-ema-maybe", "ema.enabled=maybe", lambda t, r: train("ema.enabled=maybe"),
         ("ema.enabled must be true or false, got 'maybe'",)),
    Case("config-batch-0", "batch_size=0", lambda t, r: train("batch_size=0"),
         ("batch_size must be an integer >= 1, got '0'",)),
    Case("config-steps-negative", "steps=-5", lambda t, r: train("steps=-5"),
         ("steps must be an integer >= 1, got '-5'",)),
    Case("config-z-dim-0", "model.z_dim=0", lambda t, r: train("model.z_dim=0"),
         ("model.z_dim must be an integer >= 1, got '0'",)),
    Case("config-resolution-0", "data.resolution=0", lambda t, r: train("data.resolution=0"),
         ("data.resolution must be an integer >= 1 (or null), got '0'",)),
    Case("config-dcgan-30", "dcgan at 30 px", lambda t, r: train("data.resolution=30", *TINY_DCGAN),
         ("model dcgan cannot build 30x30 images: the side must be 4 or 7 times a power of two",
          "set data.resolution to one of them")),
    Case("config-stylegan-24", "stylegan at 24 px", lambda t, r: train("model=stylegan", "data.resolution=24"),
         ("model stylegan cannot build 24x24 images", "(8, 14, 16, 28, 32, 56, 64, 128, 256)")),
    Case("config-biggan-48", "biggan at 48 px", lambda t, r: train("model=biggan", "data.resolution=48"),
         ("model biggan cannot build 48x48 images", "(8, 14, 16, 28, 32, 56, 64, 128, 256)")),
    Case("config-not-yaml", "a config file that is not valid YAML",
         lambda t, r: train(put(t / "c.yaml", "steps: [1, 2\nloss: hinge\n").name),
         ("c.yaml is not valid YAML at line 2", "one 'key: value' a line")),
    Case("config-yaml-list", "a YAML file whose top level is a list",
         lambda t, r: train(put(t / "c.yaml", "- steps: 3\n- loss: hinge\n").name),
         ("c.yaml must hold a mapping of config keys, not a list", "without a leading '- '")),
    # ---- checkpoints
    Case("ckpt-other-family-sample", "sample: the checkpoint of a toy MLP run copied into a DCGAN run",
         lambda t, r: ["sample", str(with_checkpoint(r, t, foreign_checkpoint(r))), "--out", "s.png"],
         ("{t}/run/" + CKPT + " holds model mlp, but the run's config.yaml says model dcgan",
          "put back this run's own checkpoint")),
    Case("ckpt-other-family-resume", "train --resume: the same foreign checkpoint; config.yaml is kept",
         lambda t, r: ["train", "--resume", str(with_checkpoint(r, t, foreign_checkpoint(r))), "steps=4"],
         ("{t}/run/" + CKPT + " holds model mlp, but the run's config.yaml says model dcgan",)),
    Case("ckpt-other-family-eval", "eval: the same foreign checkpoint",
         lambda t, r: ["eval", str(with_checkpoint(r, t, foreign_checkpoint(r))), "-n", "10"],
         ("holds model mlp, but the run's config.yaml says model dcgan",)),
    Case("ckpt-missing-weight", "a DCGAN checkpoint with one of G's tensors removed",
         lambda t, r: ["sample", str(with_checkpoint(r, t, missing_key_checkpoint)), "--out", "s.png"],
         ("{t}/run/" + CKPT + " does not fit the run's dcgan model (Missing key(s) in state_dict",)),
    Case("ckpt-newer-format", "sample: a checkpoint of format FORMAT + 1",
         lambda t, r: ["sample", str(with_checkpoint(r, t, newer_checkpoint)), "--out", "s.png"],
         (f"was written by a newer ganforge (checkpoint format {checkpoint.FORMAT + 1}, this version reads up to "
          f"{checkpoint.FORMAT}); upgrade ganforge",)),
    Case("ckpt-newer-format-resume", "train --resume: a checkpoint of format FORMAT + 1",
         lambda t, r: ["train", "--resume", str(with_checkpoint(r, t, newer_checkpoint))],
         ("no checkpoint in {t}/run/checkpoints loads", "upgrade ganforge")),
    Case("ckpt-empty-sample", "sample: the only checkpoint is a zero-byte file",
         lambda t, r: ["sample", str(with_checkpoint(r, t, lambda p: p.write_bytes(b""))), "--out", "s.png"],
         ("no checkpoint in {t}/run/checkpoints loads; the newest: {t}/run/" + CKPT, "(an empty file)")),
    Case("ckpt-empty-eval", "eval: the only checkpoint is a zero-byte file",
         lambda t, r: ["eval", str(with_checkpoint(r, t, lambda p: p.write_bytes(b""))), "-n", "10"],
         ("no checkpoint in {t}/run/checkpoints loads", "(an empty file)")),
    Case("ckpt-truncated-sample", "sample: the only checkpoint is cut in half",
         lambda t, r: ["sample", str(with_checkpoint(r, t, cut_checkpoint)), "--out", "s.png"],
         ("no checkpoint in {t}/run/checkpoints loads", "the file is cut short")),
    Case("ckpt-truncated-resume", "train --resume: the only checkpoint is cut in half; nothing starts over",
         lambda t, r: ["train", "--resume", str(with_checkpoint(r, t, cut_checkpoint))],
         ("no checkpoint in {t}/run/checkpoints loads", "the file is cut short")),
    # ---- run folders
    Case("run-name-taken", "name=X where runs/X exists: refused, X untouched byte for byte",
         lambda t, r: (copy_run(r, "toy", t / "runs" / "taken"), train("toy-ring", "name=taken", "steps=2"))[1],
         ("run folder runs/taken exists; add --resume runs/taken to continue it, or choose another name=",)),
    Case("run-resume-not-a-run", "--resume of a folder that is not a run",
         lambda t, r: ["train", "--resume", folder(t, "stuff", {"notes.txt": b"x"}).name],
         ("stuff is not a ganforge run folder (no config.yaml); give a folder that ganforge train made",)),
    Case("run-resume-a-file", "--resume of a file",
         lambda t, r: ["train", "--resume", put(t / "f.txt", "x").name],
         ("cannot resume f.txt: it is a file; give a run folder",)),
    Case("run-out-is-a-file", "train --out naming a file",
         lambda t, r: ["train", "toy-ring", "--out", put(t / "f.txt", "x").name],
         ("--out f.txt is a file, not a folder",)),
    Case("run-json-damaged", "sample: a run whose run.json is not JSON",
         lambda t, r: ["sample", put(copy_run(r, "toy", t / "run") / "run.json", "{").parent.name, "--out", "s.png"],
         ("run/run.json is damaged", "ganforge train --resume run writes it again")),
    Case("run-config-emptied", "train --resume: a run whose config.yaml was emptied (not defaults: a refusal)",
         lambda t, r: ["train", "--resume", put(copy_run(r, "toy", t / "run") / "config.yaml", b"").parent.name],
         ("run/config.yaml is not the config ganforge train wrote for this run (it lacks model and data)",
          "each checkpoint keeps a copy under its key 'config'")),
    Case("run-config-partial-sample", "sample: a run whose config.yaml holds only 'steps: 5'",
         lambda t, r: ["sample", put(copy_run(r, "toy", t / "run") / "config.yaml", b"steps: 5\n").parent.name,
                       "--out", "s.png"],
         ("run/config.yaml is not the config ganforge train wrote for this run (it lacks model and data)",)),
    # ---- --out that exists
    Case("out-sample-exists", "sample --out of an existing file, no --force",
         lambda t, r: ["sample", r["toy"], "--out", put(t / "s.png", b"mine").name],
         ("s.png exists; choose another --out or add --force to replace it",)),
    Case("out-data-show-exists", "data show --out of an existing file, no --force",
         lambda t, r: ["data", "show", "mnist", "--out", put(t / "d.png", b"mine").name],
         ("d.png exists; choose another --out or add --force to replace it",)),
    Case("out-eval-foreign", "eval --out of an existing file that is not an eval file (refused before the work)",
         lambda t, r: ["eval", r["dcgan"], "-n", "10", "--out", put(t / "e.json", b"mine").name],
         ("e.json exists but is not JSON; --out adds to a ganforge eval file (JSON)",)),
    Case("out-under-a-file", "sample --out inside a path that is a file",
         lambda t, r: ["sample", r["toy"], "--out", put(t / "f", "x").name + "/s.png"],
         ("--out f/s.png cannot be written: f is a file, not a folder",)),
    Case("out-is-a-folder", "sample --out naming a folder, even with --force",
         lambda t, r: ["sample", r["toy"], "--out", folder(t, "dir.png", {}).name, "--force"],
         ("--out dir.png is a folder; give a file name",)),
]
IN_A_PROCESS = ["folder-none-usable", "npz-truncated", "config-not-yaml", "ckpt-other-family-sample"]


# ---------------------------------------------------------------- checks

def snapshot(root: Path) -> dict:
    """Every file and folder under root: (size, mtime, sha256) of files; a run's .lock only by its name
    (taking the lock writes the pid into it, even for a resume that is then refused)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_dir():
            out[rel] = "dir"
        elif p.name == ".lock":
            out[rel] = "lock"
        else:
            st = p.stat()
            out[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def check_line(code, err: str, needles, t: Path) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    assert err.startswith("ganforge: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    for n in needles:
        assert n.format(t=t) in err, (n.format(t=t), err)
    return err.strip()


def same_files(before: dict, after: dict) -> None:
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"created, removed or changed: {changed}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_one_line_exit_2_nothing_written(case, runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = case.setup(tmp_path, runs)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    check_line(code, capsys.readouterr().err, case.needles, tmp_path)
    same_files(before, snapshot(tmp_path))
    assert not (tmp_path / "pwned").exists()


def test_the_table_has_every_kind_of_mistake():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25
    for prefix in ("folder-", "npz-", "idx-", "cifar-", "config-", "ckpt-", "run-", "out-"):
        assert any(i.startswith(prefix) for i in ids), prefix
    assert set(IN_A_PROCESS) <= set(ids)


@pytest.mark.parametrize("case_id", IN_A_PROCESS)
def test_no_traceback_reaches_stderr_of_the_command(case_id, runs, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        argv = case.setup(tmp_path, runs)
    finally:
        os.chdir(cwd)
    before = snapshot(tmp_path)
    r = run_cli(*argv, cwd=tmp_path)
    check_line(r.returncode, r.stderr, case.needles, tmp_path)
    same_files(before, snapshot(tmp_path))


# ---------------------------------------------------------------- what is skipped, and what loads

def test_unusable_files_among_good_images_are_skipped_and_counted_and_training_goes_on(tmp_path, capsys):
    good = png_bytes()
    imgs = folder(tmp_path, "imgs", {
        **{f"{i}.png": good for i in range(4)},
        "corrupt.png": os.urandom(300), "sub/half.png": good[: len(good) // 2], "zero.jpg": b"",
        "notes.txt": b"x", "labels.csv": b"1,2", ".DS_Store": b"x", "._0.png": b"x",
    })
    code = main(["train", f"data=folder:{imgs}", "data.resolution=8", "steps=1", *TINY_DCGAN, "batch_size=4",
                 "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 0, err
    line = (f"ganforge: skipped 7 files in {imgs} (3 unreadable: corrupt.png, zero.jpg, sub/half.png; "
            "2 not images; 2 hidden); using 4 images")
    assert err.count(line) == 1 and "Traceback" not in err, err
    run = ganforge.load_run(tmp_path / "runs" / "imgs-dcgan")
    assert run.step == 1 and run.info["n_data"] == 4 and run.info["shape"] == [3, 8, 8]


def _image(mode: str, size, value) -> Image.Image:
    return Image.new(mode, size, value)


def test_images_of_every_mode_and_size_load_with_the_right_values(tmp_path):
    from ganforge.data.folder import load_folder
    rgb = folder(tmp_path, "rgb", {})
    palette = Image.new("P", (6, 6), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)      # index 1 is red
    palette.paste(1, (0, 0, 6, 6))
    wide = np.zeros((12, 60, 3), np.uint8)
    wide[:, 12:48] = 255                  # white around the centre crop (24:36), black at the sides (and their filter)
    images = {
        "L": _image("L", (10, 10), 255),                        # white
        "LA": _image("LA", (10, 20), (0, 0)),                   # black, fully transparent: white
        "RGB": _image("RGB", (30, 30), (255, 0, 0)),            # red
        "RGBA": _image("RGBA", (16, 16), (0, 0, 255, 255)),     # opaque blue
        "RGBA-clear": _image("RGBA", (16, 16), (0, 0, 255, 0)),  # transparent: white
        "P": palette,                                           # through its palette: red
        "I16-max": _image("I;16", (9, 9), 65535),               # 16-bit white
        "I16-dark": _image("I;16", (9, 9), 200),                # 200 of 65535: black, not 200 of 255
        "wide": Image.fromarray(wide),                          # centre-cropped, then resized
    }
    for name, im in images.items():
        im.save(rgb / f"{name}.png")
    _image("CMYK", (8, 8), (0, 255, 255, 0)).save(rgb / "CMYK.jpg")   # red in CMYK (JPEG keeps CMYK)
    x, _, _ = load_folder(str(rgb), None, 4, False)
    assert x.dtype == torch.uint8                               # held as decoded
    x = x.float() / 255
    assert x.shape == (10, 3, 4, 4)                             # RGB: the folder holds colour images
    names = [p.stem for p in sorted(rgb.iterdir())]             # the loader's order: by file name
    got = {n: x[i].mean((1, 2)).tolist() for i, n in enumerate(names)}
    want = {"L": [1, 1, 1], "LA": [1, 1, 1], "RGB": [1, 0, 0], "RGBA": [0, 0, 1], "RGBA-clear": [1, 1, 1],
            "P": [1, 0, 0], "I16-max": [1, 1, 1], "I16-dark": [0, 0, 0], "wide": [1, 1, 1], "CMYK": [1, 0, 0]}
    for n, w in want.items():
        assert np.allclose(got[n], w, atol=0.02 if n == "CMYK" else 1 / 255 + 1e-6), (n, got[n], w)
    gray = folder(tmp_path, "gray", {})
    _image("I;16", (5, 7), 32768).save(gray / "half.png")
    _image("L", (7, 5), 0).save(gray / "black.png")
    g, _, _ = load_folder(str(gray), None, 3, False)
    assert g.dtype == torch.uint8                               # held as decoded
    g = g.float() / 255
    assert g.shape == (2, 1, 3, 3)                              # a folder of gray images stays gray
    assert torch.allclose(g[1], torch.full((1, 3, 3), 128 / 255))   # 32768 of 65535 -> 128 of 255
    assert torch.equal(g[0], torch.zeros(1, 3, 3))


def test_tiff_images_load_with_the_right_values_float_ones_included(tmp_path):
    from ganforge.data.folder import load_folder
    gray = folder(tmp_path, "tiff", {})
    Image.fromarray(np.full((6, 6), 0.5, np.float32), "F").save(gray / "f-unit.tif")        # floats in [0, 1]
    Image.fromarray(np.full((6, 6), 255.0, np.float32), "F").save(gray / "f-255.tiff")      # floats as 0..255
    nan = np.full((6, 6), np.nan, np.float32)
    Image.fromarray(nan, "F").save(gray / "f-nan.tif")                                      # NaN: black, never NaN
    _image("I;16", (6, 6), 65535).save(gray / "i16.tif")
    _image("L", (6, 6), 51).save(gray / "l.tif")
    x, _, _ = load_folder(str(gray), None, 3, False)
    assert x.dtype == torch.uint8                               # held as decoded
    x = x.float() / 255
    assert x.shape == (5, 1, 3, 3) and torch.isfinite(x).all()
    got = dict(zip(sorted(p.name for p in gray.iterdir()), x.mean((1, 2, 3)).tolist()))
    want = {"f-255.tiff": 1.0, "f-nan.tif": 0.0, "f-unit.tif": 128 / 255, "i16.tif": 1.0, "l.tif": 0.2}
    assert got == pytest.approx(want, abs=1e-6)
    rgb = folder(tmp_path, "rgb", {})
    _image("RGB", (8, 8), (0, 255, 0)).save(rgb / "g.tif")
    _image("CMYK", (8, 8), (0, 255, 255, 0)).save(rgb / "r.tiff")                             # red in CMYK
    c, _, _ = load_folder(str(rgb), None, 4, False)
    assert c.dtype == torch.uint8                               # held as decoded
    c = c.float() / 255
    assert c.mean((2, 3)).tolist() == [[0, 1, 0], [1, 0, 0]]


def test_a_class_folder_with_no_readable_image_is_left_out_with_a_warning(tmp_path, capsys):
    from ganforge.data.folder import load_folder
    root = folder(tmp_path, "classes", {})
    for name, n in (("cat", 2), ("dog", 0), ("emu", 1)):
        (root / name).mkdir()
        for i in range(n):
            _image("L", (4, 4), 40 * i).save(root / name / f"{i}.png")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    x, y, classes = load_folder(str(root), None, 4, True)
    assert classes == ["cat", "emu"] and y.tolist() == [0, 0, 1] and len(x) == 3
    err = capsys.readouterr().err
    assert "ganforge: warning: left out 1 class folder with no readable image (dog); 2 classes" in err, err


def test_eval_of_a_folder_whose_first_file_is_unreadable_takes_the_side_of_the_next(tmp_path, capsys):
    from ganforge.metrics.sources import from_path
    root = folder(tmp_path, "fakes", {"a.png": b"torn"})
    for i in range(3):
        _image("L", (12, 12), 60 * i).save(root / f"b{i}.png")
    real = from_path(str(root))
    assert tuple(real.x.shape) == (3, 1, 12, 12)
    assert f"ganforge: skipped 1 file in {root} (1 unreadable: a.png); using 3 images" in capsys.readouterr().err
    (root / "b0.png").write_bytes(b""), (root / "b1.png").write_bytes(b""), (root / "b2.png").write_bytes(b"")
    with pytest.raises(ganforge.errors.UserError, match="no readable images under .*fakes; give a folder of PNG"):
        from_path(str(root))


# ---------------------------------------------------------------- the table for docs

def table() -> str:
    """Each case and the exact line the user sees (the test's folder shown as $TMP), as Markdown."""
    import tempfile
    rows = ["| case | mistake | command | the one line on stderr |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as base:
        r = make_runs(Path(base) / "runs")
        for i, case in enumerate(CASES):
            t = Path(base) / f"case{i}"
            t.mkdir()
            cwd = os.getcwd()
            os.chdir(t)
            try:
                argv = [str(a) for a in case.setup(t, r)]
                import contextlib
                import io
                err = io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    code = main(argv)
            finally:
                os.chdir(cwd)
            line = err.getvalue().strip().replace(str(t), "$TMP").replace(base, "$RUNS_PARENT")
            cmd = "ganforge " + " ".join(argv).replace(str(t), "$TMP").replace(base, "$RUNS_PARENT")
            rows.append(f"| {case.id} | {case.what} | `{cmd}` | `{line}` (exit {code}) |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
