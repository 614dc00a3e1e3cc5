"""Model families: shapes, gradients, spectral norm, unsupported sizes."""
import pytest
import torch

from ganforge.config import load_config
from ganforge.errors import UserError
from ganforge.nets import build_nets
from ganforge.nets.dcgan import plan


def nets(shape, *overrides):
    cfg = load_config(None, list(overrides))
    torch.manual_seed(0)
    return build_nets(cfg.model, shape)


@pytest.mark.parametrize("side", [8, 14, 16, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(side, channels):
    G, D = nets((channels, side, side), "model.g_width=8", "model.d_width=8")
    z = torch.randn(3, 100)
    x = G(z)
    assert x.shape == (3, channels, side, side)
    assert x.abs().max() <= 1
    assert D(x).shape == (3,)


def test_dcgan_plan_and_bad_sides():
    assert plan(28) == (7, 2) and plan(32) == (4, 3) and plan(64) == (4, 4)
    for side in (30, 4, 7, 100, 48):
        with pytest.raises(UserError, match="cannot build"):
            plan(side)
    with pytest.raises(UserError, match="needs image data"):
        nets((2,))


@pytest.mark.parametrize("shape,overrides", [
    ((1, 28, 28), ["model.g_width=8", "model.d_width=8", "model.d_norm=batch"]),
    ((3, 32, 32), ["model.g_width=8", "model.d_width=8", "model.spectral_norm=true", "model.g_spectral_norm=true"]),
    ((2,), ["model=mlp", "model.hidden=16"]),
    ((1, 8, 8), ["model=mlp", "model.hidden=16"]),
])
def test_gradients_reach_every_parameter(shape, overrides):
    G, D = nets(shape, *overrides)
    out = D(G(torch.randn(4, G.z_dim)))
    out.sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mlp_shapes_and_packing():
    G, D = nets((2,), "model=mlp", "model.pack=4", "model.z_dim=3")
    x = G(torch.randn(8, 3))
    assert x.shape == (8, 2) and D(x).shape == (2,)
    G, D = nets((1, 8, 8), "model=mlp")
    assert G(torch.randn(5, 100)).shape == (5, 1, 8, 8)


def test_spectral_norm_keeps_sigma_near_one():
    G, D = nets((1, 28, 28), "model.g_width=8", "model.d_width=8", "model.spectral_norm=true")
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    for _ in range(30):                 # training steps that would grow unconstrained weights
        loss = -D(torch.randn(16, 1, 28, 28)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    D.eval()
    layers = [m for m in D.modules() if hasattr(m, "parametrizations")]
    assert layers
    for m in layers:
        w = m.weight.detach()
        w2 = w.transpose(0, 1) if isinstance(m, torch.nn.ConvTranspose2d) else w
        sigma = torch.linalg.matrix_norm(w2.flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_seeded_build_is_deterministic():
    a, _ = nets((1, 28, 28))
    b, _ = nets((1, 28, 28))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
