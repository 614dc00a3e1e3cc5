"""Issue 24, items 5 and 7: every metric refuses NaN and Inf in its inputs with one clear error, instead of an
eigensolver failure (FID), NaN (KID, IS) or normal-looking wrong numbers (precision, recall, density,
coverage); KID prints its subsets beside it and says when they had to shrink."""
import pytest
import torch

from ganforge.errors import UserError
from ganforge.metrics import density_coverage, fid, inception_score, kid, precision_recall
from ganforge.metrics.evaluate import Evaluator, RealSet, Settings

from test_evaluation import _Tiny


def _with_nan(x: torch.Tensor, rows=(3,)) -> torch.Tensor:
    x = x.clone()
    for r in rows:
        x[r, 0] = float("nan")
    return x


@pytest.fixture
def feats():
    g = torch.Generator().manual_seed(0)
    return torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 0.5


@pytest.mark.parametrize("metric", [
    lambda a, b: fid(a, b), lambda a, b: kid(a, b, subsets=5, subset_size=50),
    lambda a, b: precision_recall(a, b), lambda a, b: density_coverage(a, b),
    lambda a, b: inception_score(b, splits=2),
], ids=["fid", "kid", "pr", "dc", "is"])
@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_each_metric_refuses_non_finite_inputs_in_one_line(feats, metric, bad):
    a, b = feats
    b = _with_nan(b, rows=(3, 7)) if bad == "nan" else b.index_put((torch.tensor([5]),), torch.tensor(float("inf")))
    with pytest.raises(UserError, match=r"rows hold NaN or Inf values; no metric is computed") as e:
        metric(a, b)
    assert "\n" not in str(e.value) and (" 2 of 200 rows" in str(e.value) if bad == "nan" else " 1 of 200" in str(e.value))
    metric(a, feats[1])                                        # the same call on finite inputs gives a number


def test_the_evaluator_names_the_samples_whose_features_are_not_finite(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(1)
    real = torch.rand(200, 1, 12, 12, generator=g) * 2 - 1
    fake = torch.rand(150, 1, 12, 12, generator=g) * 2 - 1
    fake[70] = float("nan")                                   # one image of a generator that diverged
    ev = Evaluator(RealSet("test", real, {"data": "t", "split": "all"}),
                   Settings(metrics=("fid", "kid", "pr"), features=_Tiny(), kid_subsets=5, kid_size=50, batch=64))
    with pytest.raises(UserError, match=r"features of samples 64 to 127: 1 of 64 rows hold NaN or Inf"):
        ev(fake, 150)


def test_kid_says_when_its_subsets_hold_every_sample(tmp_path, capsys):
    import numpy as np

    from ganforge.cli import main
    rng = np.random.default_rng(0)
    for name, scale in (("real", 1.0), ("fake", 0.8)):
        np.savez(tmp_path / f"{name}.npz", x=(rng.random((300, 28, 28)) * scale).astype(np.float32))
    args = ["eval", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "fake.npz"), "--metrics", "kid",
            "--features", "mnist", "--kid-subsets", "20"]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("KID"))
    assert "± 0.000000  (20 subsets of 300: every subset holds all 300 samples of the smaller set" in line
    assert main([*args, "--kid-size", "100", "--out", str(tmp_path / "b.json")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("KID"))
    assert line.endswith("(20 subsets of 100)") and "± 0.000000" not in line
