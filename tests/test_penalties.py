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


@pytest.mark.parametrize("name", ["r1", "r2", "gp", "r1+r2"])
def test_a_penalty_in_its_own_pass_gives_the_gradient_of_one_joint_loss(name):
    """The game backpropagates the main loss, frees its graph, then runs the penalty's own pass (StyleGAN2's
    "Dreg", to hold one graph at a time): D's gradient must equal that of loss + weight * every * penalty."""
    from ganforge.games.gan import GANGame, GANOptions, Regularizer
    from ganforge.losses import LOSSES
    from ganforge.nets.dcgan import DCGANDiscriminator, DCGANGenerator
    from ganforge.rng import Stream
    from ganforge.train.precision import Precision

    torch.manual_seed(0)
    G, D = DCGANGenerator(8, 1, 16, 8, 32, "batch"), DCGANDiscriminator(1, 16, 8, 32, "none")
    G.z_dim = 8
    real = torch.rand(6, 1, 16, 16) * 2 - 1

    class Once:
        def next(self):
            return real.clone(), None

    weight, every = 3.0, 2
    opt = torch.optim.SGD(D.parameters(), lr=1.0)
    game = GANGame(G, D, None, opt, GANOptions(LOSSES["nonsaturating"], Regularizer(name, weight, every), batch_size=6),
                   batches=Once(), z_stream=Stream(0, "z"), aux_stream=Stream(0, "aux"),
                   precision=Precision("fp32", torch.device("cpu")))
    before = [p.detach().clone() for p in D.parameters()]
    stats = game.d_step()
    got = [b - p.detach() for b, p in zip(before, D.parameters())]      # SGD, lr 1: the gradient itself

    for p, b in zip(D.parameters(), before):
        p.data.copy_(b)
    z = torch.randn(6, 8, generator=Stream(0, "z").next())
    with torch.no_grad():
        fake = G(z)
    x_real, x_fake = real.clone().requires_grad_("r1" in name), fake.clone().requires_grad_("r2" in name)
    out_real, out_fake = D(x_real), D(x_fake)
    loss = LOSSES["nonsaturating"].d(out_real, out_fake)
    if name == "gp":
        pen = gradient_penalty(D, real, fake, Stream(0, "aux").next())
    else:
        pen = sum(r1_penalty(out_real, x_real) if part == "r1" else r1_penalty(out_fake, x_fake)
                  for part in name.split("+"))
    total = loss + weight * every * pen
    want = torch.autograd.grad(total, list(D.parameters()))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    assert float(stats["loss_d"]) == pytest.approx(float(total.detach()), rel=1e-5)
    assert float(stats["penalty"]) == pytest.approx(float(pen.detach()), rel=1e-5)


@pytest.mark.parametrize("r2_weight", [None, 0.5])
def test_r1_plus_r2_is_r3gans_gamma_over_2_times_r1_plus_r2_by_hand(r2_weight):
    """R3GAN (Huang et al. 2024): L_D + gamma/2 (R1 + R2), R1 = E||grad D(real)||^2, R2 = E||grad D(fake)||^2. For the
    linear critic D(x) = w.x + b both are ||w||^2, so the penalty's gradient on w is gamma * 2w (gamma_1 w + gamma_2 w
    with R2's own weight), beside the non-saturating loss's E[-sigmoid(-D(r)) r] + E[sigmoid(D(f)) f]."""
    from ganforge.games.gan import GANGame, GANOptions, Regularizer
    from ganforge.losses import LOSSES
    from ganforge.rng import Stream
    from ganforge.train.precision import Precision

    G, D = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    G.z_dim, G.n_classes = 3, 0
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[3.0, -4.0]]))
        D.bias.zero_()
    real = torch.tensor([[1.0, 2.0], [-0.5, 0.25], [0.0, -1.0], [2.0, 2.0]])

    class Once:
        def next(self):
            return real.clone(), None
    gamma, every = 2.0, 4
    opt = torch.optim.SGD(D.parameters(), lr=1.0)
    game = GANGame(G, D, None, opt, GANOptions(LOSSES["nonsaturating"], Regularizer("r1+r2", gamma, every, r2_weight),
                                               batch_size=4),
                   batches=Once(), z_stream=Stream(0, "z"), aux_stream=Stream(0, "aux"),
                   precision=Precision("fp32", torch.device("cpu")))
    w = D.weight.detach().clone()
    stats = game.d_step()
    step = w - D.weight.detach()                  # SGD, lr 1: D's gradient on w
    with torch.no_grad():
        fake = G(torch.randn(4, 3, generator=Stream(0, "z").next()))
    d_r, d_f = real @ w.T, fake @ w.T
    main = (-torch.sigmoid(-d_r) * real).mean(0) + (torch.sigmoid(d_f) * fake).mean(0)
    g2 = gamma if r2_weight is None else r2_weight
    torch.testing.assert_close(step[0], main + every * (gamma + g2) * w[0], rtol=1e-6, atol=1e-6)
    assert float(stats["penalty_r1"]) == pytest.approx(0.5 * 25.0) and float(stats["penalty_r2"]) == pytest.approx(12.5)
    assert float(stats["penalty"]) == pytest.approx(25.0)      # R1/2 + R2/2 = ||w||^2


def test_r2_weight_needs_the_pair(tmp_path):
    import ganforge
    from ganforge.errors import UserError
    with pytest.raises(UserError, match="penalty.r2_weight is R2's gamma beside R1's in penalty=r1\\+r2"):
        ganforge.train("toy-ring", out=tmp_path, steps=1, penalty={"name": "r1", "r2_weight": 0.5}, progress="off")
