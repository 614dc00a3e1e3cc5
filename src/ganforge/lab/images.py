"""The image data and the short image runs the lab's image experiments share.

``mnist()`` is the embedded MNIST training split (the 5,000 real digits of
``data=mnist`` less its held-out part), as ``ganforge train`` sees it.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def mnist():
    from ..config import load_config
    from ..data import load_dataset
    return load_dataset(load_config(None, ("data=mnist",)).data)
