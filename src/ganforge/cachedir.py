"""The folder of ganforge's per-machine caches: ``$GANFORGE_CACHE``, else ``~/.cache/ganforge``.

It holds the real data's reference statistics (metrics/cache.py) and the precision that ``precision=auto`` measured
for a CPU (train/precision_auto.py); both are rebuilt when deleted.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("GANFORGE_CACHE") or Path.home() / ".cache" / "ganforge")
