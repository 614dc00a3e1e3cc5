"""Class-conditional GANs: nets, the game, sampling by class and the class-conditional scores."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import run_cli
from ganforge.api import load_run
from ganforge.config import load_config
from ganforge.errors import UserError
from ganforge.nets import build_nets
from ganforge.nets.conditional import ConditionalBatchNorm2d, pool

COMBOS = [(g, d) for g in ("cbn", "concat") for d in ("projection", "concat", "acgan")]


def _nets(g, d, preset=None, shape=(1, 28, 28), classes=10, *extra):
    cfg = load_config(preset, ("model.conditional=true", f"model.g_cond={g}", f"model.d_cond={d}", "model.z_dim=16",
                               *extra))
    torch.manual_seed(0)
    return build_nets(cfg.model, shape, classes)


@pytest.mark.parametrize("g,d", COMBOS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 16, 16)])
def test_dcgan_conditional_shapes_gradients_and_labels(g, d, shape):
    G, D = _nets(g, d, None, shape, 10, "model.g_width=8", "model.d_width=8")
    z, y = torch.randn(6, 16), torch.tensor([0, 1, 2, 3, 4, 9])
    x = G(z, y)
    assert x.shape == (6, *shape) and x.abs().max() <= 1
    out, cls = D(x, y, with_classes=True)
    assert out.shape == (6,) and (cls is None) == (d != "acgan")
    loss = out.sum() + (cls.logsumexp(1).sum() if cls is not None else 0)
    loss.backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with torch.no_grad():             # the label changes G's output and D's verdict
        _unstart(G)
        G.eval()
        assert not torch.allclose(G(z, y), G(z, (y + 1) % 10))
        if d != "acgan":
            assert not torch.allclose(D(x, y), D(x, (y + 1) % 10))


def _unstart(G):
    """Per-class gains start at 1 and biases at 0 (G ignores the label at first): move them off the start."""
    for m in G.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            torch.nn.init.normal_(m.bias.weight, 0.0, 0.5)


@pytest.mark.parametrize("d", ["projection", "concat", "acgan"])
def test_mlp_conditional_on_toy_points(d):
    G, D = _nets("concat", d, "toy-ring", (2,), 8)
    y = torch.arange(8)
    x = G(torch.randn(8, 16), y)
    assert x.shape == (8, 2) and D(x, y).shape == (8,)


def test_same_seed_builds_the_same_nets():
    (G1, D1), (G2, D2) = _nets("cbn", "projection"), _nets("cbn", "projection")
    z, y = torch.randn(4, 16), torch.tensor([1, 2, 3, 4])
    G1.eval(), G2.eval()
    assert torch.equal(G1(z, y), G2(z, y)) and torch.equal(D1(G1(z, y), y), D2(G1(z, y), y))


def test_projection_is_head_plus_inner_product_with_the_label_embedding():
    _, D = _nets("cbn", "projection")
    x, y = torch.randn(5, 1, 28, 28), torch.tensor([0, 3, 3, 7, 9])
    h = D.base.features(x)
    expected = D.base.head(h) + (D.embed.weight[y] * h.sum((2, 3))).sum(1)
    torch.testing.assert_close(D(x, y), expected)
    assert pool(h).shape == (5, h.shape[1])


@pytest.mark.parametrize("g", ["cbn", "concat"])
def test_soft_labels_mix_the_classes(g):
    """One-hot class weights give exactly the hard label; halfway weights give a different image."""
    G, _ = _nets(g, "projection")
    _unstart(G)
    G.eval()
    z, y = torch.randn(3, 16), torch.tensor([2, 5, 7])
    hard, soft = G(z, y), G(z, F.one_hot(y, 10).float())
    torch.testing.assert_close(hard, soft)
    half = 0.5 * (F.one_hot(y, 10) + F.one_hot((y + 1) % 10, 10)).float()
    assert not torch.allclose(G(z, half), hard)


def test_conditional_batch_norm_starts_as_plain_batch_norm():
    """Per-class gains start at 1 and biases at 0: the same output as the unconditional batch norm."""
    bn = torch.nn.BatchNorm2d(4, affine=False)
    cbn = ConditionalBatchNorm2d(torch.nn.BatchNorm2d(4), 3)
    x = torch.randn(6, 4, 5, 5)
    cbn.label = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(cbn(x), bn(x))


def test_conditional_mistakes_are_user_errors():
    cfg = load_config(None, ("model.conditional=true",))
    with pytest.raises(UserError, match="labelled data"):
        build_nets(cfg.model, (1, 28, 28), 0)
    with pytest.raises(UserError, match="g_cond=cbn needs batch norm"):
        build_nets(load_config("toy-ring", ("model.conditional=true",)).model, (2,), 8)
    with pytest.raises(UserError, match="pack"):
        build_nets(load_config(None, ("model.conditional=true", "model.pack=2")).model, (1, 28, 28), 10)


def test_class_scores_on_real_digits_drawn_for_their_labels():
    """The real digits as a 'generator' that obeys its labels: the digit classifier agrees (>= 0.95) and
    per-class FID is small; the same images under shuffled labels score near chance and far."""
    from ganforge.metrics.evaluate import Evaluator, Settings, class_scores
    from ganforge.metrics.sources import from_data_config
    real = from_data_config(load_config(None, ()).data)
    ev = Evaluator(real, Settings(metrics=("fid",)))
    idx = torch.randperm(len(real.x), generator=torch.Generator().manual_seed(0))[:1000]
    x, y = real.x[idx], real.y[idx]                      # the real side is read in [-1, 1]
    good = class_scores(ev, x, y)
    bad = class_scores(ev, x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))])
    assert good["class_acc"] >= 0.95 and bad["class_acc"] < 0.25
    assert len(good["fid_per_class"]) == 10
    assert good["fid_class"] * 5 < bad["fid_class"]


def test_train_sample_by_class_and_resume(tmp_path):
    args = ["train", "mnist-dcgan", "model.conditional=true", "model.d_cond=acgan", "model.g_width=8",
            "model.d_width=8", "model.z_dim=16", "batch_size=16", "log.every=2", "log.samples_every=100",
            "log.checkpoint_every=2", "eval.n=200", "--out", tmp_path]
    r = run_cli(*args, "steps=4", "name=c")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    assert "ac_d" in rows[-1] and "ac_g" in rows[-1] and 0 <= rows[-1]["class_acc"] <= 1 and rows[-1]["fid_class"] > 0
    part = run_cli(*args, "steps=2", "name=p", "eval.metrics=none")      # evaluation draws from its own stream:
    assert part.returncode == 0                                        # without it, training is the same
    assert run_cli("train", "steps=4", "--resume", tmp_path / "p").returncode == 0
    a, b = load_run(tmp_path / "c"), load_run(tmp_path / "p")
    for k, v in a.G.state_dict().items():
        assert torch.equal(v, b.G.state_dict()[k]), k
    # one class; the same seed and class give the same images; the grid has one row per class
    x3 = a.sample(8, seed=1, label=3)
    assert torch.equal(x3, a.sample(8, seed=1, label="3")) and not torch.equal(x3, a.sample(8, seed=1, label=4))
    for flag, n in (["--class", "3"], 64), (["--per-class", "--nrow", "5"], 50), (["--interpolate", "1,7"], 64):
        out = tmp_path / f"{flag[0][2:]}.npz"
        r = run_cli("sample", tmp_path / "c", *flag, "--out", out)
        assert r.returncode == 0 and f"wrote {n} samples" in r.stdout, r.stderr
    r = run_cli("eval", tmp_path / "c", "-n", "300", "--metrics", "fid")
    assert r.returncode == 0 and "class accuracy" in r.stdout and "per-class FID" in r.stdout, r.stderr
    cond = json.loads((tmp_path / "c" / "eval.json").read_text())["evaluations"][-1]["metrics"]["conditional"]
    assert 0 <= cond["class_acc"] <= 1 and len(cond["fid_per_class"]) == 10
    z = np.load(tmp_path / "interpolate.npz")["x"]
    first = torch.randn(1, 16, generator=_first_z())             # row 0's code: class 1 at the left, 7 at the right
    np.testing.assert_allclose(z[0], a.sample(1, label=1, z=first).numpy()[0], atol=1e-5)
    np.testing.assert_allclose(z[7], a.sample(1, label=7, z=first).numpy()[0], atol=1e-5)
    assert not np.allclose(z[3], z[0], atol=1e-6)


def _first_z():
    from ganforge.rng import Stream
    return Stream(0, "sample").next()


def test_sample_mistakes_on_conditional_flags(tmp_path):
    r = run_cli("train", "toy-ring", "steps=2", "name=u", "log.every=1", "--out", tmp_path)
    assert r.returncode == 0
    r = run_cli("sample", tmp_path / "u", "--class", "1", "--out", tmp_path / "x.png")
    assert r.returncode == 2 and "not class-conditional" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
