"""The memorisation metric (Alaa et al. 2022's authenticity, calibrated by held-out training images): closed forms,
copies of MNIST training digits flagged, unseen digits not, and `ganforge eval --metrics memorization` end to end."""
import json
import math

import pytest
import torch

from ganforge.cli import main
from ganforge.errors import UserError
from ganforge.metrics import memorization as mem
from ganforge.metrics import registry


@pytest.fixture(scope="module")
def digits():
    """The embedded 5,000 MNIST digits in [-1, 1] as pixel features (14x14, 2x2 means, for speed), split 4,000
    training / 1,000 unseen."""
    from ganforge.data.embedded import load_mnist
    x = torch.nn.functional.avg_pool2d(load_mnist()[0] * 2 - 1, 2).reshape(5000, -1)
    perm = torch.randperm(5000, generator=torch.Generator().manual_seed(7))
    return x[perm[:4000]], x[perm[4000:]]


def test_the_criterion_on_points_worked_by_hand():
    ref = torch.tensor([[0.0], [1.0], [3.0], [10.0]])          # nearest-other distances 1, 1, 2, 7
    pts = torch.tensor([[0.4], [2.2], [6.0], [12.0], [-1.0], [3.0]])
    f = mem.flags(pts, ref)
    assert f["nearest"].tolist() == [0, 2, 2, 3, 0, 2]
    assert torch.allclose(f["distance"], torch.tensor([0.4, 0.8, 3.0, 2.0, 1.0, 0.0], dtype=torch.float64))
    assert f["radius"].tolist() == [1.0, 2.0, 2.0, 7.0, 1.0, 2.0]
    # 6.0 is 3 from its nearest (3.0, whose neighbour is 2 away); -1.0 is exactly 1 from 0.0: strict, not flagged
    assert f["flagged"].tolist() == [True, True, False, True, False, True]
    dup = mem.flags(torch.tensor([[5.0]]), torch.tensor([[5.0], [5.0], [9.0]]))
    assert dup["flagged"].tolist() == [False]                  # a duplicated training image flags nothing
    z, p = mem.two_proportion_z(30, 50, 20, 50)                # pooled 0.5: se = sqrt(0.25 * 0.04) = 0.1
    assert z == pytest.approx(2.0) and p == pytest.approx(0.5 * math.erfc(2 / math.sqrt(2))) and p == pytest.approx(0.02275, abs=1e-5)
    assert mem.two_proportion_z(0, 10, 0, 20) == (0.0, 0.5)
    with pytest.raises(UserError, match="at least 10 training samples"):
        mem.memorization(torch.randn(5, 3), torch.randn(5, 3))


def test_blocked_neighbours_equal_brute_force(monkeypatch):
    g = torch.Generator().manual_seed(0)
    ref, pts = torch.randn(300, 5, generator=g, dtype=torch.float64), torch.randn(200, 5, generator=g, dtype=torch.float64)
    monkeypatch.setattr(mem, "CELLS", 300 * 7)                 # blocks of 7 rows
    f = mem.flags(pts, ref)
    rr = ((ref[:, None] - ref[None]) ** 2).sum(-1).sqrt() + torch.diag(torch.full((300,), math.inf, dtype=torch.float64))
    d, j = ((pts[:, None] - ref[None]) ** 2).sum(-1).sqrt().min(1)
    radius = rr.min(1).values[j]
    assert f["nearest"].tolist() == j.tolist()
    assert torch.allclose(f["distance"], d, atol=1e-9) and torch.allclose(f["radius"], radius, atol=1e-9)
    assert f["flagged"].tolist() == (d < radius).tolist() and 0 < int(f["flagged"].sum()) < 200


def test_copies_of_training_digits_are_flagged(digits):
    train, _ = digits
    g = torch.Generator().manual_seed(1)
    src = torch.randint(0, len(train), (1000,), generator=g)
    fake = train[src].clone()
    fake[500:] = (fake[500:] + 0.05 * torch.randn(500, fake.shape[1], generator=g)).clamp(-1, 1)   # tiny noise
    e = mem.memorization(train, fake)
    ref_i, held_i = mem.split(len(train))
    assert (e["reference_n"], e["baseline_n"]) == (3200, 800)
    # every copy of a reference image is flagged; a copy of a held-out one counts as a fresh sample
    in_ref = torch.isin(src, ref_i)
    f = mem.flags(fake.double(), train[ref_i].double())
    assert bool(f["flagged"][in_ref].all()) and torch.equal(ref_i[f["nearest"][:500][in_ref[:500]]], src[:500][in_ref[:500]])
    expected = (int(in_ref.sum()) + int(f["flagged"][~in_ref].sum())) / 1000
    assert e["memorized"] == pytest.approx(expected) and e["memorized"] > 0.85
    assert 0.3 < e["memorized_baseline"] < 0.6 and e["authenticity"] == pytest.approx(1 - e["memorized"])
    assert e["copying"] and e["z"] > 15 and e["p"] < 1e-40
    assert e["verdict"].startswith(f"{e['flagged']} of 1000 samples ({100 * e['memorized']:.1f}%) are closer to a "
                                   "training image than training images are to each other; held-out real images: ")
    assert "Copying" in e["verdict"] and "two-proportion z-test" in e["verdict"]
    assert len(e["pairs"]) == 8 and all(p["distance"] < 1e-5 and p["flagged"] for p in e["pairs"])
    assert all(torch.equal(train[p["train"]], fake[p["sample"]]) for p in e["pairs"])


def test_unseen_real_digits_are_not_flagged(digits):
    train, unseen = digits
    e = mem.memorization(train, unseen)
    margin = 2.326 * math.sqrt(e["memorized_baseline"] * (1 - e["memorized_baseline"]) * (1 / 1000 + 1 / 800))
    assert abs(e["memorized"] - e["memorized_baseline"]) < margin
    assert not e["copying"] and e["z"] < 2.326 and e["p"] > 0.01
    assert "No evidence of copying" in e["verdict"]
    half = torch.cat([train[:500], unseen[:500]])               # half copies: still caught
    assert mem.memorization(train, half)["copying"]


def test_opt_in_only_and_never_eval_best():
    assert "memorization" in registry.selectable()
    assert all("memorization" not in registry.auto_metrics(k, d) for k, d in (("image", "mnist"), ("image", None),
                                                                              ("vector", None)))
    assert "memorization" not in registry.auto_metrics("image", "mnist", (1, 28, 28), "mnist", training=True)
    assert not {"memorized", "memorized_baseline"} & set(registry.best_choices())


def test_the_evaluator_measures_points_against_the_training_split():
    from ganforge.metrics.evaluate import Evaluator, RealSet, Settings
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(200, 2, generator=g), torch.randn(80, 2, generator=g)
    got = Evaluator(RealSet("pts", real, None), Settings(metrics=("memorization",)))(fake, 80)["metrics"]["memorization"]
    want = mem.memorization(real, fake)
    assert {k: got[k] for k in want} == want and got["extractor"] == "points" and "picture" not in got
    held = RealSet("pts (holdout)", real, {"data": "pts", "split": "holdout"})
    with pytest.raises(UserError, match="drop --real-split holdout"):
        Evaluator(held, Settings(metrics=("memorization",)))(fake, 80)


def test_eval_command_writes_the_entry_and_the_picture(tmp_path, tiny_dcgan, capsys):
    import ganforge
    from PIL import Image
    over = dict(o.split("=") for o in tiny_dcgan if not o.startswith("log."))
    run = ganforge.train("mnist-dcgan", out=tmp_path / "runs", steps=1, progress="off",
                         **{**over, "eval.metrics": "none", "log.tb": False})
    args = ["eval", str(run.path), "--metrics", "memorization", "-n", "64", "--n-real", "600", "--progress", "off"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "are closer to a training image than training images are to each other" in out and "copying" in out
    entry = json.loads((run.path / "eval.json").read_text())["evaluations"][-1]["metrics"]["memorization"]
    assert set(entry) >= {"memorized", "memorized_baseline", "z", "p", "verdict", "pairs", "extractor", "picture"}
    assert (entry["n"], entry["reference_n"], entry["baseline_n"], entry["picture"]) == (64, 480, 120, "memorization.png")
    with Image.open(run.path / "memorization.png") as im:          # 8 pairs of 28x28 digits drawn at 2x
        assert im.size == (2 + 8 * 58, 2 + 2 * 58)
    assert main(["report", str(run.path)]) == 0
    page = (run.path / "report.html").read_text()
    assert "<h2>Memorisation</h2>" in page and entry["verdict"].split(";")[0] in page
    other = tmp_path / "elsewhere" / "e.json"                      # --out: the picture goes beside that file
    assert main([*args, "--out", str(other)]) == 0
    assert (tmp_path / "elsewhere" / "e-memorization.png").is_file()
