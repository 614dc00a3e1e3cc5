"""Image folders: listing, decoding and the one line that counts what was skipped.

``folder:PATH`` reads PNG/JPEG/BMP/WebP/GIF/TIFF images below PATH
(recursively; hidden files and folders skipped), labels from first-level
sub-folder names when asked (a class with no readable image is left out,
with a warning). Every image is converted as the training data will be
(its channels, transparency over white, centre crop, bicubic resize:
:func:`image_to_array`). Unreadable images are skipped and counted. Large
folders are decoded by worker processes (one per core, up to 8), once, into
one uint8 tensor that training then indexes without any decoding.
"""
from __future__ import annotations

import contextlib
import os
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import memory
from ..errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def need_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise UserError(f"{what} {path} is not a folder")


# ------------------------------------------------------------------ folder

def _regular(path: Path) -> bool:
    """A regular file (through links): a FIFO, a socket or a device named x.png would hang or never end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:                       # a dangling link
        return False


def list_images(root: Path) -> tuple[list[Path], int, int]:
    """(image files, how many other files, how many hidden files and folders) below ``root``; hidden
    ones (.name) are left out, with what they hold; special files (FIFOs, sockets, devices) and dangling links
    count among the others, never opened."""
    files, skipped, hidden, seen = [], 0, 0, set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:                   # a link back to a folder already listed (a loop, e.g. up -> ..): once
            dirnames[:] = []
            continue
        seen.add(real)
        hidden += sum(n.startswith(".") for n in dirnames + filenames)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and _regular(Path(dirpath) / name):
                files.append(Path(dirpath) / name)
            else:
                skipped += 1
    return files, skipped, hidden


def _decode(path: Path, channels: int, side: int) -> np.ndarray:
    """An image file as uint8 (channels, side, side); one of more pixels than PIL deems safe (89 million,
    Image.MAX_IMAGE_PIXELS: a decompression bomb, or a photo too large to train on) fails, so it is skipped."""
    with open_image(path) as im:
        im.load()
        return image_to_array(im, channels, side)


@contextlib.contextmanager
def open_image(path: Path):
    """PIL's Image.open, where an image of more pixels than PIL deems safe (Image.MAX_IMAGE_PIXELS) raises
    rather than printing PIL's warning: every caller skips a file that fails to open, with a count."""
    from PIL import Image
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            yield im


def image_to_array(im, channels: int, side: int) -> np.ndarray:
    """A PIL image as uint8 (channels, side, side): 16-bit scaled to 8 (I;16: 65535 is white; 32-bit I: 65535
    if any value exceeds 255, else 255; float F, as TIFF stores it: 1.0 if every value lies in [0, 1], else
    as I), transparency over white, palettes looked up, CMYK converted, centre-cropped to a square and
    resized (bicubic)."""
    from PIL import Image, ImageOps
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        unit = im.mode == "F" and a.min() >= 0 and a.max() <= 1
        a = a / (1.0 if unit else 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0)
        im = Image.fromarray((a.clip(0, 1) * 255).round().astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im.convert("RGBA"))
    im = im.convert("L" if channels == 1 else "RGB")
    im = ImageOps.fit(im, (side, side), method=Image.Resampling.BICUBIC)
    a = np.asarray(im, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _try_decode(args) -> "np.ndarray | None":
    try:
        return _decode(*args)
    except Exception:  # any decoder failure means an unusable file
        return None


PARALLEL_FROM = 1000      # images; below this, starting worker processes costs more than it saves


def decode_all(files: list[Path], channels: int, side: int, workers: int = 0) -> list:
    """Each file decoded (an array, or None if unreadable), in order; in worker processes for large folders."""
    return list(parallel_map(_try_decode, [(p, channels, side) for p in files], workers))


def parallel_map(fn, jobs: list, workers: int = 0):
    """``fn`` over ``jobs``, results in order as they come; in worker processes (one per core, up to 8) when
    there are enough jobs to pay for starting them. ``fn`` is a module-level function."""
    workers = workers or min(os.cpu_count() or 1, 8)
    import multiprocessing as mp
    if workers < 2 or len(jobs) < PARALLEL_FROM or "fork" not in mp.get_all_start_methods():
        yield from map(fn, jobs)
        return
    from concurrent.futures import ProcessPoolExecutor
    # fork, as torch's DataLoader on Linux: spawn would re-run the user's script in every worker
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        yield from pool.map(fn, jobs, chunksize=64)


GRAY_MODES = ("1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def folder_channels(files: list[Path]) -> int:
    for p in files[:64]:
        try:
            with open_image(p) as im:
                if im.mode not in GRAY_MODES:
                    return 3
        except Exception:
            continue
    return 1


IMAGE_KINDS = "PNG, JPEG, BMP, WebP, GIF or TIFF"


def why_unreadable(path: Path, root: Path) -> str:
    """'name: the decoder's reason' for an image file that does not decode."""
    try:
        _decode(path, 3, 8)
        reason = "unreadable"
    except Exception as e:                 # the decoder's own words, first line
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    if path.stat().st_size == 0:
        reason = "an empty file"
    return f"{path.relative_to(root)}: {reason}"


def skipped_line(root: Path, bad: list, non_images: int, hidden: int) -> str:
    """One line that counts what a folder of images held besides usable images, naming the unreadable ones."""
    parts = []
    if bad:
        names = ", ".join(str(p.relative_to(root)) for p in bad[:3]) + (", ..." if len(bad) > 3 else "")
        parts.append(f"{len(bad)} unreadable: {names}")
    parts += [f"{n} {w}" for n, w in ((non_images, "not images"), (hidden, "hidden")) if n]
    n = len(bad) + non_images + hidden
    return f"skipped {n} file{'s' * (n != 1)} in {root} ({'; '.join(parts)})"


def folder_images(root: Path) -> tuple[list[Path], int, int]:
    """:func:`list_images` of a folder that must hold images: a missing, empty or image-less folder is one line."""
    need_dir(root, "image folder")
    files, non_images, hidden = list_images(root)
    if not files:
        others = [f"{n} {w}" for n, w in ((non_images, "not images"), (hidden, "hidden")) if n]
        raise UserError(f"no images under {root} ({'; '.join(others) or 'the folder is empty'}); "
                        f"give a folder of {IMAGE_KINDS} files")
    return files, non_images, hidden


def load_folder(path: str, channels, resolution, labels: bool):
    root = Path(path).expanduser()
    files, non_images, hidden = folder_images(root)
    side = resolution or 64
    channels = channels or folder_channels(files)
    classes = None
    if labels:
        names = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
        loose = [p for p in files if len(p.relative_to(root).parts) == 1]
        if not names or loose:
            raise UserError(f"data.labels=true needs every image inside a class sub-folder of {root}"
                            + (f"; {len(loose)} images lie directly in it" if loose else ""))
        classes = names
    memory.check(memory.tensor_bytes(len(files), (channels, side, side), 2),      # uint8 decoded, then stacked
                 f"{len(files)} images of {channels}x{side}x{side}", "lower the resolution")
    arrays, ys, bad = [], [], []
    for p, a in zip(files, decode_all(files, channels, side)):
        if a is None:                      # any decoder failure means an unusable file
            bad.append(p)
            continue
        arrays.append(a)
        if classes is not None:
            ys.append(classes.index(p.relative_to(root).parts[0]))
    if not arrays:
        what = (f"the one image file under {root} could not be read" if len(files) == 1 else
                f"none of the {len(files)} image files under {root} could be read")
        raise UserError(f"{what} ({why_unreadable(bad[0], root)}); "
                        f"give a folder of {IMAGE_KINDS} files")
    used = set(ys)
    if classes is not None and len(used) < len(classes):
        empty = [c for i, c in enumerate(classes) if i not in used]
        print(f"ganforge: warning: left out {len(empty)} class folder{'s' * (len(empty) > 1)} with no readable image "
              f"({', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''}); {len(classes) - len(empty)} classes",
              file=sys.stderr)
        kept = [c for c in classes if c not in empty]
        ys = [kept.index(classes[i]) for i in ys]
        classes = kept
    if bad or non_images or hidden:
        print(f"ganforge: {skipped_line(root, bad, non_images, hidden)}; using {len(arrays)} images",
              file=sys.stderr)
    x = torch.from_numpy(np.stack(arrays))                 # uint8, as decoded
    y = torch.tensor(ys, dtype=torch.int64) if classes is not None else None
    return x, y, classes
