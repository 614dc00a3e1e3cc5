"""Paired images for image-to-image translation: input A and target B of the same scene.

pix2pix (Isola, Zhu, Zhou & Efros 2017) learns G: A -> B from pairs. Two
layouts of a folder PATH are read:

- side by side: every image is A|B, the input in the left half and the
  target in the right, the format of the pix2pix datasets (facades, maps,
  edges2shoes: 512x256 files). Chosen when PATH has no A/ and B/ folders.
- two folders, PATH/A and PATH/B, holding files of the same relative names
  (the suffix may differ: A/cat.png pairs with B/cat.jpg). A name found on one
  side only is a mistake, reported with a count and an example.

Each half is decoded as an image folder's files are (transparency over
white, centre crop, bicubic resize to ``resolution``), each side with its
own channel count (gray edges to RGB photos: ``channels_a=1,
channels_b=3``; None: 1 if that side's files are gray, else 3). Returns
(A, B, names): float32 (N, C, S, S) in [0, 1] and the pair names.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import UserError
from .folder import IMAGE_KINDS, folder_channels, image_to_array, list_images, need_dir, open_image, skipped_line


def _side_by_side(root: Path, files: list[Path], ca: Optional[int], cb: Optional[int], side: int):
    ca, cb = ca or folder_channels(files), cb or folder_channels(files)
    a_list, b_list, names, bad = [], [], [], []
    for p in files:
        try:
            with open_image(p) as im:
                im.load()
                w, h = im.size
                if w < 2:
                    raise ValueError("too narrow")
                left, right = im.crop((0, 0, w // 2, h)), im.crop((w // 2, 0, w, h))
                a_list.append(image_to_array(left, ca, side)), b_list.append(image_to_array(right, cb, side))
                names.append(str(p.relative_to(root).with_suffix("")))
        except Exception:          # any decoder failure means an unusable file
            bad.append(p)
    return a_list, b_list, names, bad


def _two_folders(root: Path, ca: Optional[int], cb: Optional[int], side: int, others: list):
    sides = {}
    for key in ("A", "B"):
        files, non_images, hidden = list_images(root / key)
        others[0] += non_images
        others[1] += hidden
        if not files:
            raise UserError(f"no images found under {root / key}; give {IMAGE_KINDS} files")
        sides[key] = {str(p.relative_to(root / key).with_suffix("")): p for p in files}
    only_a = sorted(set(sides["A"]) - set(sides["B"]))
    only_b = sorted(set(sides["B"]) - set(sides["A"]))
    if only_a or only_b:
        side_name, lonely = ("A", only_a) if only_a else ("B", only_b)
        raise UserError(f"{len(only_a)} images in {root / 'A'} and {len(only_b)} in {root / 'B'} have no partner "
                        f"of the same name (e.g. {side_name}/{lonely[0]})")
    names = sorted(sides["A"])
    ca = ca or folder_channels(list(sides["A"].values()))
    cb = cb or folder_channels(list(sides["B"].values()))
    a_list, b_list, kept, bad = [], [], [], []
    for n in names:
        try:
            arrays = []
            for key, c in (("A", ca), ("B", cb)):
                with open_image(sides[key][n]) as im:
                    im.load()
                    arrays.append(image_to_array(im, c, side))
        except Exception:          # any decoder failure means an unusable pair
            bad.append(sides["A"][n])
            continue
        a_list.append(arrays[0]), b_list.append(arrays[1]), kept.append(n)
    return a_list, b_list, kept, bad


def load_pairs(path: str, resolution: Optional[int] = None, channels_a: Optional[int] = None,
               channels_b: Optional[int] = None):
    root = Path(path).expanduser()
    need_dir(root, "paired image folder")
    side = resolution or 256
    others = [0, 0]                        # files that are not images, hidden files and folders
    if (root / "A").is_dir() and (root / "B").is_dir():
        a_list, b_list, names, bad = _two_folders(root, channels_a, channels_b, side, others)
    else:
        files, others[0], others[1] = list_images(root)
        if not files:
            raise UserError(f"no images found under {root}, and no A/ and B/ sub-folders; give {IMAGE_KINDS} files "
                            "(A|B side by side), or A/ and B/ folders of files with the same names")
        a_list, b_list, names, bad = _side_by_side(root, files, channels_a, channels_b, side)
    if not a_list:
        raise UserError(f"none of the image pairs under {root} could be read")
    if bad or any(others):
        print(f"ganforge: {skipped_line(root, bad, *others)}; using {len(a_list)} pair{'s' * (len(a_list) != 1)}", file=sys.stderr)
    to_unit = lambda arrs: torch.from_numpy(np.stack(arrs).astype(np.float32) / 255.0)  # noqa: E731
    return to_unit(a_list), to_unit(b_list), names
