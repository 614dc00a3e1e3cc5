"""Each objective against its closed form."""
import math

import pytest
import torch

from ganforge.losses import LOSSES


def logits(*v):
    return torch.tensor(v, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "relativistic", "relativistic-average"])
def test_d_loss_at_half_is_2_log_2(name):
    # D == 1/2 everywhere (logit 0): -log(1/2) - log(1/2) = 2 log 2 (Goodfellow et al. 2014)
    z = torch.zeros(7, dtype=torch.float64)
    expected = 2 * math.log(2) if name != "relativistic" else math.log(2)
    assert LOSSES[name].d(z, z).item() == pytest.approx(expected, abs=1e-12)


def test_saturating_and_nonsaturating_generator_gradients():
    # d/da log(1 - sigmoid(a)) = -D and d/da[-log sigmoid(a)] = -(1 - D), per sample of the mean
    a = logits(-6.0, -4.6, -1.0, 0.0, 2.0, 5.0)
    d = torch.sigmoid(a.detach())
    (g_sat,) = torch.autograd.grad(LOSSES["minimax"].g(a, None), a)
    (g_ns,) = torch.autograd.grad(LOSSES["nonsaturating"].g(a, None), a)
    n = len(a)
    assert torch.allclose(g_sat * n, -d, atol=1e-12)
    assert torch.allclose(g_ns * n, -(1 - d), atol=1e-12)
    # at D = 0.01 the magnitudes are 0.01 vs 0.99 (the seeds' figure)
    a1 = logits(math.log(0.01 / 0.99))
    (s,) = torch.autograd.grad(LOSSES["minimax"].g(a1, None), a1)
    (ns,) = torch.autograd.grad(LOSSES["nonsaturating"].g(a1, None), a1)
    assert abs(s.item()) == pytest.approx(0.01, abs=1e-9)
    assert abs(ns.item()) == pytest.approx(0.99, abs=1e-9)


def test_logit_losses_are_finite_at_extreme_logits():
    a = logits(-1e4, -100.0, 100.0, 1e4)
    for name in ("minimax", "nonsaturating", "relativistic", "relativistic-average"):
        loss = LOSSES[name].d(a, a.flip(0)) + LOSSES[name].g(a, a.flip(0))
        (g,) = torch.autograd.grad(loss, a)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), name


def test_bce_d_optimum_is_p_over_p_plus_q():
    # pointwise: p * -log D(a) + q * -log(1 - D(a)) is minimal at D = p / (p + q)
    p, q = 0.3, 0.7
    a = logits(math.log(p / q))
    loss = p * LOSSES["nonsaturating"].d(a, torch.tensor([-1e9], dtype=torch.float64)) \
        + q * LOSSES["nonsaturating"].d(torch.tensor([1e9], dtype=torch.float64), a)
    (g,) = torch.autograd.grad(loss, a)
    assert abs(g.item()) < 1e-12
    assert torch.sigmoid(a).item() == pytest.approx(p / (p + q))


def test_wasserstein_and_hinge_and_least_squares_closed_forms():
    r = torch.tensor([2.0, 0.5, -0.5])
    f = torch.tensor([-2.0, 0.0, 1.5])
    assert LOSSES["wasserstein"].d(r, f).item() == pytest.approx(f.mean() - r.mean())
    assert LOSSES["wasserstein"].g(f, r).item() == pytest.approx(-f.mean())
    # hinge: mean(relu(1 - r)) + mean(relu(1 + f)) = (0 + .5 + 1.5)/3 + (0 + 1 + 2.5)/3
    assert LOSSES["hinge"].d(r, f).item() == pytest.approx(2.0 / 3 + 3.5 / 3)
    assert LOSSES["hinge"].g(f, r).item() == pytest.approx(-f.mean())
    # LSGAN (a=0, b=1, c=1): 1/2 E[(r-1)^2] + 1/2 E[f^2]
    assert LOSSES["least-squares"].d(r, f).item() == pytest.approx(0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean())
    assert LOSSES["least-squares"].g(f, r).item() == pytest.approx(0.5 * ((f - 1) ** 2).mean())
    # at the LSGAN optimum of D for D's targets the loss is zero
    assert LOSSES["least-squares"].d(torch.ones(3), torch.zeros(3)).item() == 0.0


def test_relativistic_losses():
    r = torch.tensor([1.0, 3.0])
    f = torch.tensor([0.0, -1.0])
    sp = torch.nn.functional.softplus
    assert LOSSES["relativistic"].d(r, f).item() == pytest.approx(sp(-(r - f)).mean().item())
    assert LOSSES["relativistic"].g(f, r).item() == pytest.approx(sp(-(f - r)).mean().item())
    ra = sp(-(r - f.mean())).mean() + sp(f - r.mean()).mean()
    assert LOSSES["relativistic-average"].d(r, f).item() == pytest.approx(ra.item())
    # symmetry: G's RaGAN loss is D's with the roles of real and fake swapped
    assert LOSSES["relativistic-average"].g(f, r).item() == pytest.approx(LOSSES["relativistic-average"].d(f, r).item())


def test_defaults_of_each_objective():
    assert LOSSES["wgan-gp"].penalty == "gp"
    assert LOSSES["wasserstein"].clip == 0.01
    assert LOSSES["nonsaturating"].probability and not LOSSES["hinge"].probability
