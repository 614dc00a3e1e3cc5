"""The image data, run and classifier the lab's image experiments share.

``mnist()`` is the embedded MNIST training split, as ``ganforge train`` sees
it. ``short_run`` trains the textbook DCGAN (mnist-dcgan: non-saturating loss,
lazy R1) for a few hundred steps with frequent fixed-z sample dumps: long
enough for digits to appear on 2 CPU cores within the lab's time budget.
``classify`` is the evaluation issue's digit classifier (99.4% on held-out
digits).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch


@lru_cache(maxsize=1)
def mnist():
    from ..config import load_config
    from ..data import load_dataset
    return load_dataset(load_config(None, ("data=mnist",)).data)


def short_run(folder: Path, steps: int, samples_every: int, seed: int = 0):
    """Train the textbook DCGAN (mnist-dcgan) for ``steps`` into ``folder/run``; returns the opened run. Without the
    run's own evaluation (5-8 s of a quick run): the experiments measure what they show themselves."""
    from ..train.start import train
    return train("mnist-dcgan", out=folder, name="run", steps=steps, seed=seed, progress="off",
                 log={"every": max(1, steps // 10), "samples_every": samples_every, "checkpoint_every": steps},
                 eval={"metrics": "none"})


def run_label(lab, run: Path) -> str:
    """How result.json names the run: 'run' for the one trained inside the experiment's folder."""
    run = Path(run)
    return "run (trained here)" if run.parent == lab.out else str(run)


def open_run(path: Path):
    from ..api import load_run
    from ..errors import UserError
    run = load_run(path)
    if run.info.get("shape") is None or len(run.info["shape"]) != 3:
        raise UserError(f"{path} is not an image run (its samples have shape {run.info.get('shape')})")
    return run


@lru_cache(maxsize=1)
def classifier():
    """The digit classifier (an extractor: 128-d features and 10 logits), loaded once."""
    from ..metrics.mnist_net import build_mnist
    return build_mnist()


@torch.no_grad()
def classify(x: torch.Tensor) -> torch.Tensor:
    """The digit classifier's logits (N, 10) for images in [-1, 1] (any channels, resized to 28x28)."""
    net = classifier()
    return torch.cat([net(c)[1] for c in x.float().split(256)])
