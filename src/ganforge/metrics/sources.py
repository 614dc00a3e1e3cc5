"""Where evaluation samples come from: a run's dataset, a registered dataset, a folder or an npz file.

Each becomes an :class:`~ganforge.metrics.evaluate.RealSet` (samples in
[-1, 1], the cache key that identifies them, the toy density when there is
one, and whether the images are digits a classifier can count modes on).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

from ..data import load_dataset
from ..data.options import DataConfig
from ..data.embedded import EMBEDDED
from ..data.toy import TOYS
from ..errors import UserError
from .cache import file_fingerprint
from .evaluate import RealSet


def _digits(name: str, shape: tuple) -> Optional[str]:
    if name == "stacked-mnist":
        return "stacked"
    return "mnist" if tuple(shape) == (1, 28, 28) else None


def from_data_config(cfg: DataConfig, split: Optional[str] = None, loaded=None) -> RealSet:
    """The real samples a run's data section names (``split`` overrides its split); ``loaded``: that dataset,
    already loaded (a training run's: an archive is not opened, or decoded, twice)."""
    cfg = copy.deepcopy(cfg)
    if split is not None:
        if split == "holdout" and cfg.holdout <= 0:
            raise UserError("--real-split holdout: this run holds nothing out (data.holdout=0)")
        cfg.split = split
    ds = loaded if loaded is not None and split is None else load_dataset(cfg)
    key = {"data": cfg.name, "split": cfg.split, "holdout": cfg.holdout, "resolution": cfg.resolution,
           "channels": cfg.channels}
    if cfg.range is not None:
        key["range"] = cfg.range
    kind = cfg.name.split(":", 1)[0]
    if ":" in cfg.name and kind in ("folder", "zip", "npz", "idx", "cifar10"):
        key["files"] = file_fingerprint(cfg.name.split(":", 1)[1])
    return RealSet(f"{cfg.name} ({cfg.split})", ds.samples, key, ds.density, _digits(cfg.name, ds.shape) if ds.kind == "image" else None,
                   ds.y, ds.values)


def _folder_side(path: Path) -> int:
    from ..data.folder import IMAGE_KINDS, list_images, open_image
    files, _, _ = list_images(path)
    for p in files:                        # the first that opens; unreadable ones are counted when loading
        try:
            with open_image(p) as im:
                return min(im.size)
        except Exception:                  # any decoder failure means an unusable file
            continue
    raise UserError(f"no readable images under {path}; give a folder of {IMAGE_KINDS} files")


def from_path(spec: str, resolution: Optional[int] = None, channels: Optional[int] = None,
              value_range: Optional[str] = None) -> RealSet:
    """A folder of images, an image archive (a .zip, zip:PATH, or a folder with a dataset.json), an .npz file
    (array x) or a registered dataset name (all of it); ``value_range``:
    an npz's pixel range (--range)."""
    if spec in EMBEDDED or spec in TOYS:
        return from_data_config(DataConfig(name=spec, split="all", resolution=resolution, channels=channels))
    p = Path(spec).expanduser()
    if spec.startswith("zip:") or p.suffix.lower() == ".zip" or (p / "dataset.json").is_file():
        name = spec if spec.startswith("zip:") else f"zip:{p}"        # an archive: its own resolution
    elif p.is_dir():
        name = f"folder:{p}"
        resolution = resolution or _folder_side(p)
    elif p.suffix == ".npz" and p.is_file():
        name = f"npz:{p}"
    elif not p.exists():
        raise UserError(f"{spec} is neither a folder, a .zip archive, an .npz file nor a dataset name (ganforge data list)")
    else:
        raise UserError(f"{spec}: give a folder of images, a .zip archive (ganforge data pack) or an .npz file with an array x")
    cfg = DataConfig(name=name, resolution=resolution, channels=channels, split="all",
                     range=value_range if name.startswith("npz:") else None)
    return from_data_config(cfg)
