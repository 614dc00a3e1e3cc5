"""SNGAN: ResNet G and D, spectral norm and hinge by default, training, save/load and exact resume."""
import pytest
import torch

from conftest import assert_same_nets, run_cli
from ganforge.api import load_run
from ganforge.config import dump, from_dict, load_config
from ganforge.nets import build_nets
from ganforge.nets.resnet import DBlock, GBlock

SMALL = ("model=sngan", "model.g_width=8", "model.d_width=8", "model.z_dim=16")


def _nets(shape, *extra, classes=0):
    cfg = load_config(None, (*SMALL, *extra))
    torch.manual_seed(0)
    return build_nets(cfg.model, shape, classes)


@pytest.mark.parametrize("side", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_every_side_and_channel_count(side, channels):
    G, D = _nets((channels, side, side))
    x = G(torch.randn(3, 16))
    assert x.shape == (3, channels, side, side) and x.abs().max() <= 1
    assert D(x).shape == (3,)
    assert D.features(x).shape[2] == (7 if side == 28 else 4)        # k down-blocks to the s x s map


@pytest.mark.parametrize("extra,classes", [((), 0), (("model.g_spectral_norm=true",), 0),
                                           (("model.conditional=true",), 10)])
def test_gradients_reach_every_parameter(extra, classes):
    G, D = _nets((1, 28, 28), *extra, classes=classes)
    z = torch.randn(4, 16)
    y = torch.tensor([0, 3, 5, 9]) if classes else None
    out = D(G(z, y), y) if classes else D(G(z))
    out.sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_blocks_residual_paths():
    """With the residual branch's last conv zeroed a block is its shortcut: identity when nothing changes
    shape, nearest upsampling then a 1x1 conv in G, a 1x1 conv then 2x2 average pooling in D."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    g = GBlock(4, 4, torch.nn.BatchNorm2d, up=False)
    torch.nn.init.zeros_(g.c2.weight), torch.nn.init.zeros_(g.c2.bias)
    torch.testing.assert_close(g(x), x)
    g = GBlock(4, 6, torch.nn.BatchNorm2d)
    torch.nn.init.zeros_(g.c2.weight), torch.nn.init.zeros_(g.c2.bias)
    torch.testing.assert_close(g(x), g.skip(x.repeat_interleave(2, 2).repeat_interleave(2, 3)))
    d = DBlock(4, 6)
    torch.nn.init.zeros_(d.c2.weight), torch.nn.init.zeros_(d.c2.bias)
    torch.testing.assert_close(d(x), torch.nn.functional.avg_pool2d(d.skip(x), 2))


def test_family_defaults_hinge_and_spectral_norm_unless_set():
    cfg = load_config(None, ("model=sngan",))
    assert cfg.loss == "hinge" and cfg.model.spectral_norm and not cfg.model.g_spectral_norm
    cfg = load_config(None, ("model=sngan", "loss=nonsaturating", "model.spectral_norm=false"))
    assert cfg.loss == "nonsaturating" and not cfg.model.spectral_norm
    assert load_config(None, ()).loss == "nonsaturating"                  # other families keep theirs
    saved = from_dict(load_config(None, ("model=sngan", "loss=wasserstein")).to_dict())
    assert saved.loss == "wasserstein" and saved.model.spectral_norm          # a run's config.yaml round trip
    assert "loss: hinge" in dump(load_config("mnist-sngan"))


@pytest.mark.cuda
def test_train_sigma_one_save_load_and_exact_resume(tmp_path):
    args = ["train", "mnist-sngan", *SMALL[1:], "batch_size=16", "log.every=2", "log.samples_every=100",
            "log.checkpoint_every=2", "eval.metrics=none", "optim.d.lr=0.01", "--out", tmp_path]
    r = run_cli(*args, "steps=6", "name=w")
    assert r.returncode == 0, r.stderr[-2000:]
    assert run_cli(*args, "steps=3", "name=p").returncode == 0
    assert run_cli("train", "steps=6", "--resume", tmp_path / "p").returncode == 0
    a, b = load_run(tmp_path / "w"), load_run(tmp_path / "p")
    assert_same_nets(a, b)
    # spectral norm: every conv and linear layer of the trained D has its largest singular value ~ 1
    layers = [m for m in a.D.modules() if hasattr(m, "parametrizations")]
    assert len(layers) == sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in a.D.modules()) == 9   # 3 blocks, a linear
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
        raw = torch.linalg.matrix_norm(m.parametrizations.weight.original.flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05) and abs(raw - 1) > 0.05
    # save/load: the loaded EMA generator gives the same samples twice, and those of a fresh load
    x = a.sample(8, seed=3)
    assert torch.equal(x, load_run(tmp_path / "w").sample(8, seed=3)) and x.shape == (8, 1, 28, 28)


def test_loading_checks_against_meta_nets_without_power_iterations(monkeypatch):
    """api.meta_nets (the checks before a checkpoint is loaded) builds without spectral norm's power iterations:
    on meta tensors they compute nothing and took seconds per load; real nets still iterate."""
    from torch.nn.utils.parametrizations import _SpectralNorm

    from ganforge.api import meta_nets
    calls, original = [], _SpectralNorm._power_method

    def counting(self, weight_mat, n):
        calls.append(weight_mat.is_meta)
        return original(self, weight_mat, n)
    monkeypatch.setattr(_SpectralNorm, "_power_method", counting)
    cfg = load_config("mnist-sngan", ("model.g_width=8", "model.d_width=8"))
    G, D = meta_nets(cfg.model, (1, 28, 28), 0, ())
    assert calls == [] and next(D.parameters()).is_meta
    assert _SpectralNorm._power_method is counting
    build_nets(cfg.model, (1, 28, 28))
    assert calls and not any(calls)
