"""The ``data`` section of the config: which samples a run trains on and how they are prepared.

It lives with the data code, as a family's options live with the family
(ganforge.nets), so that the data layer and the evaluation's real side
(metrics.sources) use it without the whole config; ganforge.config puts it
in its place as ``Config.data``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..schema import opt


@dataclass
class DataConfig:
    """Where the real samples come from."""
    name: str = opt("mnist", "a registered dataset (ganforge data list), folder:PATH, zip:PATH, npz:PATH, idx:PATH or "
                    "cifar10:PATH")
    resolution: Optional[int] = opt(None, "image side in pixels after center-crop and resize; null keeps the dataset's own", min=1)
    channels: Optional[int] = opt(None, "1 (gray) or 3 (RGB); null keeps the dataset's own (image-to-image: "
                                  "of domain B, the outputs)", choices=(1, 3))
    channels_a: Optional[int] = opt(None, "image-to-image: channels of domain A, the inputs; null keeps the data's "
                                    "own", choices=(1, 3))
    holdout: float = opt(0.0, "fraction of the data held out (stratified by label when there are labels)", min=0.0, lt=1.0)
    split: str = opt("train", "which part to train on", choices=("train", "holdout", "all"))
    range: Optional[str] = opt(None, "npz:PATH and idx:PATH: the pixel values' range as LO,HI (e.g. -1,1 or 0,255); "
                               "null: the file's own 'range' entry, else the dtype's (integers 0,255, uint16 "
                               "0,65535, floats 0,1); values outside are clipped and counted, over 1% refused")
    mirror: bool = opt(False, "images: each one also seen mirrored left-right (x-flip dataset amplification, "
                       "Karras et al. 2020's --mirror); the epoch doubles")
    labels: bool = opt(False, "folder:PATH only: take class labels from the names of sub-folders")
    cache: str = opt("auto", "zip:PATH: hold the decoded images in memory (ram; uint8), decode them as batches are "
                     "drawn (none; worker processes read ahead), or ram when they fit data.cache_gb (auto)",
                     choices=("auto", "ram", "none"))
    cache_gb: Optional[float] = opt(None, "zip:PATH, data.cache=auto: the most memory the decoded images may take, "
                                    "in GB; null: half the memory available at the start", min=0.0)
    workers: Optional[int] = opt(None, "zip:PATH streamed (data.cache=none): worker processes that decode batches "
                                 "ahead of the step; 0 decodes in the training process; null: half the cores, "
                                 "1 to 4", min=0)
