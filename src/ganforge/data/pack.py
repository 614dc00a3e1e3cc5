"""``ganforge data pack``: a dataset as one zip of PNG files, in the layout of stylegan2-ada's dataset_tool.py.

Karras et al. 2020 (Training Generative Adversarial Networks with Limited
Data; stylegan2-ada-pytorch's ``dataset_tool.py``) keep a dataset as a zip of
images named ``{i // 1000:05d}/img{i:08d}.png`` beside a ``dataset.json``
whose ``labels`` is null or a list of ``[name, class index]`` pairs;
data/archive.py reads that as ``zip:PATH``, decoding an image only when it
is drawn. This module writes it from an image folder (recursive; hidden,
non-image and unreadable files skipped and counted), an npz, IDX files or
CIFAR-10 batches. Every image is converted as data/folder.py converts one
(:func:`~ganforge.data.folder.image_to_array`: its channels, transparency over
white, centre crop, bicubic resize), encoded as PNG in worker processes and
written as it comes, so memory does not grow with the number of images.
ganforge adds ``classes``, ``resolution`` and ``channels`` to dataset.json.
Members are stored uncompressed (PNG is compressed already) with a fixed
date, so one source packs to the same bytes; the zip is one atomic write
(runs/atomic.py), so a pack that fails or is killed leaves no partial file
under the name.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import UserError
from ..runs import atomic
from . import files as arrays
from .archive import INDEX
from .folder import (IMAGE_KINDS, folder_channels, folder_images, image_to_array, open_image, parallel_map,
                     skipped_line, why_unreadable)
from .transform import parse_range

KINDS = ("folder", "npz", "idx", "cifar10")
BLOCK = 2048              # images per batch of worker jobs: what may wait in memory, encoded, is one block
PNG_LEVEL = 1             # zlib level of the PNG files: photos at 256 px pack 2.8x faster than at 6, 5% larger
DATE = (1980, 1, 1, 0, 0, 0)   # every member's date: the same source packs to the same bytes


@dataclass
class Packed:
    """What a pack wrote."""
    out: Path
    images: int
    resolution: int
    channels: int
    classes: Optional[list]
    bytes: int
    skipped: int = 0
    skipped_line: Optional[str] = None            # the one line naming what was skipped, or None
    notes: list = field(default_factory=list)     # how the size and values were chosen

    def line(self) -> str:
        mb = self.bytes / 1e6
        size = f"{mb:.1f}" if mb >= 0.1 else f"{mb:.2g}"
        classes = f" ({len(self.classes)} classes)" if self.classes else ""
        s = self.resolution
        return (f"packed {self.images} images of {self.channels}x{s}x{s}{classes} into {self.out} ({size} MB)"
                + "".join(f"; {n}" for n in self.notes))


@dataclass
class _Plan:
    """The jobs of one pack: ``fn(jobs[i])`` is image i as PNG bytes (None: unreadable)."""
    fn: Callable
    jobs: list
    channels: int
    side: int
    labels: Optional[list] = None        # a class index per job
    classes: Optional[list] = None
    names: Optional[list] = None         # folder: the files, to name the unreadable ones
    root: Optional[Path] = None
    non_images: int = 0
    hidden: int = 0
    notes: list = field(default_factory=list)
    array: Optional[np.ndarray] = None   # arrays: the loaded images, read by the forked workers


# ------------------------------------------------------------------ what the source is

def _idx_magic(p: Path) -> bool:
    """Whether ``p`` starts as an IDX file does (00 00 type ndim), gzipped or not."""
    try:
        with open(p, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open(p, "rb") if gz else open(p, "rb")) as f:
            head = f.read(4)
    except (OSError, EOFError):
        return False
    return len(head) == 4 and head[:2] == b"\0\0" and head[2] in arrays.IDX_TYPES and head[3] > 0


def detect(source: str) -> tuple[str, Path]:
    """(kind, path) of ``source``: ``kind:PATH``, or told from the path itself."""
    kind, _, rest = source.partition(":")
    if kind in KINDS and rest:
        return kind, Path(rest).expanduser()
    p = Path(source).expanduser()
    if not p.exists():
        raise UserError(f"{p} does not exist; give a folder of images, an .npz file, IDX files or CIFAR-10 batches")
    if p.is_dir():
        if any(p.glob("data_batch_[1-5]")) or (p / "cifar-10-batches-py").is_dir():
            return "cifar10", p
        if any((p / f"{s}{z}").is_file() for s in ("train-images-idx3-ubyte", "train-images.idx3-ubyte")
               for z in ("", ".gz")):
            return "idx", p
        return "folder", p
    arrays.need_file(p, "source")
    if p.suffix.lower() == ".npz":
        return "npz", p
    if _idx_magic(p):
        return "idx", p
    raise UserError(f"{p} is not data ganforge can pack: give a folder of images, an .npz file, an IDX file or "
                    "folder, or a CIFAR-10 folder (or name the kind: folder:, npz:, idx:, cifar10:PATH)")


# ------------------------------------------------------------------ the jobs (module level: workers fork)

def _png(a: np.ndarray) -> bytes:
    """uint8 (C, H, W) as PNG bytes (L or RGB)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))).save(
        buf, "PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def _encode_file(job) -> Optional[bytes]:
    path, channels, side = job
    try:
        with open_image(path) as im:
            im.load()
            a = image_to_array(im, channels, side)
    except Exception:  # any decoder failure means an unusable file: skipped and named
        return None
    return _png(a)


_ARRAY: Optional[np.ndarray] = None      # the loaded images a forked worker encodes (set before the fork)


def _encode_row(job) -> bytes:
    from PIL import Image
    i, channels, side = job
    a = _ARRAY[i][:3]                        # 4 channels: alpha dropped, as the npz loader drops it
    if a.dtype != np.uint8:                  # floats in [0, 1]
        a = np.rint(a.astype(np.float32) * np.float32(255)).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)))
    return _png(image_to_array(im, channels, side))


# ------------------------------------------------------------------ plans

def _folder_plan(root: Path, resolution, channels, labels) -> _Plan:
    files, non_images, hidden = folder_images(root)
    rel = [p.relative_to(root).parts for p in files]
    subs = sorted({r[0] for r in rel if len(r) > 1})
    loose = sum(len(r) == 1 for r in rel)
    if labels and (not subs or loose):
        raise UserError(f"--labels needs every image inside a class sub-folder of {root}"
                        + (f"; {loose} images lie directly in it" if loose else ""))
    use = labels if labels is not None else (not loose and len(subs) >= 2)
    notes = []
    if resolution is None:
        resolution, notes = _first_side(files, root)
    channels = channels or folder_channels(files)
    plan = _Plan(_encode_file, [(str(p), channels, resolution) for p in files], channels, resolution, names=files,
                 root=root, non_images=non_images, hidden=hidden, notes=notes)
    if use:
        index = {c: i for i, c in enumerate(subs)}
        plan.labels, plan.classes = [index[r[0]] for r in rel], subs
    return plan


def _first_side(files: list, root: Path) -> tuple[int, list]:
    """The smaller side of the first image that opens, and the note that says so."""
    for p in files:
        try:
            with open_image(p) as im:
                w, h = im.size
        except Exception:  # an unreadable file: the next one tells
            continue
        return min(w, h), [f"resolution {min(w, h)}: the smaller side of the first image, "
                           f"{p.relative_to(root).as_posix()} ({w}x{h}); set it with --resolution"]
    raise UserError(f"none of the {len(files)} image files under {root} opens; give a folder of {IMAGE_KINDS} files")


def _array_plan(kind: str, path: Path, resolution, channels, labels, value_range) -> _Plan:
    if kind == "cifar10":
        x, y, classes = arrays.load_cifar10(str(path))
    else:
        x, y, classes, _ = (arrays.load_npz if kind == "npz" else arrays.load_idx)(str(path), value_range)
    if x.dim() != 4:
        raise UserError(f"{path} holds vectors of size {x.shape[1]}, not images; only images can be packed")
    if labels is False:
        y = None
    elif labels and y is None:
        raise UserError(f"--labels: {path} holds no labels ('y' in an npz, the labels file beside IDX images)")
    c, h, w = x.shape[1:]
    side = resolution or min(h, w)
    a = x.numpy()
    notes = [f"{h}x{w} centre-cropped to {side}x{side}"] if h != w and resolution is None else []
    if a.dtype != np.uint8 and not _eight_bit(a):
        notes.append("values rounded to 8 bits")
    channels = channels or (3 if c == 4 else c)
    plan = _Plan(_encode_row, [(i, channels, side) for i in range(len(a))], channels, side, notes=notes, array=a)
    if y is not None:
        plan.labels = y.tolist()
        plan.classes = classes or [str(i) for i in range(max(plan.labels) + 1)]
    return plan


def _eight_bit(a: np.ndarray) -> bool:
    """Whether floats in [0, 1] are all multiples of 1/255 (then 8-bit PNG holds them exactly)."""
    k = np.float32(255)
    return all(np.array_equal(np.rint(c * k) / k, c) for c in (a[i:i + 1024] for i in range(0, len(a), 1024)))


# ------------------------------------------------------------------ the pack

def pack(source: str, out, resolution: Optional[int] = None, channels: Optional[int] = None,
         labels: Optional[bool] = None, value_range=None, force: bool = False,
         progress: Optional[Callable[[int, int], None]] = None) -> Packed:
    """Pack ``source`` (a path, or ``kind:PATH``) into the zip ``out``; ``labels`` None: folders take labels
    when every image lies in one of at least 2 sub-folders, arrays keep theirs; ``progress(done, total)``."""
    out = atomic.check_out(Path(out), force, (".zip",))
    kind, path = detect(source)
    if value_range is not None:
        if kind not in ("npz", "idx"):
            raise UserError(f"--range says how an npz or IDX array's numbers are scaled; {path} is a {kind} source")
        parse_range(value_range)
    if channels not in (None, 1, 3):
        raise UserError(f"--channels must be 1 or 3, got {channels}")
    if resolution is not None and resolution < 1:
        raise UserError(f"--resolution must be at least 1, got {resolution}")
    plan = (_folder_plan(path, resolution, channels, labels) if kind == "folder"
            else _array_plan(kind, path, resolution, channels, labels, value_range))
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    atomic.write_with(out, lambda f: done.update(_write(f, plan, progress or (lambda d, t: None))))
    bad = done["bad"]
    line = (skipped_line(plan.root, bad, plan.non_images, plan.hidden)
            if plan.root is not None and (bad or plan.non_images or plan.hidden) else None)
    return Packed(out, done["images"], plan.side, plan.channels, done["classes"], out.stat().st_size,
                  len(bad) + plan.non_images + plan.hidden, line, plan.notes + done["notes"])


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, DATE)
    info.external_attr = 0o644 << 16
    return info


def _encoded(plan: _Plan):
    """(job index, PNG bytes or None) for every job, in order: one block of worker jobs at a time, so what waits
    encoded in memory is at most one block."""
    total = len(plan.jobs)
    size = -(-total // -(-total // BLOCK))           # equal blocks: none too small to pay for its workers
    for start in range(0, total, size):
        with contextlib.closing(parallel_map(plan.fn, plan.jobs[start:start + size])) as results:
            yield from enumerate(results, start)


def _write(f, plan: _Plan, progress) -> dict:
    """Write the archive into the open file ``f``: the images as the workers encode them, then dataset.json."""
    global _ARRAY
    total, n, bad, pairs = len(plan.jobs), 0, [], []
    step = max(1, total // 200)
    _ARRAY = plan.array
    progress(0, total)
    try:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z, contextlib.closing(_encoded(plan)) as results:
            for j, png in results:
                if png is None:
                    bad.append(plan.names[j])
                else:
                    name = f"{n // 1000:05d}/img{n:08d}.png"
                    z.writestr(_member(name), png)
                    if plan.labels is not None:
                        pairs.append([name, plan.labels[j]])
                    n += 1
                if (j + 1) % step == 0 or j + 1 == total:
                    progress(j + 1, total)
            if n == 0:
                raise UserError(f"none of the {total} image files under {plan.root} could be read "
                                f"({why_unreadable(bad[0], plan.root)}); give a folder of {IMAGE_KINDS} files")
            classes, notes = _used_classes(plan, pairs)
            meta = {"labels": pairs if classes is not None else None}
            if classes is not None:
                meta["classes"] = classes
            meta.update(resolution=plan.side, channels=plan.channels)
            z.writestr(_member(INDEX), json.dumps(meta).encode())
    finally:
        _ARRAY = None
    return {"images": n, "bad": bad, "classes": classes, "notes": notes}


def _used_classes(plan: _Plan, pairs: list) -> tuple[Optional[list], list]:
    """A folder's classes less those with no readable image (the labels renumbered, as data/folder.py does)."""
    if plan.classes is None or plan.root is None:
        return plan.classes, []
    used = sorted({c for _, c in pairs})
    if len(used) == len(plan.classes):
        return plan.classes, []
    new = {c: i for i, c in enumerate(used)}
    for pair in pairs:
        pair[1] = new[pair[1]]
    empty = [c for i, c in enumerate(plan.classes) if i not in new]
    return [plan.classes[c] for c in used], [f"left out {len(empty)} class folders with no readable image "
                                             f"({', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''})"]
