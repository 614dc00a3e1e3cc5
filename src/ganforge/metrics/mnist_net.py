"""ganforge's own MNIST digit classifier, used as the feature network for digits.

A small LeNet-style CNN (LeCun et al., "Gradient-based learning applied to
document recognition", Proc. IEEE 1998; two conv-conv-pool stages with 3x3
kernels and batch normalisation as in Simonyan & Zisserman 2015 and Ioffe &
Szegedy 2015) trained on the embedded MNIST digits. Evaluating generators of
digits with a digit classifier instead of ImageNet Inception follows the MNIST
"classifier score"/FID practice of e.g. Lucic et al., "Are GANs Created
Equal?" (NeurIPS 2018).

Weights ship inside the package (``weights/mnist-classifier.pt``, a float32
state dict readable with ``torch.load(weights_only=True)``); they are made by
``python benchmarks/train_mnist_classifier.py``, which trains on the 4,000
digits of ganforge's fixed stratified split ``data.holdout=0.2`` and reports
the accuracy on the other 1,000 (``benchmarks/results/mnist_classifier.json``).

Preparation (the ``protocol`` string): three channels become their mean, any
size other than 28x28 is resized to 28x28 with antialiased bilinear
interpolation, and values stay in [-1, 1] as ganforge holds them (the network
was trained on exactly that). Features are the 128-d penultimate layer after
its ReLU; logits are the 10 digit classes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from .extractor import Extractor, file_hash, load_weights

WEIGHTS = Path(__file__).parent / "weights" / "mnist-classifier.pt"
TRAIN_SCRIPT = "python benchmarks/train_mnist_classifier.py"
SIZE = 28
FEATURES = 128


def prepare(x: Tensor) -> Tensor:
    """Images in [-1, 1], (N, 1 or 3, H, W) -> (N, 1, 28, 28) float32 in [-1, 1]."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise UserError(f"the mnist extractor takes (N, 1 or 3, H, W) images; got shape {tuple(x.shape)}")
    x = x.float()
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    if tuple(x.shape[-2:]) != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class MnistNet(nn.Module):
    """28x28 -> [conv32, conv32, pool] -> [conv64, conv64, pool] -> pool to 3x3 -> fc 128 + ReLU -> fc 10."""

    def __init__(self, features: int = FEATURES, classes: int = 10, dropout: float = 0.3):
        super().__init__()
        self.body = nn.Sequential(
            *_conv(1, 32), *_conv(32, 32), nn.MaxPool2d(2),          # 14x14
            *_conv(32, 64), *_conv(64, 64), nn.MaxPool2d(2),         # 7x7
            nn.AdaptiveMaxPool2d(3),                                 # 3x3 (overlapping windows)
            nn.Flatten(),
        )
        self.fc1 = nn.Linear(64 * 3 * 3, features)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(features, classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 1, 28, 28) in [-1, 1] -> (penultimate features after ReLU, logits)."""
        f = F.relu(self.fc1(self.body(x)))
        return f, self.fc2(self.drop(f))


class MnistExtractor(Extractor):
    """The digit classifier's 128-d penultimate features and 10 logits."""

    name = "mnist"
    dim = FEATURES
    has_logits = True
    protocol = ("3 channels averaged to 1; bilinear antialiased resize to 28x28; [-1,1] as given; "
                "128-d ReLU penultimate layer of ganforge's MNIST CNN")

    def __init__(self, net: MnistNet, weights_hash: str):
        super().__init__()
        self.net = net
        self.weights_hash = weights_hash
        self.net.requires_grad_(False)
        self.train(False)

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        f, logits = self.net(prepare(x))
        return f.float(), logits.float()


def build_mnist(weights: Optional[str] = None) -> Extractor:
    """The classifier with the packaged weights (or a state dict file saved by the training script)."""
    path = Path(weights) if weights is not None else WEIGHTS
    if not path.is_file():
        how = f"make them with: {TRAIN_SCRIPT}" if weights is None else "give the path of a file saved by " + TRAIN_SCRIPT
        raise UserError(f"the mnist extractor's weights {path} are missing; {how}")
    net = load_weights(MnistNet(), path, "mnist classifier", f"remake them with {TRAIN_SCRIPT}", to_float=True)
    return MnistExtractor(net, file_hash(path))
