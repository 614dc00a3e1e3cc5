"""BigGAN: hierarchical z, shared-embedding cBN, self-attention, orthogonal regularization, truncation."""
import json

import pytest
import torch

from conftest import assert_same_nets, run_cli
from ganforge.api import load_run
from ganforge.config import load_config
from ganforge.errors import UserError
from ganforge.nets import build_nets
from ganforge.nets.attention import SelfAttention
from ganforge.nets.biggan import HierarchicalBatchNorm2d, ortho_penalty
from ganforge.rng import truncated_normal

SMALL = ("model=biggan", "model.g_width=8", "model.d_width=8", "model.z_dim=18", "model.shared_dim=8")


def _nets(shape, *extra, classes=0):
    cfg = load_config(None, (*SMALL, *(("model.conditional=true",) if classes else ()), *extra))
    torch.manual_seed(0)
    return build_nets(cfg.model, shape, classes)


@pytest.mark.parametrize("side", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("classes", [0, 10])
def test_shapes_gradients_for_every_side_and_channel_count(side, channels, classes):
    G, D = _nets((channels, side, side), classes=classes)
    with torch.no_grad():                       # attention gains start at 0, which stops gradients to its convs
        for m in (*G.modules(), *D.modules()):
            if isinstance(m, SelfAttention):
                m.gamma.fill_(0.5)
    z, y = torch.randn(4, 18), (torch.tensor([0, 3, 5, 9]) if classes else None)
    x = G(z, y) if classes else G(z)
    assert x.shape == (4, channels, side, side) and x.abs().max() <= 1
    out = D(x, y) if classes else D(x)
    assert out.shape == (4,)
    (out.sum() + G.weight_penalty()).backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert sum(isinstance(m, SelfAttention) for m in G.modules()) == 1
    assert sum(isinstance(m, SelfAttention) for m in D.modules()) == 1


def test_hierarchical_z_reaches_every_block_and_labels_share_one_embedding():
    G, _ = _nets((1, 32, 32), classes=10)
    assert G.first + 3 * G.chunk == 18 and G.chunk == 4           # 32 px: 3 blocks, z split in 4
    G.eval()
    z, y = torch.randn(2, 18), torch.tensor([1, 2])
    with torch.no_grad():
        torch.nn.init.normal_(G.blocks[2].n1.gain.weight, 0, 1)  # make the last block's cBN sensitive
        base = G(z, y)
        for lo, hi in ((0, G.first), (G.first + 2 * G.chunk, 18)):   # the linear's chunk, the last block's chunk
            z2 = z.clone()
            z2[:, lo:hi] += 1
            assert not torch.allclose(G(z2, y), base)
        assert not torch.allclose(G(z, torch.tensor([3, 4])), base)
    cbn = [m for m in G.modules() if isinstance(m, HierarchicalBatchNorm2d)]
    assert len(cbn) == 6 and all(m.gain.in_features == 8 + G.chunk for m in cbn)
    assert sum(isinstance(m, torch.nn.Embedding) for m in G.modules()) == 1


def test_hierarchical_batch_norm_closed_form():
    torch.manual_seed(0)
    m = HierarchicalBatchNorm2d(3, 5).eval()
    x, c = torch.randn(2, 3, 4, 4), torch.randn(2, 5)
    xn = x / (1 + 1e-5) ** 0.5                     # eval mode at init: running mean 0, variance 1
    want = xn * (1 + c @ m.gain.weight.t())[:, :, None, None] + (c @ m.bias.weight.t())[:, :, None, None]
    torch.testing.assert_close(m(x, c), want, rtol=1e-5, atol=1e-6)


def test_self_attention_starts_as_identity_and_mixes_positions():
    torch.manual_seed(0)
    a = SelfAttention(16)
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(a(x), x)
    with torch.no_grad():
        a.gamma.fill_(1.0)
    y = a(x)
    x2 = x.clone()
    x2[:, :, 5, 5] += 3                              # one far position changes every output position
    assert not torch.allclose(a(x2)[:, :, 0, 0], y[:, :, 0, 0])


def test_orthogonal_penalty_closed_form():
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    assert ortho_penalty([q[:4]]).item() == pytest.approx(0.0, abs=1e-10)         # orthonormal rows: 0
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])                                       # W W^T = [[5, 11], [11, 25]]
    assert ortho_penalty([w]).item() == pytest.approx(2 * 11 ** 2)
    conv = torch.randn(3, 2, 3, 3)
    m = conv.reshape(3, -1)
    g = m @ m.t()
    assert ortho_penalty([conv]).item() == pytest.approx((g.pow(2).sum() - g.diagonal().pow(2).sum()).item(), rel=1e-5)
    G, _ = _nets((1, 28, 28), "model.ortho=0.5")
    names = [n for n, p in G.named_parameters() if p.dim() >= 2]
    assert G.weight_penalty().item() == pytest.approx(0.5 * ortho_penalty(G.penalized_weights()).item())
    assert len(list(G.penalized_weights())) == len(names)
    assert _nets((1, 28, 28), "model.ortho=0")[0].weight_penalty() is None


def test_truncated_normal_is_bounded_and_seeded():
    a = truncated_normal((2000, 8), 0.5, torch.Generator().manual_seed(1))
    b = truncated_normal((2000, 8), 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.abs().max() <= 0.5
    assert a.std().item() == pytest.approx(0.2859, abs=0.01)      # std of N(0,1) truncated to [-0.5, 0.5]


def test_options_mistakes():
    with pytest.raises(UserError, match="model.attention=5"):
        _nets((1, 28, 28), "model.attention=5")
    G, D = _nets((1, 28, 28), "model.attention=0")
    assert not any(isinstance(m, SelfAttention) for m in (*G.modules(), *D.modules()))
    with pytest.raises(UserError, match="z_dim must be at least 3"):
        _nets((1, 28, 28), "model.z_dim=2")
    cfg = load_config(None, ("model=biggan",))
    assert cfg.loss == "hinge" and cfg.model.spectral_norm and cfg.model.g_spectral_norm


@pytest.mark.cuda
def test_train_resume_truncation_and_sweep(tmp_path):
    args = ["train", "mnist-biggan", *SMALL[1:], "batch_size=20", "log.every=2", "log.samples_every=100",
            "log.checkpoint_every=2", "eval.n=200", "--out", tmp_path]
    r = run_cli(*args, "steps=4", "name=w")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["ortho"] > 0 and 0 <= rows[-1]["class_acc"] <= 1
    assert run_cli(*args, "steps=2", "name=p", "eval.metrics=none").returncode == 0      # evaluation has its own
    assert run_cli("train", "steps=4", "--resume", tmp_path / "p").returncode == 0          # stream: same weights
    a, b = load_run(tmp_path / "w"), load_run(tmp_path / "p")
    assert_same_nets(a, b)
    x1, x2 = a.sample(6, seed=2, truncation=0.5), a.sample(6, seed=2, truncation=0.5)
    assert torch.equal(x1, x2) and not torch.equal(x1, a.sample(6, seed=2))
    r = run_cli("sample", tmp_path / "w", "--truncation", "0.5", "--out", tmp_path / "t.png")
    assert r.returncode == 0 and (tmp_path / "t.png").is_file(), r.stderr
    r = run_cli("truncation", tmp_path / "w", "--values", "0.5,2", "-n", "100")
    assert r.returncode == 0, r.stderr[-2000:]
    sweep = json.loads((tmp_path / "w" / "truncation.json").read_text())
    assert [row["truncation"] for row in sweep["rows"]] == [0.5, 2.0] and sweep["extractor"] == "mnist"
    assert all(row["fid"] > 0 and 0 <= row["precision"] <= 1 for row in sweep["rows"])
    r = run_cli("truncation", tmp_path / "w", "--values", "0.5")            # would overwrite: one line, code 2
    assert r.returncode == 2 and "exists" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("truncation", tmp_path / "w", "--values", "-1", "--force")
    assert r.returncode == 2 and "above 0" in r.stderr


def test_truncation_refused_by_families_without_it(tmp_path):
    r = run_cli("train", "mnist-dcgan", "steps=1", "model.g_width=4", "model.d_width=4", "batch_size=8",
                "eval.metrics=none", "name=d", "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-1000:]
    for cmd in (["sample", tmp_path / "d", "--truncation", "0.5", "--out", tmp_path / "x.png"],
                ["truncation", tmp_path / "d"]):
        r = run_cli(*cmd)
        assert r.returncode == 2 and "biggan" in r.stderr and r.stderr.count("\n") == 1
