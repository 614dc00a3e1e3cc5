"""Evaluation: toy divergences against closed forms, digit mode metrics, streaming, the cache, `ganforge eval`."""
import json
import math

import numpy as np
import pytest
import torch

from ganforge.cli import main
from ganforge.data.toy import GaussianMixture, ring
from ganforge.metrics import fid, kid
from ganforge.metrics.digits import class_histogram, stacked_modes
from ganforge.metrics.divergence import divergences
from ganforge.metrics.evaluate import Evaluator, RealSet, Settings
from ganforge.metrics.extract import extract
from ganforge.metrics.features import wrap_module
from ganforge.metrics.fid import FeatureStats
from ganforge.metrics.prdc import density_coverage, precision_recall


def _gauss_jsd_2d(shift: float) -> float:
    xs = np.linspace(-8, 8 + shift, 1601)
    X, Y = np.meshgrid(xs, xs)
    h = (xs[1] - xs[0]) ** 2
    p = np.exp(-(X ** 2 + Y ** 2) / 2) / (2 * np.pi)
    q = np.exp(-((X - shift) ** 2 + Y ** 2) / 2) / (2 * np.pi)
    m = (p + q) / 2
    return float(0.5 * np.sum(p * np.log(p / m)) * h + 0.5 * np.sum(q * np.log(q / m)) * h)


def test_divergences_match_closed_forms_for_shifted_gaussians():
    # p_data = N(0, I), p_g = N((1, 0), I): KL = |shift|^2 / 2 = 0.5 both ways; JSD by numerical integration
    pd = GaussianMixture(torch.zeros(1, 2), torch.ones(1), torch.ones(1))
    x = torch.randn(6000, 2, generator=torch.Generator().manual_seed(1)) + torch.tensor([1.0, 0.0])
    r = divergences(x, pd, seed=2)
    assert abs(r["kl_reverse"] - 0.5) < 3 * r["kl_reverse_se"] + 0.02
    assert abs(r["kl_forward"] - 0.5) < 3 * r["kl_forward_se"] + 0.02
    assert abs(r["jsd"] - _gauss_jsd_2d(1.0)) < 3 * r["jsd_se"] + 0.01
    for key in ("kl_reverse", "kl_forward", "jsd"):          # true samples: the estimator's floor is near 0
        assert abs(r["floor"][key]) < 0.03, (key, r["floor"])


def test_divergences_see_mode_dropping():
    # p_g = the ring's first 4 modes only: KL(p_g||p_data) = log 2 exactly, KL(p_data||p_g) is huge,
    # JSD = 1/4 log(2/3) + 1/4 log 2 + 1/2 log(4/3)
    full = ring()
    half = GaussianMixture(full.means[:4], full.std[:4], torch.full((4,), 0.25))
    x = half.sample(3000, torch.Generator().manual_seed(3))
    r = divergences(x, full, seed=4)
    jsd = 0.25 * math.log(2 / 3) + 0.25 * math.log(2) + 0.5 * math.log(4 / 3)
    assert abs(r["kl_reverse"] - math.log(2)) < 0.05
    assert r["kl_forward"] > 2.0
    assert abs(r["jsd"] - jsd) < 0.03


def test_class_histogram_closed_forms():
    eye = torch.eye(10) * 20
    balanced = class_histogram(eye.repeat(30, 1))
    assert balanced["counts"] == [30] * 10 and balanced["modes"] == 10 and abs(balanced["kl"]) < 1e-12
    assert balanced["confident"] == 1.0
    one = class_histogram(eye[3:4].repeat(50, 1))
    assert one["modes"] == 1 and abs(one["kl"] - math.log(10)) < 1e-12
    unsure = class_histogram(torch.zeros(40, 10))         # uniform softmax: nobody is confident
    assert unsure["confident"] == 0.0


def test_stacked_modes_counts_digit_triples():
    eye = torch.eye(10) * 20
    digits = torch.tensor([[1, 2, 3], [1, 2, 3], [9, 0, 0], [0, 0, 7]])
    r = stacked_modes([eye[digits[:, c]] for c in range(3)])
    assert r["modes"] == 3 and r["of"] == 1000
    q = np.array([0.5, 0.25, 0.25])
    assert abs(r["kl"] - float((q * np.log(q * 1000)).sum())) < 1e-12


class _Tiny(torch.nn.Module):
    """A fixed random conv net standing in for a feature extractor."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, 2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                                       torch.nn.Flatten())

    def forward(self, x):
        return self.net(x)


def test_streaming_extraction_keeps_only_statistics():
    x = torch.rand(300, 1, 12, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ex = wrap_module(_Tiny())
    full = extract(ex, x, 300, batch=64)
    streamed = extract(ex, lambda s, c: x[s:s + c], 300, batch=50, keep_features=False)
    assert streamed.features is None
    ref = FeatureStats.of(full.features)
    assert torch.allclose(streamed.stats.mean, ref.mean, atol=1e-12) and torch.allclose(streamed.stats.cov, ref.cov, atol=1e-10)


def test_evaluator_metrics_equal_direct_calls_and_reference_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(1)
    real = torch.rand(400, 1, 12, 12, generator=g) * 2 - 1
    fake = (torch.rand(300, 1, 12, 12, generator=g) * 2 - 1) * 0.8
    tiny = _Tiny()
    s = Settings(metrics=("fid", "kid", "pr", "dc"), features=tiny, kid_subsets=10, kid_size=100, seed=3)
    key = {"data": "test-real", "split": "all"}
    r1 = Evaluator(RealSet("test", real, key), s)(fake, 300)
    ev2 = Evaluator(RealSet("test", real, key), s)
    r2 = ev2(fake, 300)
    assert r1["real"]["source"] == "computed" and r2["real"]["source"] == "cache"
    assert r1["metrics"]["fid"]["value"] == r2["metrics"]["fid"]["value"]
    with torch.no_grad():
        fr, ff = tiny(real), tiny(fake)
    m = r1["metrics"]
    assert abs(m["fid"]["value"] - fid(ff, fr)) < 1e-9 * max(1.0, m["fid"]["value"])
    assert m["kid"]["value"] == pytest.approx(kid(ff, fr, 10, 100, seed=3)["mean"], rel=1e-9, abs=1e-12)
    assert m["pr"]["precision"] == precision_recall(fr, ff)["precision"]
    assert m["dc"]["coverage"] == density_coverage(fr, ff)["coverage"]
    for v in m.values():                              # every number says what produced it
        assert {"extractor", "protocol", "weights_hash", "n_fake", "n_real"} <= set(v)
    # a different extractor (other weights) is a different cache entry
    other = _Tiny()
    with torch.no_grad():
        other.net[0].weight.mul_(2)
    r3 = Evaluator(RealSet("test", real, key), Settings(metrics=("fid",), features=other))(fake, 300)
    assert r3["real"]["source"] == "computed"


def test_eval_command_on_npz_files(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(800, 2, generator=g), torch.randn(600, 2, generator=g) + 0.5
    np.savez(tmp_path / "a.npz", x=a.numpy())
    np.savez(tmp_path / "b.npz", x=b.numpy())
    out = tmp_path / "e.json"
    args = ["eval", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "b.npz"), "--metrics", "fid,kid",
            "--kid-subsets", "5", "--kid-size", "100", "--out", str(out), "--progress", "off"]
    assert main(args) == 0
    assert main(args) == 0                                    # a second result is added, the first kept
    runs = json.loads(out.read_text())["evaluations"]
    assert len(runs) == 2 and runs[0]["metrics"] == runs[1]["metrics"]
    assert runs[0]["metrics"]["fid"]["value"] == pytest.approx(fid(b, a), rel=1e-9)
    assert "FID" in capsys.readouterr().out
    for bad in (["eval", "--fake", str(tmp_path / "b.npz")],
                ["eval", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "b.npz"), "--metrics", "fid,nope"],
                ["eval", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "b.npz"), "--metrics", "is"],
                ["eval", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "missing.npz")],
                ["eval", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "b.npz"), "-n", "601"]):
        assert main(bad) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("ganforge: error:") and "\n" not in err


def test_training_keeps_the_best_checkpoint_by_the_chosen_metric(tmp_path):
    import ganforge
    from ganforge.api import load_run
    run = ganforge.train("toy-ring", out=tmp_path, steps=300, progress="off",
                         **{"eval.every": 100, "eval.metrics": "modes", "eval.best": "kl", "eval.n": 400,
                            "log.every": 100, "log.tb": False})
    rows = [r for r in run.metrics() if "kl" in r]
    assert [r["step"] for r in rows] == [100, 200, 300]
    assert all({"kl_reverse", "kl_forward", "jsd", "modes", "hq"} <= set(r) for r in rows)
    best = min(rows, key=lambda r: r["kl"])
    info = json.loads((run.path / "best.json").read_text())
    assert info == {"metric": "kl", "value": best["kl"], "step": best["step"]}
    assert load_run(run.path, which="best").step == best["step"]
    with pytest.raises(ganforge.errors.UserError):
        ganforge.train("toy-ring", out=tmp_path, steps=10, progress="off", **{"eval.metrics": "modes", "eval.best": "fid"})


def test_mnist_features_on_real_digits():
    """Real digits against real digits: small FID, balanced confident classes; noise is far away."""
    from ganforge.config import load_config
    from ganforge.data import load_dataset
    real = load_dataset(load_config(None, ("data.split=all",)).data)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(real), generator=g)
    a, b = real.x[perm[:2000]], real.x[perm[2000:3000]]
    s = Settings(metrics=("fid", "modes"), features="mnist")
    r = Evaluator(RealSet("mnist", a, None, digits="mnist"), s)(b, len(b))
    noise = Evaluator(RealSet("mnist", a, None, digits="mnist"), s)(torch.rand(1000, 1, 28, 28, generator=g) * 2 - 1, 1000)
    assert r["metrics"]["fid"]["value"] * 20 < noise["metrics"]["fid"]["value"]
    m = r["metrics"]["modes"]
    assert m["modes"] == 10 and m["kl"] < 0.02 and m["confident"] > 0.95
    truth = torch.bincount(real.y[perm[2000:3000]], minlength=10)
    assert (torch.tensor(m["counts"]) - truth).abs().sum() <= 20                 # the classifier is ~99% right


def test_stacked_mnist_modes_on_real_stacks():
    from ganforge.config import load_config
    from ganforge.data import load_dataset
    ds = load_dataset(load_config(None, ("data=stacked-mnist", "data.split=all")).data)
    x, y = ds.x[:3000], ds.y[:3000]
    r = Evaluator(RealSet("stacked-mnist", ds.x, None, digits="stacked"),
                  Settings(metrics=("modes",), features="mnist"))(x, len(x))
    m = r["metrics"]["modes"]
    true_modes = len(torch.unique(y))
    assert m["of"] == 1000 and abs(m["modes"] - true_modes) <= 0.03 * true_modes
    q = torch.bincount(y, minlength=1000).double() / len(y)
    true_kl = float((q[q > 0] * torch.log(q[q > 0] * 1000)).sum())
    assert abs(m["kl"] - true_kl) < 0.05


def test_missing_inception_weights_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    x = np.random.default_rng(0).integers(0, 256, (20, 3, 16, 16), dtype=np.uint8)   # no note on the range of floats
    np.savez(tmp_path / "a.npz", x=x)
    assert main(["eval", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "a.npz"), "--features", "inception",
                 "--metrics", "fid", "--progress", "off", "--out", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pt_inception-2015-12-05-6726825d.pth" in err and "GANFORGE_INCEPTION_WEIGHTS" in err
    assert not (tmp_path / "e.json").exists()


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("GANFORGE_CACHE", str(blocker))            # the cache folder cannot be created
    real = torch.rand(50, 1, 12, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    r = Evaluator(RealSet("t", real, {"data": "t"}), Settings(metrics=("fid",), features=_Tiny()))(real, 50)
    assert r["metrics"]["fid"]["value"] < 1e-6
    assert "not cached" in capsys.readouterr().err


def test_fid_and_modes_pass_the_generated_digits_through_the_classifier_once(monkeypatch):
    """With the digit features, FID's pass keeps the logits that modes() reads: one pass, the same counts as the
    classifier's own pass over the samples."""
    from ganforge.config import load_config
    from ganforge.metrics import evaluate
    from ganforge.metrics.digits import class_histogram
    from ganforge.metrics.evaluate import Evaluator, Settings
    from ganforge.metrics.sources import from_data_config
    real = from_data_config(load_config(None, ()).data)
    ev = Evaluator(real, Settings(metrics=("fid", "modes"), n_real=500))
    ev.reference()
    fake = real.x[1000:1300]
    passes, extract = [], evaluate.extract
    monkeypatch.setattr(evaluate, "extract", lambda *a, **k: passes.append(k.get("keep_logits")) or extract(*a, **k))
    out = ev(fake, 300)["metrics"]
    assert passes == [True] and out["fid"]["value"] > 0
    own = class_histogram(extract(ev.digit_net, fake, 300, 256, keep_features=False, keep_logits=True).logits)
    assert out["modes"]["counts"] == own["counts"]
