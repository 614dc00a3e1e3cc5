"""pix2pix and CycleGAN games: the history pool, the loss terms' closed forms, training, exact resume, translate."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import assert_same_nets, numbers, run_cli
from ganforge.api import load_run
from ganforge.games.cycle import CycleGame, CycleOptions, ImagePool
from ganforge.games.pair import PairGame, PairOptions
from ganforge.losses import LOSSES
from ganforge.metrics.translation import translation_scores
from ganforge.nets.cyclegan import CyclePair, Judges, ResnetGenerator
from ganforge.train.precision import Precision

SMALL_P2P = ["model=pix2pix", "data=edges2digits", "model.g_width=8", "model.d_width=8", "model.d_layers=1",
             "batch_size=8", "log.every=2", "log.samples_every=100", "log.checkpoint_every=2", "eval.n=40", "eval.every=2",
             "log.progress=off"]
SMALL_CYCLE = ["model=cyclegan", "data=invert-digits", "model.g_width=4", "model.blocks=1", "model.d_width=4",
               "model.d_layers=1", "model.pool_size=6", "batch_size=4", "log.every=2", "log.samples_every=100",
               "log.checkpoint_every=2", "eval.n=20", "eval.every=2", "log.progress=off"]


def test_image_pool_stores_then_swaps_half_and_round_trips():
    pool = ImagePool(4)
    g = torch.Generator().manual_seed(0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first, g), first)                         # filling: every image comes back
    seen = set(range(4))
    swapped = 0
    for step in range(1, 30):
        batch = torch.full((4, 1, 1, 1), 0.0) + torch.arange(4.0).view(4, 1, 1, 1) + 10 * step
        out = pool.query(batch, g)
        new = {int(v) for v in batch.flatten()}
        for v in out.flatten().tolist():
            assert int(v) in new or int(v) in seen                           # either its own or a stored image
            swapped += int(v) not in new
        stored = {int(t) for t in torch.stack(pool.images).flatten()}
        assert len(pool.images) == 4 and stored <= seen | new
        seen = stored
    assert 0.3 < swapped / (29 * 4) < 0.7                                    # p = 1/2
    copy = ImagePool(4)
    copy.load_state_dict(pool.state_dict(), "cpu")
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    batch = torch.full((4, 1, 1, 1), -1.0)
    assert torch.equal(pool.query(batch, g1), copy.query(batch, g2))
    assert torch.equal(ImagePool(0).query(batch, g1), batch)


class _Batches:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def next(self):
        return self.a, self.b, None


def test_cycle_and_identity_losses_vanish_for_identity_generators_and_adversarial_terms_follow_the_loss():
    class Same(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x):
            return x * self.w

    class Const(nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = nn.Parameter(torch.tensor(v))

        def forward(self, x):
            return self.v.expand(len(x), 1, 2, 2)

    a, b = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    G, D = CyclePair(Same(), Same()), Judges(Const(0.25), Const(0.75))
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.0)  # noqa: E731
    from ganforge.rng import Stream
    game = CycleGame(G, D, sgd(G), sgd(D), CycleOptions(LOSSES["least-squares"], pool_size=0), batches=_Batches(a, b),
                     aux_stream=Stream(0, "aux"), precision=Precision("fp32", torch.device("cpu")))
    s = game.step()[0]
    assert float(s["cycle"]) == 0.0 and float(s["identity"]) == 0.0
    # least squares: G's terms 0.5 (D - 1)^2 for each domain's judge; D's 0.5 ((D_real - 1)^2 + D_fake^2) each
    assert float(s["gan_g"]) == pytest.approx(0.5 * (0.75 ** 2 + 0.25 ** 2))
    assert float(s["loss_d"]) == pytest.approx(0.5 * (0.75 ** 2 + 0.25 ** 2) + 0.5 * (0.25 ** 2 + 0.75 ** 2))


def test_pix2pix_l1_alone_never_touches_d_and_lowers_the_l1_loss():
    torch.manual_seed(0)
    from ganforge.nets.pix2pix import PatchDiscriminator, UNetGenerator
    G, D = UNetGenerator(1, 1, 8, width=8, dropout=0.0), PatchDiscriminator(2, 8, 1)
    before = {k: v.clone() for k, v in D.state_dict().items()}
    a = torch.rand(8, 1, 8, 8) * 2 - 1
    b = -a                                                                  # learn to invert
    game = PairGame(G, D, torch.optim.Adam(G.parameters(), 1e-2), torch.optim.Adam(D.parameters(), 1e-2),
                    PairOptions(LOSSES["nonsaturating"], gan_weight=0.0), batches=_Batches(a, b),
                    precision=Precision("fp32", torch.device("cpu")))
    first = float(game.step()[0]["loss_l1"])
    for _ in range(60):
        last = game.step()[0]
    assert "loss_d" not in last and float(last["loss_l1"]) < 0.5 * first
    assert all(torch.equal(before[k], v) for k, v in D.state_dict().items())


def test_instance_noise_is_drawn_for_the_global_batch_and_reaches_only_d():
    """model.d_noise: D sees b + s*n and G(a) + s*n' (n drawn for the whole batch, each rank its rows); G's
    L1 term sees the clean output."""
    from ganforge.nets.pix2pix import PatchDiscriminator, UNetGenerator
    from ganforge.rng import Stream
    from ganforge.train.distributed import Dist

    class Seen(nn.Module):
        def __init__(self):
            super().__init__()
            self.D, self.inputs = PatchDiscriminator(2, 8, 1), []

        def forward(self, a, b):
            self.inputs.append(b.detach().clone())
            return self.D(a, b)

    a = torch.rand(8, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    G, D = UNetGenerator(1, 1, 8, width=8, dropout=0.0), Seen()
    game = PairGame(G, D, torch.optim.SGD(G.parameters(), 0.0), torch.optim.SGD(D.parameters(), 0.0),
                    PairOptions(LOSSES["nonsaturating"], d_noise=0.3, batch_size=8), batches=_Batches(a, -a),
                    precision=Precision("fp32", torch.device("cpu")), aux_stream=Stream(5, "aux"), dist=Dist())
    stats = game.step()[0]
    with torch.no_grad():
        fake = G(a)
    real_in, fake_in, fake_in_g = D.inputs
    assert torch.equal(fake_in, fake_in_g)                  # G's adversarial term sees the noise D saw
    assert float(stats["loss_l1"]) == pytest.approx(float((fake + a).abs().mean()), rel=1e-6)   # L1: no noise
    n_real, n_fake = real_in + a, fake_in - fake
    assert float(n_real.std()) == pytest.approx(0.3, rel=0.2) and float(n_fake.std()) == pytest.approx(0.3, rel=0.2)
    assert not torch.allclose(n_real, n_fake)
    rank1 = PairGame(G, D, None, None, PairOptions(None, d_noise=0.3, batch_size=8), batches=None, precision=None,
                     aux_stream=Stream(5, "aux"), dist=Dist(1, 2))
    mine = rank1._noise(-a[4:])                              # rank 1 of 2: its rows of the same global draw
    torch.testing.assert_close(mine[0], n_real[4:])
    torch.testing.assert_close(mine[1], n_fake[4:])


def test_translation_scores_of_the_truth_are_perfect():
    from ganforge.data import load_dataset
    from ganforge.config import load_config
    from ganforge.metrics.features import get_extractor
    from ganforge.metrics.translation import reference_stats
    d = load_dataset(load_config(None, ("data=edges2digits", "data.split=holdout", "data.holdout=0.1")).data)
    ext = get_extractor("mnist")
    s = translation_scores(d.x, d.x, d.y, ext, reference_stats(ext, d.x), classify=True)
    assert s["l1"] == 0 and s["ssim"] == pytest.approx(1.0) and s["acc"] == s["acc_truth"] > 0.97
    assert s["fid"] == pytest.approx(0.0, abs=1e-6)
    worse = translation_scores(d.a, d.x, d.y, ext, reference_stats(ext, d.x), classify=True)
    assert worse["l1"] > 0.2 and worse["fid"] > 100 and worse["acc"] < s["acc"]


@pytest.mark.parametrize("small", [pytest.param(SMALL_P2P, id="pix2pix", marks=pytest.mark.cuda),
                                   pytest.param([*SMALL_P2P, "model.d_noise=0.1"], id="pix2pix-noise"),
                                   pytest.param(SMALL_CYCLE, id="cyclegan", marks=pytest.mark.cuda)])
def test_train_and_exact_resume(tmp_path, small):
    r = run_cli("train", *small, "steps=4", "name=w", "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert run_cli("train", *small, "steps=2", "name=p", "--out", tmp_path).returncode == 0
    r = run_cli("train", "steps=4", "--resume", tmp_path / "p")
    assert r.returncode == 0, r.stderr[-2000:]
    assert_same_nets(load_run(tmp_path / "w"), load_run(tmp_path / "p"), nets=("G", "D"))
    a, b = numbers(tmp_path / "w"), numbers(tmp_path / "p")
    assert a == b and {"l1", "psnr", "ssim", "acc", "fid"} <= set(a[-1])
    if "model=cyclegan" in small:
        assert {"cycle", "identity", "l1_ba", "psnr_ba", "acc_ba"} <= set(a[-1])
    grid = np.asarray(Image.open(sorted((tmp_path / "w" / "samples").glob("*.png"))[-1]))
    cols = 4 if "model=cyclegan" in small else 3                               # input | output | truth (| cycle)
    assert grid.shape[:2] == (2 + 8 * 30, 2 + cols * 30)


def test_translate_command_matches_the_api_and_refuses_mistakes(tmp_path):
    assert run_cli("train", *SMALL_P2P, "steps=2", "name=p", "--out", tmp_path).returncode == 0
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    from ganforge.data.tasks import edges2digits
    edges = (edges2digits().a[:5, 0].numpy() * 255).astype(np.uint8)
    for i, e in enumerate(edges):
        Image.fromarray(e).save(inputs / "sub" / f"{i}.png")
    (inputs / "sub" / "torn.png").write_bytes(b"\x89PNG")
    (inputs / "readme.txt").write_text("edges")
    (inputs / ".DS_Store").write_bytes(b"")
    r = run_cli("translate", tmp_path / "p", "--input", inputs, "--out", tmp_path / "out")
    assert r.returncode == 0 and "translated 5 images" in r.stdout, r.stderr
    assert r.stderr == f"ganforge: skipped 3 files in {inputs} (1 unreadable: sub/torn.png; 1 not images; 1 hidden)\n"
    run = load_run(tmp_path / "p")
    want = run.translate(torch.from_numpy(edges[:, None].astype(np.float32) / 127.5 - 1))
    want = ((want.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    got = np.stack([np.asarray(Image.open(tmp_path / "out" / "sub" / f"{i}.png")) for i in range(5)])
    np.testing.assert_array_equal(got, want)
    again = run_cli("translate", tmp_path / "p", "--input", inputs, "--out", tmp_path / "out")
    assert again.returncode == 2 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    r = run_cli("sample", tmp_path / "p", "--out", tmp_path / "s.png")
    assert r.returncode == 2 and "translates images" in r.stderr and not (tmp_path / "s.png").exists()
    for args, words in [(("--direction", "ba"), "cyclegan"), (("--out", tmp_path / "x.jpg"), ".png")]:
        one = ["--input", inputs / "sub" / "0.png", "--out", tmp_path / "one.png"]
        r = run_cli("translate", tmp_path / "p", *one, *args)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, words", [(["model=pix2pix", "data=mnist"], "image-to-image data"),
                                         (["data=edges2digits"], "model=pix2pix"),
                                         (["model=pix2pix", "data=thin2thick"], "model=cyclegan"),
                                         (["model=pix2pix", "data=edges2digits", "d_steps=2"], "once")])
def test_mismatched_models_and_data_are_one_line_mistakes(tmp_path, args, words):
    r = run_cli("train", *args, "steps=1", "--out", tmp_path)
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not any(tmp_path.iterdir())


def test_metrics_are_named_apart_from_the_training_l1(tmp_path):
    r = run_cli("train", *SMALL_P2P, "steps=2", "model.gan_weight=0", "name=l1", "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "l1" / "metrics.jsonl").read_text().splitlines()]
    assert "loss_d" not in rows[-1] and rows[-1]["loss_l1"] != rows[-1]["l1"]


def test_resnet_generator_keeps_the_size_and_cyclegan_checks_its_domains():
    from ganforge.config import load_config
    from ganforge.errors import UserError
    from ganforge.nets import build_nets
    torch.manual_seed(0)
    G = ResnetGenerator(1, 3, width=4, blocks=2)
    y = G(torch.randn(2, 1, 28, 28))
    assert y.shape == (2, 3, 28, 28) and y.abs().max() < 1
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    cfg = load_config(None, ("model=cyclegan",)).model
    G, D = build_nets(cfg, (1, 28, 28), 0, (1, 28, 28))
    assert isinstance(G, CyclePair) and isinstance(D, Judges) and G(torch.zeros(1, 1, 28, 28)).shape == (1, 1, 28, 28)
    with pytest.raises(UserError, match="divisible by 4"):
        build_nets(cfg, (1, 30, 30), 0, (1, 30, 30))
    with pytest.raises(UserError, match="identity"):
        build_nets(cfg, (3, 28, 28), 0, (1, 28, 28))
