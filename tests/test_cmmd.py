"""CMMD (Jayasumana et al. 2024) against a brute-force computation, and FD's name in other feature spaces."""
import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import UserError
from ganforge.metrics.cmmd import cmmd
from ganforge.metrics.evaluate import Evaluator, RealSet, Settings
from ganforge.metrics.extractor import ModuleExtractor


def _brute(x, y, sigma=10.0):
    """Every kernel value in float64: the U-statistic of the paper and the authors' code's mean with diagonals."""
    k = lambda a, b: torch.exp(-torch.cdist(a, b).square() / (2 * sigma ** 2))   # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    unbiased = (kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (n * (n - 1)) - 2 * kxy.mean()
    return 1000 * float(unbiased), 1000 * float(kxx.mean() + kyy.mean() - 2 * kxy.mean())


@pytest.mark.parametrize("m,n", [(300, 200), (2100, 40)])        # 2,100: across the 2,048-row blocks
def test_cmmd_is_the_brute_force_mmd(m, n):
    g = torch.Generator().manual_seed(m)
    x = F.normalize(torch.randn(m, 32, generator=g, dtype=torch.float64), dim=1)       # unit vectors, as CLIP's
    y = F.normalize(torch.randn(n, 32, generator=g, dtype=torch.float64) + 0.2, dim=1)
    got, (unbiased, biased) = cmmd(x.float(), y.float()), _brute(x.float().double(), y.float().double())
    assert got["value"] == pytest.approx(unbiased, rel=1e-10)
    assert got["biased"] == pytest.approx(biased, rel=1e-10)
    same, s = cmmd(x, x), float(torch.exp(-torch.cdist(x, x).square() / 200).sum())
    assert same["biased"] == pytest.approx(0.0, abs=1e-9)                  # a V-statistic of one set is 0
    assert same["value"] == pytest.approx(1000 * (2 * (s - m) / (m * (m - 1)) - 2 * s / m ** 2), rel=1e-9)


def test_cmmd_refuses_non_finite_and_tiny_sets():
    x = torch.randn(10, 4)
    with pytest.raises(UserError, match="NaN"):
        cmmd(x, x.clone().index_fill_(0, torch.tensor([3]), float("nan")))
    with pytest.raises(ValueError, match="at least 2"):
        cmmd(x[:1], x)


def test_cmmd_needs_clip_features():
    real = torch.rand(20, 1, 8, 8) * 2 - 1
    with pytest.raises(UserError, match=r"CMMD is computed on clip features; add --features clip"):
        Evaluator(RealSet("t", real), Settings(metrics=("fid", "cmmd"), features="mnist"))


def test_fd_is_named_by_its_features(tmp_path):
    """A Fréchet distance in DINOv2's or CLIP's features is FD_DINOv2 / FD_CLIP, never FID."""
    from ganforge.cli.eval import table
    net = ModuleExtractor(torch.nn.Flatten(), "flat")
    real = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fake = real.flip(0) * 0.5
    r = Evaluator(RealSet("t", real), Settings(metrics=("fid",), features=net))(fake, 40)
    assert "name" not in r["metrics"]["fid"]
    net.fd_name = "FD_DINOv2"
    named = Evaluator(RealSet("t", real), Settings(metrics=("fid",), features=net))(fake, 40)
    assert named["metrics"]["fid"] == {**r["metrics"]["fid"], "name": "FD_DINOv2"}
    assert table({**named, "n": 40}).splitlines()[0].split() == ["FD_DINOv2", f"{r['metrics']['fid']['value']:.4f}"]


def test_cmmd_from_the_command_line_uses_clip(tmp_path, capsys):
    """``--metrics cmmd`` alone picks the clip extractor; its number is cmmd() of that tower's embeddings, and the
    Fréchet distance beside it is FD_CLIP."""
    import json

    import numpy as np

    from ganforge.cli import main
    from ganforge.metrics.clip import CLIPImageTower, Geometry
    torch.manual_seed(0)
    tower = CLIPImageTower(Geometry(64, 2, 1, 8, 32, 256, 32))          # a ViT-B/32-like tower, small and random
    for p in tower.parameters():
        p.data.normal_(0, 0.05)
    torch.save(tower.state_dict(), tmp_path / "clip.pt")
    rng = np.random.default_rng(0)
    real, fake = rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8), rng.integers(0, 200, (50, 3, 32, 32), dtype=np.uint8)
    np.savez(tmp_path / "real.npz", x=real)
    np.savez(tmp_path / "fake.npz", x=fake)
    args = ["eval", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "fake.npz"), "--progress", "off",
            "--clip-weights", str(tmp_path / "clip.pt")]
    assert main([*args, "--metrics", "cmmd", "--out", str(tmp_path / "e.json")]) == 0
    got = json.loads((tmp_path / "e.json").read_text())["evaluations"][-1]["metrics"]["cmmd"]
    with torch.no_grad():
        embed = [tower(torch.from_numpy(a).float() / 127.5 - 1)[0] for a in (real, fake)]
    assert got["value"] == pytest.approx(cmmd(*embed)["value"], rel=1e-6) and got["extractor"] == "clip"
    assert main([*args, "--metrics", "fid,cmmd", "--features", "clip", "--out", str(tmp_path / "f.json")]) == 0
    out = capsys.readouterr().out
    assert "FD_CLIP " in out and "FID" not in out and "CMMD " in out
