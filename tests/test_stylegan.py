"""StyleGAN2: mapping, modulated convs, noise, style mixing, truncation in w, path length, training and resume."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import assert_same_nets, run_cli
from ganforge.api import load_run
from ganforge.config import load_config
from ganforge.nets import build_nets
from ganforge.nets.stylegan import minibatch_std, modulated_conv

SMALL = ("model=stylegan", "model.g_width=8", "model.d_width=8", "model.z_dim=16", "model.w_dim=16",
         "model.mapping_layers=2", "model.max_width=32")


def _nets(shape, *extra, classes=0):
    cfg = load_config(None, (*SMALL, *(("model.conditional=true",) if classes else ()), *extra))
    torch.manual_seed(0)
    return build_nets(cfg.model, shape, classes)


def _seed(G, n, seed=0):
    G.reseed(torch.Generator().manual_seed(seed), slice(None), n)


@pytest.mark.parametrize("side", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("classes", [0, 10])
def test_shapes_and_gradients_for_every_side_and_channel_count(side, channels, classes):
    G, D = _nets((channels, side, side), classes=classes)
    z, y = torch.randn(4, 16), (torch.tensor([0, 3, 5, 9]) if classes else None)
    _seed(G, 4)
    x = G(z, y)
    assert x.shape == (4, channels, side, side)
    out = D(x, y) if classes else D(x)
    assert out.shape == (4,)
    out.sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    G.eval()
    assert G(z, y).abs().max() <= 1                      # samples are clamped as 8-bit images would be


def test_modulated_conv_equals_per_sample_modulated_demodulated_weights():
    torch.manual_seed(0)
    x, w, s = torch.randn(3, 4, 5, 5, dtype=torch.float64), torch.randn(6, 4, 3, 3, dtype=torch.float64), \
        torch.rand(3, 4, dtype=torch.float64) + 0.5
    for demod in (True, False):
        want = []
        for i in range(3):
            wi = w * s[i][None, :, None, None]
            if demod:
                wi = wi / wi.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
            want.append(F.conv2d(x[i:i + 1], wi, padding=1))
        torch.testing.assert_close(modulated_conv(x, w, s, demod), torch.cat(want))


def test_minibatch_std_closed_form():
    x = torch.tensor([0.0, 3.0, 4.0, 21.0]).view(4, 1, 1, 1)
    out = minibatch_std(x, group=2)                # x = 0, 3, 4, 21; groups pair samples (0, 2) and (1, 3)
    assert out.shape == (4, 2, 1, 1)
    want = torch.tensor([2.0, 9.0, 2.0, 9.0])      # population std of (0, 4) is 2 and of (3, 21) is 9
    torch.testing.assert_close(out[:, 1, 0, 0], want, atol=1e-3, rtol=0)
    assert minibatch_std(torch.randn(6, 2, 3, 3), group=4).shape == (6, 3, 3, 3)    # 6 samples: groups of 3


def test_truncation_pulls_w_to_its_mean():
    G, _ = _nets((1, 28, 28))
    G.eval()
    with torch.no_grad():
        G.w_avg.normal_()
        z = torch.randn(5, 16)
        same = G(z, truncation=0.0)
        assert torch.allclose(same, same[:1].expand_as(same), atol=1e-6)     # psi = 0: every sample is the mean w
        torch.testing.assert_close(G(z, truncation=1.0), G(z))
        w, wt = G.mapping_net(z), G.mapping_net(z, truncation=0.7)
        torch.testing.assert_close(wt, G.w_avg + 0.7 * (w - G.w_avg))


def test_tanh_output_is_tanh_of_the_linear_output():
    G, _ = _nets((1, 28, 28))
    Gt, _ = _nets((1, 28, 28), "model.g_output=tanh")
    Gt.load_state_dict(G.state_dict())                   # the option adds no weights
    z = torch.randn(3, 16)
    for train in (True, False):
        G.train(train), Gt.train(train)
        _seed(G, 3, 5), _seed(Gt, 3, 5)
        with torch.no_grad():
            lin, out = G(z), Gt(z)
        assert out.abs().max() < 1
        if train:                                         # the paper's linear output leaves [-1, 1] at init
            assert lin.abs().max() > 1
            torch.testing.assert_close(out, torch.tanh(lin))
        else:                                             # eval clamps the linear output; inside (-1, 1) they agree
            inside = lin.abs() < 1
            assert inside.float().mean() > 0.1
            torch.testing.assert_close(out[inside], torch.tanh(lin[inside]))


def test_style_mixing_and_running_mean_of_w():
    G, _ = _nets((1, 32, 32), "model.mixing=1.0")
    z = torch.randn(4, 16)
    _seed(G, 4, seed=3)
    before = G.w_avg.clone()
    ws = G.styles(z, mix=True)
    assert torch.equal(G.w_avg, before)                  # G's own phase leaves the mean of w alone
    _seed(G, 4, seed=3)
    with torch.no_grad():
        ws = G.styles(z, mix=True)                       # the D phase's draw (no_grad) moves it
    w1 = G.mapping_net(z)
    cut = int((ws - w1[:, None]).abs().sum((0, 2)).nonzero()[0])          # the first layer with other styles
    assert 1 <= cut < G.num_ws
    torch.testing.assert_close(ws[:, :cut], w1[:, None].expand(-1, cut, -1))
    assert torch.allclose(ws[:, cut:], ws[:, -1:].expand_as(ws[:, cut:]))  # one second w for the rest
    torch.testing.assert_close(G.w_avg, before.lerp(ws[:, 0].mean(0), 1 - 0.995))


def test_noise_is_random_in_training_and_fixed_in_eval():
    G, _ = _nets((1, 28, 28))
    with torch.no_grad():
        for layer in G.layers:
            layer.noise_strength.fill_(1.0)
        z = torch.randn(2, 16)
        _seed(G, 2, 1)
        a = G(z)
        _seed(G, 2, 2)
        b = G(z)
        _seed(G, 2, 1)
        assert not torch.equal(a, b) and torch.equal(a, G(z))              # seeded: the same draw gives the same
        G.eval()
        assert torch.equal(G(z), G(z))


def test_path_length_is_the_norm_of_the_jacobian_transpose_times_noise():
    G, _ = _nets((1, 28, 28), "model.mixing=0")
    G = G.double()
    z = torch.randn(3, 16, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)

    def draw():
        return z, None, g, slice(None), 3
    pen, length = G.lazy_penalty(0, draw, lambda t: t.mean())
    # again by finite differences: (J^T y) . v = d/de [synthesis(ws + e v) . y] for a direction v in ws
    g.manual_seed(5)
    G.reseed(g, slice(None), 3)
    ws = G.styles(z, mix=True).detach()
    noises = [G._draw(1, layer.side, layer.side) for layer in G.layers]
    y = G._draw(1, 28, 28) / 28
    G._rand = None

    def f(w):
        it = iter(noises)
        G.reseed(torch.Generator(), slice(None), 3)
        G._draw = lambda *shape: next(it)                                     # the same noise maps again
        try:
            return (G.synthesis(w) * y).sum()
        finally:
            del G._draw
    jt = torch.autograd.grad(f(ws.requires_grad_(True)), ws)[0]
    v = torch.randn_like(ws)
    e = 1e-7                                            # small: few leaky-ReLU kinks inside +-e
    with torch.no_grad():
        fd = (f(ws.detach() + e * v) - f(ws.detach() - e * v)) / (2 * e)
    assert float((jt * v).sum()) == pytest.approx(float(fd), rel=1e-4)
    lengths = jt.square().sum(2).mean(1).sqrt()
    assert float(length) == pytest.approx(float(lengths.mean()), rel=1e-5)
    a = 0.01 * lengths.mean()                                                 # the running mean from 0
    assert float(G.pl_mean) == pytest.approx(float(a), rel=1e-5)
    assert float(pen.detach()) == pytest.approx(float(2.0 * 4 * (lengths - a).square().mean()), rel=1e-5)
    assert G.lazy_penalty(1, draw, lambda t: t.mean()) is None                # lazy: only every pl_every steps


def test_family_defaults_and_separate_real_fake_batches():
    from ganforge.games.gan import GANGame, GANOptions
    cfg = load_config(None, ("model=stylegan",))
    assert cfg.penalty.name == "r1" and cfg.penalty.every == 16 and cfg.optim.g.lr == 0.0025
    G, D = _nets((1, 28, 28), classes=10)
    game = GANGame(G, D, None, None, GANOptions(None, d_steps=1, batch_size=4, classes=10), batches=None,
                   z_stream=None, aux_stream=None, precision=None)
    assert not game.joint                                           # minibatch std must not mix real and fake


@pytest.mark.cuda
def test_train_pl_resume_and_truncated_samples(tmp_path):
    args = ["train", "mnist-stylegan", *SMALL[1:], "model.pl_every=2", "batch_size=8", "log.every=1",
            "log.samples_every=100", "log.checkpoint_every=2", "eval.n=200", "penalty.every=2", "--out", tmp_path]
    r = run_cli(*args, "steps=4", "name=w")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    assert any("pl_length" in row and row["pl_length"] > 0 for row in rows)
    assert run_cli(*args, "steps=2", "name=p").returncode == 0
    assert run_cli("train", "steps=4", "--resume", tmp_path / "p").returncode == 0
    a, b = load_run(tmp_path / "w"), load_run(tmp_path / "p")
    try:
        assert_same_nets(a, b)
    except AssertionError as e:     # seen once in ~10 CI runs: tell a resume bug from a nondeterministic platform
        assert run_cli(*args, "steps=4", "name=w2").returncode == 0
        try:
            assert_same_nets(a, load_run(tmp_path / "w2"))
            again = "two uninterrupted runs are equal, so the resume differs"
        except AssertionError:
            again = "two uninterrupted runs differ too: the platform's kernels are not deterministic"
        raise AssertionError(f"{e}; {again}") from None
    assert a.G.w_avg.abs().sum() > 0 and a.G.pl_mean > 0
    x = a.sample(6, seed=1, truncation=0.7)
    assert torch.equal(x, a.sample(6, seed=1, truncation=0.7)) and not torch.equal(x, a.sample(6, seed=1))
    r = run_cli("sample", tmp_path / "w", "--truncation", "0.7", "--out", tmp_path / "t.png")
    assert r.returncode == 0 and (tmp_path / "t.png").is_file(), r.stderr


def test_layer_ranges_and_slerp():
    from ganforge.errors import UserError
    from ganforge.cli.interpolate import slerp
    from ganforge.cli.stylemix import layer_range
    assert [layer_range(k, 6) for k in ("coarse", "middle", "fine")] == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert layer_range("1:3", 6) == slice(1, 3) and layer_range(":2", 6) == slice(0, 2)
    for bad in ("3:3", "0:7", "x", "2"):
        with pytest.raises(UserError):
            layer_range(bad, 6)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    mid = slerp(a, b / 2, 0.5)                             # unit vectors: on the unit circle at 45 degrees
    assert float(torch.atan2(mid[0, 1], mid[0, 0])) == pytest.approx(math.pi / 4)
    assert float(mid.norm()) == pytest.approx(1.0)


def test_stylemix_grid_and_interpolation_videos(tmp_path):
    from ganforge.viz.movie import read_mp4
    r = run_cli("train", "mnist-stylegan", *SMALL[1:], "batch_size=8", "steps=2", "eval.metrics=none", "name=s",
                "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("stylemix", tmp_path / "s", "--rows", "2", "--cols", "3", "--layers", "fine", "--out", tmp_path / "m.png")
    assert r.returncode == 0 and "w inputs 4:6 of 6" in r.stdout, r.stderr
    grid = np.asarray(Image.open(tmp_path / "m.png"))
    assert grid.shape[:2] == (2 + 3 * 30, 2 + 4 * 30)                      # (1 + rows) x (1 + cols) cells of 28 + 2
    run = load_run(tmp_path / "s")
    G = run.generator
    z = torch.randn(run.config.model.z_dim * 5, generator=_first()).view(5, -1)
    with torch.no_grad():
        ws = G.mapping_net(z)[:, None].repeat(1, G.num_ws, 1)
        mix = ws[0:1].clone()
        mix[:, 4:6] = ws[3:4, 4:6]                                            # row 0 (source B = code 3), column 0
        cell = G.synthesis(mix)
    want = ((cell[0, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    got = grid[2 + 30:2 + 30 + 28, 2 + 30:2 + 30 + 28]
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    for space in ("z", "w"):
        out = tmp_path / f"walk-{space}.mp4"
        r = run_cli("interpolate", tmp_path / "s", "--space", space, "--keys", "2", "--frames", "3", "--walks", "4",
                    "--out", out)
        assert r.returncode == 0 and "6 frames" in r.stdout, r.stderr
        frames = read_mp4(out)
        assert len(frames) == 6 and frames[0].shape[:2] == (62, 62)
    r = run_cli("interpolate", tmp_path / "s", "--out", tmp_path / "walk-z.mp4")
    assert r.returncode == 2 and "exists" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("stylemix", tmp_path / "s", "--layers", "9:12", "--out", tmp_path / "x.png")
    assert r.returncode == 2 and "0 <= I < J <= 6" in r.stderr


def _first():
    from ganforge.rng import Stream
    return Stream(0, "sample").next()
