"""The reference-statistics cache: real data's features are extracted once per extractor.

A cache entry holds the running statistics (mean, sum of squared deviations,
n) of one set of real images, and their features and logits when a metric
needed them. It is keyed by everything that changes the numbers: the data
(name, split, held-out fraction, resolution, channels; for files also their
path, total size and newest modification time), the number of images, the
extractor, its weights hash and its preprocessing protocol. torch-fidelity
(Obukhov et al. 2020) caches the same way. The folder is
``$GANFORGE_CACHE`` or ``~/.cache/ganforge``; entries are written atomically.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import torch

from ..cachedir import cache_root
from ..runs import atomic
from .extract import Extracted
from .fid import FeatureStats

VERSION = 1


def cache_dir() -> Path:
    return cache_root() / "stats"


def file_fingerprint(path: str) -> dict:
    """Path, total size and newest mtime of a file or of the files under a folder."""
    p = Path(path).expanduser().resolve()
    files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
    st = [f.stat() for f in files]
    return {"path": str(p), "bytes": sum(s.st_size for s in st), "mtime": max((s.st_mtime for s in st), default=0.0),
            "files": len(st)}


def entry_path(key: dict) -> Path:
    blob = json.dumps({"v": VERSION, **key}, sort_keys=True, default=str).encode()
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{key.get('data', 'data')}-{key.get('extractor', '')}")
    return cache_dir() / f"{name}-{hashlib.sha256(blob).hexdigest()[:16]}.pt"


def load(key: dict, need_features: bool, need_logits: bool) -> Optional[Extracted]:
    """The cached entry for ``key`` if it exists and holds what is needed."""
    path = entry_path(key)
    if not path.is_file():
        return None
    try:
        e = torch.load(path, map_location="cpu", weights_only=True)
        if (need_features and e.get("features") is None) or (need_logits and e.get("logits") is None):
            return None
        stats = FeatureStats(e["mean"].shape[0])
        stats.mean, stats.m2, stats.n = e["mean"], e["m2"], int(e["n"])
        return Extracted(stats, e.get("features"), e.get("logits"), int(e["n"]), 0.0)
    except Exception:  # any damaged or foreign entry is recomputed (and then overwritten)
        return None


def save(key: dict, x: Extracted) -> Path:
    path = entry_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.save_torch({"key": json.dumps(key, sort_keys=True, default=str), "mean": x.stats.mean, "m2": x.stats.m2,
                       "n": x.stats.n, "features": x.features, "logits": x.logits}, path)
    return path
