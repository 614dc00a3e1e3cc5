"""``ganforge translate``: run a pix2pix or CycleGAN generator on an image file or a folder of them.

Each input is read as the run's training data was (its domain's channels,
transparency over white, centre crop, bicubic resize to the run's side:
data.files.image_to_array), translated by the run's generator (the EMA one
when the run keeps it; CycleGAN: ``--direction ba`` maps B to A) and written
as PNG. A folder is translated into a folder of the same relative names;
nothing existing is overwritten without ``--force``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..runs import atomic
from .common import count


def add_parser(sub):
    t = sub.add_parser("translate", help="translate images with a pix2pix or cyclegan run")
    t.add_argument("run")
    t.add_argument("--input", required=True, help="an image file or a folder of images")
    t.add_argument("--out", required=True, help="a .png file (one input) or a folder (a folder of inputs)")
    t.add_argument("--direction", choices=("ab", "ba"), default="ab", help="cyclegan: ba maps domain B to A")
    t.add_argument("--batch", type=count(), default=64)
    t.add_argument("--force", action="store_true", help="replace outputs that exist")
    return t


def _inputs(src: Path) -> tuple[list[Path], Path, int, int]:
    """(image files, their root, how many other files, how many hidden) of --input."""
    from ..data.folder import IMAGE_KINDS, IMAGE_SUFFIXES, list_images
    if src.is_file():
        if src.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"--input {src} is not an image ({', '.join(s[1:] for s in sorted(IMAGE_SUFFIXES))})")
        return [src], src.parent, 0, 0
    if not src.is_dir():
        raise UserError(f"--input {src} does not exist")
    files, non_images, hidden = list_images(src)
    if not files:
        raise UserError(f"no images found under {src}; give {IMAGE_KINDS} files")
    return files, src, non_images, hidden


def _targets(files: list[Path], root: Path, out: Path, single: bool, force: bool) -> list[Path]:
    """The output of each input: --out itself for one image, else the same relative names under the --out folder;
    each one passes the one --out rule."""
    if single:
        return [atomic.check_out(out, force, (".png",))]
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; a folder of inputs needs an output folder")
    return [atomic.check_out(out / f.relative_to(root).with_suffix(".png"), force) for f in files]


def run(a) -> int:
    from ..api import load_run
    from ..data.folder import image_to_array, open_image, skipped_line
    from ..viz.grid import png_bytes, to_uint8
    if a.batch < 1:
        raise UserError(f"--batch must be at least 1, got {a.batch}")
    run = load_run(a.run)
    if not run.translates:
        raise UserError(f"{a.run} is a {run.config.model.name} run; translate takes pix2pix and cyclegan runs "
                        "(ganforge sample draws from the others)")
    if a.direction == "ba" and run.config.model.name != "cyclegan":
        raise UserError("--direction ba needs a cyclegan run: pix2pix translates A to B only")
    src = Path(a.input)
    files, root, non_images, hidden = _inputs(src)
    targets = _targets(files, root, Path(a.out), src.is_file(), a.force)
    shape_in = run.info["shape_a"] if a.direction == "ab" else run.info["shape"]
    channels, side = shape_in[0], shape_in[1]
    done, bad = 0, []
    for start in range(0, len(files), a.batch):
        chunk, outs = files[start:start + a.batch], targets[start:start + a.batch]
        arrays, keep = [], []
        for f, t in zip(chunk, outs):
            try:
                with open_image(f) as im:
                    im.load()
                    arrays.append(image_to_array(im, channels, side))
                keep.append(t)
            except Exception:          # any decoder failure means an unusable file
                bad.append(f)
        if not arrays:
            continue
        x = torch.from_numpy(np.stack(arrays).astype(np.float32) / 127.5 - 1.0)
        y = run.translate(x, a.direction).cpu()
        for img, t in zip(to_uint8(y), keep):
            t.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(t, png_bytes(img[..., 0] if img.shape[-1] == 1 else img))
            done += 1
    if not done:
        raise UserError(f"none of the {len(files)} input images could be read (e.g. {bad[0].name})")
    if bad or non_images or hidden:
        print(f"ganforge: {skipped_line(root, bad, non_images, hidden)}", file=sys.stderr)
    where = targets[0] if src.is_file() else Path(a.out)
    print(f"translated {done} image{'s' if done != 1 else ''} ({a.direction}, {side}x{side}) to {where}")
    return 0
