"""The lab's building blocks against closed forms and the core's own nets."""
import math

import numpy as np
import pytest
import torch

from ganforge.data.toy import mixture1d
from ganforge.lab import pair
from ganforge.lab.ranking import spearman
from ganforge.lab.saturation import grad_norm
from ganforge.lab.stacked import discriminate, stacked_pair
from ganforge.losses import bce_d, minimax_g, nonsaturating_g
from ganforge.nets.mlp import MLPDiscriminator, MLPGenerator
from ganforge.viz.movie import read_mp4, write_gif, write_mp4


def test_mixture_log_prob_integrates_to_one_exactly():
    x = pair.grid()
    assert pair.integrate(mixture1d().log_prob(x.reshape(-1, 1)).exp(), x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("mu,sigma", [(0.5, 1.5), (-1.0, 0.4), (3.0, 2.0)])
def test_value_at_optimum_is_two_jsd_minus_log4(mu, sigma):
    x = pair.grid()
    lp, lq = pair.log_densities(x, pair.AffineGenerator(mu, sigma))
    v = pair.value_at_optimum(lp, lq, x)
    assert v == pytest.approx(2 * pair.jsd(lp, lq, x) - math.log(4), abs=1e-9)     # N(3, 2^2) leaves ~1e-9 past 16
    assert -math.log(4) < v < 0


def test_value_extremes_equal_and_disjoint():
    x = pair.grid()
    lp = mixture1d().log_prob(x.reshape(-1, 1))
    assert pair.value_at_optimum(lp, lp, x) == pytest.approx(-math.log(4), abs=1e-12)
    assert pair.jsd(lp, lp, x) == pytest.approx(0.0, abs=1e-12)
    far = mixture1d().log_prob((x - 11.0).reshape(-1, 1))          # supports 11 apart: no overlap left
    assert pair.jsd(lp, far, x) == pytest.approx(math.log(2), abs=1e-6)
    assert pair.value_at_optimum(lp, far, x) == pytest.approx(0.0, abs=1e-6)


def test_affine_generator_density_is_its_sample_density():
    G = pair.AffineGenerator(0.5, 1.5)
    x = G(torch.randn(200_000, 1, generator=torch.Generator().manual_seed(0))).double()
    assert float(x.mean()) == pytest.approx(0.5, abs=0.01) and float(x.std()) == pytest.approx(1.5, abs=0.01)
    grid = pair.grid()
    assert pair.integrate(G.log_prob(grid).exp(), grid) == pytest.approx(1.0, abs=1e-12)


def test_stacked_copies_compute_what_the_core_nets_compute():
    G, D = stacked_pair([3, 4, 5], 2, 2, 32, 3, pack=2)
    z = torch.randn(3, 10, 2)
    for i, seed in enumerate([3, 4, 5]):
        torch.manual_seed(seed)
        g = MLPGenerator(2, (2,), 32, 3, "relu")
        d = MLPDiscriminator((2,), 32, 3, 2)
        torch.testing.assert_close(G(z)[i], g(z[i]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(discriminate(D, G(z), 2)[i], d(g(z[i])), rtol=1e-5, atol=1e-6)


def test_stacked_copies_train_independently():
    """Copy 0's gradient does not depend on what copy 1 sees."""
    def grads(other):
        _, D = stacked_pair([0, 1], 2, 2, 16, 2)
        x = torch.stack([torch.ones(8, 2), other])
        out = discriminate(D, x, 1)
        sum(bce_d(out[s, :4], out[s, 4:]) for s in range(2)).backward()
        return [p.grad[0].clone() for p in D.parameters()]
    a, b = grads(torch.zeros(8, 2)), grads(torch.randn(8, 2) * 5)
    for ga, gb in zip(a, b):
        torch.testing.assert_close(ga, gb)


def test_generator_loss_slopes_in_the_logit():
    """d/da log(1 - sigmoid(a)) = -D and d/da[-log sigmoid(a)] = -(1 - D): 0.01 vs 0.99 at D = 0.01."""
    a = torch.tensor([math.log(0.01 / 0.99)], requires_grad=True)
    (g_sat,) = torch.autograd.grad(minimax_g(a, None), a)
    (g_ns,) = torch.autograd.grad(nonsaturating_g(a, None), a)
    assert float(g_sat) == pytest.approx(-0.01, rel=1e-5)
    assert float(g_ns) == pytest.approx(-0.99, rel=1e-5)


def test_grad_norm_matches_a_closed_form():
    """G(z) = w z and D's logit a = G(z): d/dw mean(-softplus(w z)) = mean(-sigmoid(w z) z)."""
    G = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(G.weight, 0.3)
    z = torch.tensor([[1.0], [2.0]])
    a = 0.3 * z.squeeze(1)
    assert grad_norm(G, lambda x: x.squeeze(1), z, minimax_g) == pytest.approx(
        abs(float((-torch.sigmoid(a) * z.squeeze(1)).mean())), rel=1e-6)
    assert grad_norm(G, lambda x: x.squeeze(1), z, nonsaturating_g) == pytest.approx(
        abs(float((-(1 - torch.sigmoid(a)) * z.squeeze(1)).mean())), rel=1e-6)


def test_spearman_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, generator=g)
    b = a + torch.randn(500, generator=g)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.numpy(), b.numpy())[0], abs=1e-12)
    assert spearman(a, -a) == pytest.approx(-1.0)


def test_gif_and_mp4_round_trip(tmp_path):
    from PIL import Image
    frames = [np.full((30, 41, 3), v, np.uint8) for v in (0, 80, 160, 240)]
    frames[1][5:15, 5:15] = (255, 0, 0)
    write_gif(frames, tmp_path / "a.gif", fps=5)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 4
        im.seek(1)
        px = im.convert("RGB").getpixel((10, 10))
        assert px[0] > 200 and px[1] < 60
    write_mp4(frames, tmp_path / "a.mp4", fps=5)
    back = read_mp4(tmp_path / "a.mp4")
    assert len(back) == 4 and back[0].shape == (30, 42, 3)          # padded to an even width for yuv420p
    for f, b in zip(frames, back):
        assert np.abs(b[:, :41].astype(int) - f.astype(int)).mean() < 6
