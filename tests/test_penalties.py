"""The regularizers on hand-computed cases."""
import pytest
import torch

from ganforge.penalties import clip_weights, gradient_penalty, r1_penalty


def test_r1_of_a_linear_critic_is_half_squared_weight_norm():
    w = torch.tensor([3.0, -4.0], requires_grad=True)
    x = torch.randn(16, 2, requires_grad=True)
    pen = r1_penalty(x @ w, x)
    assert pen.item() == pytest.approx(0.5 * 25.0)
    (gw,) = torch.autograd.grad(pen, w)          # double backward reaches D's weights
    assert torch.allclose(gw, w.detach())


def test_r1_of_a_quadratic_critic():
    # D(x) = sum x^2, grad = 2x, penalty = 1/2 mean ||2x||^2 = 2 mean ||x||^2
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    pen = r1_penalty(x.square().sum(1), x)
    assert pen.item() == pytest.approx(2 * (5 + 1) / 2)


def test_gradient_penalty_of_a_linear_critic():
    # grad is w everywhere, so the penalty is (||w|| - 1)^2 whatever the interpolates
    w = torch.tensor([3.0, -4.0], requires_grad=True)
    real, fake = torch.randn(32, 2), torch.randn(32, 2)
    pen = gradient_penalty(lambda v: v @ w, real, fake, torch.Generator().manual_seed(0))
    assert pen.item() == pytest.approx((5.0 - 1.0) ** 2, rel=1e-5)
    (gw,) = torch.autograd.grad(pen, w)          # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(gw, 2 * 4.0 * w.detach() / 5.0, rtol=1e-5)


def test_gradient_penalty_interpolates_between_real_and_fake():
    seen = []
    real, fake = torch.zeros(64, 3), torch.ones(64, 3)

    def d(v):
        seen.append(v.detach().clone())
        return v.sum(1)
    gradient_penalty(d, real, fake, torch.Generator().manual_seed(1))
    v = seen[0]
    assert (v >= 0).all() and (v <= 1).all()
    assert torch.allclose(v, v[:, :1].expand_as(v))   # one epsilon per sample
    assert v[:, 0].std() > 0.1


def test_clip_weights():
    m = torch.nn.Linear(4, 4)
    with torch.no_grad():
        m.weight.mul_(100)
    clip_weights(m, 0.01)
    assert m.weight.abs().max().item() <= 0.01 and m.bias.abs().max().item() <= 0.01
