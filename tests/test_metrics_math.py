"""FID, KID, Inception Score, precision/recall and density/coverage against closed forms,
brute force and torchmetrics on the same features."""
import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from ganforge.metrics import FeatureStats, density_coverage, fid, frechet_distance, inception_score, kid, precision_recall
from ganforge.metrics.kid import kid_subsets, mmd2_unbiased


def rand_cov(d, g, scale=1.0):
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return scale * (a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64))


def test_fid_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    want = 1 + 0 + 4 + sum(x + y - 2 * math.sqrt(x * y) for x, y in zip(a.tolist(), b.tolist()))
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(want, rel=1e-12)


def test_fid_matches_scipy_sqrtm_on_non_commuting_covariances():
    g = torch.Generator().manual_seed(0)
    s1, s2 = rand_cov(40, g), rand_cov(40, g, 3.0)
    mu1, mu2 = torch.randn(40, generator=g, dtype=torch.float64), torch.randn(40, generator=g, dtype=torch.float64)
    root = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    want = float(((mu1 - mu2) ** 2).sum()) + float(np.trace(s1.numpy() + s2.numpy() - 2 * root))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)


def test_fid_matches_torchmetrics_on_the_same_features():
    tm = pytest.importorskip("torchmetrics.image.fid")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(600, 64, generator=g, dtype=torch.float64).relu()
    b = (torch.randn(600, 64, generator=g, dtype=torch.float64) * 1.2 + 0.1).relu()
    sa, sb = FeatureStats.of(a), FeatureStats.of(b)
    theirs = float(tm._compute_fid(sa.mean, sa.cov, sb.mean, sb.cov))
    assert fid(a, b) == pytest.approx(theirs, rel=1e-6)
    assert fid(a, b) == pytest.approx(fid(sa, sb), rel=1e-12)


def test_fid_with_fewer_samples_than_dimensions_is_real_and_warning_free():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(50, 256, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert abs(fid(a, a.clone())) < 1e-8
        v = fid(a, torch.randn(50, 256, generator=g) + 0.5)
    assert math.isfinite(v) and v > 0.25 * 256 * 0.9


def test_running_statistics_equal_one_shot_statistics():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1001, 7, generator=g, dtype=torch.float64) * 0.01 + 1000.0   # large offset, small spread
    s = FeatureStats(7)
    for chunk in x.split([1, 300, 2, 500, 198]):
        s.update(chunk)
    assert s.n == 1001
    torch.testing.assert_close(s.mean, x.mean(0), rtol=0, atol=1e-10)
    torch.testing.assert_close(s.cov, torch.cov(x.T), rtol=1e-9, atol=1e-15)


def test_mmd_matches_brute_force_and_torchmetrics():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randn(12, 5, generator=g, dtype=torch.float64) + 0.3
    k = lambda p, q: (float(p @ q) / 5 + 1) ** 3  # noqa: E731
    m = 12
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    tm = pytest.importorskip("torchmetrics.image.kid")
    assert mmd2_unbiased(x, y) == pytest.approx(float(tm.poly_mmd(x, y)), rel=1e-10)


def test_kid_averages_mmd_over_its_subsets():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(300, 16, generator=g), torch.randn(250, 16, generator=g) * 1.5
    r = kid(a, b, subsets=7, subset_size=100, seed=9, dtype=torch.float64)
    idx = kid_subsets(300, 250, 7, 100, 9)
    v = [mmd2_unbiased(a[i], b[j]) for i, j in idx]
    assert r["mean"] == pytest.approx(float(np.mean(v)), rel=1e-12)
    assert r["std"] == pytest.approx(float(np.std(v)), rel=1e-9)
    fast = kid(a, b, subsets=7, subset_size=100, seed=9, dtype=torch.float32)     # float32 products, float64 sums
    assert fast["mean"] == pytest.approx(r["mean"], rel=1e-6)
    # whole-set blocks (several row blocks, symmetric halves mirrored) equal the per-subset sums
    big_a, big_b = torch.randn(5000, 8, generator=g, dtype=torch.float64), torch.randn(4500, 8, generator=g, dtype=torch.float64)
    big_idx = kid_subsets(5000, 4500, 3, 2500, 1)
    big = kid(big_a, big_b, index=big_idx, dtype=torch.float64)
    assert big["mean"] == pytest.approx(float(np.mean([mmd2_unbiased(big_a[i], big_b[j]) for i, j in big_idx])), rel=1e-9)
    assert all(len(set(i.tolist())) == 100 for i, _ in idx)          # without replacement
    assert r["subsets"] == 7 and r["subset_size"] == 100
    same = kid(a, torch.randn(300, 16, generator=g), subsets=20, subset_size=100)   # same law: unbiased, near 0
    assert abs(same["mean"]) < r["mean"] / 20


def _fidelity_kid():
    """torch-fidelity's mmd2 and kernel_poly, read from its metric_kid.py (whose module imports torchvision)."""
    import ast
    from importlib import metadata
    try:
        src = metadata.distribution("torch-fidelity").locate_file("torch_fidelity/metric_kid.py").read_text()
    except (metadata.PackageNotFoundError, OSError):
        pytest.skip("torch-fidelity is not installed (pip install --no-deps torch-fidelity==0.4.0) to compare against")
    fns = [n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name in ("mmd2", "kernel_poly")]
    names = {"np": np, "vassert": lambda ok, why: None, "get_kwarg": lambda k, kw: kw[k]}
    exec(compile(ast.Module(fns, []), "torch_fidelity/metric_kid.py", "exec"), names)
    return names["mmd2"], names["kernel_poly"]


def test_kid_of_features_far_from_the_origin_equals_torch_fidelitys_float64():
    """Issue 24, item 2: float32 features with 1,000 added (the cubic kernel's terms reach 1e18) were 8.6-12.7%
    off torch-fidelity's float64 value; KID now multiplies in float64."""
    mmd2, kernel_poly = _fidelity_kid()
    g = torch.Generator().manual_seed(11)
    a = torch.randn(400, 64, generator=g) + 1e3                        # float32, as extractors give them
    b = torch.randn(400, 64, generator=g) * 1.2 + 1e3
    idx = kid_subsets(400, 400, 10, 200, 4)
    kw = {"kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None, "kid_kernel_poly_coef0": 1}
    x, y = a.double().numpy(), b.double().numpy()
    ref = [mmd2(kernel_poly(x[i], x[i], **kw), kernel_poly(x[i], y[j], **kw), kernel_poly(y[j], y[j], **kw))
           for i, j in ((i.numpy(), j.numpy()) for i, j in idx)]
    ours = kid(a, b, index=idx)
    assert ours["mean"] == pytest.approx(float(np.mean(ref)), rel=1e-6)
    assert ours["std"] == pytest.approx(float(np.std(ref)), rel=1e-6)


def test_inception_score_closed_forms():
    confident = torch.full((1000, 10), -50.0)
    confident[torch.arange(1000), torch.arange(1000) % 10] = 50.0      # each split: every class 10 times
    r = inception_score(confident, splits=10)
    assert r["mean"] == pytest.approx(10.0, rel=1e-9) and r["std"] < 1e-9
    assert inception_score(torch.zeros(100, 7))["mean"] == pytest.approx(1.0, abs=1e-12)
    two = torch.tensor([[0.0, math.log(3.0)]] * 20)                    # p = (1/4, 3/4) for every x: p(y) equal
    assert inception_score(two, splits=2)["mean"] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="one sample per split"):
        inception_score(torch.zeros(5, 3), splits=10)


def brute_prdc(real, fake, k_pr, k_dc):
    def radii(s, k):
        return [sorted(float(torch.dist(p, q)) for q in s)[k] for p in s]
    rr, fr, rd = radii(real, k_pr), radii(fake, k_pr), radii(real, k_dc)
    inside = lambda p, s, r: [float(torch.dist(p, c)) <= rc for c, rc in zip(s, r)]  # noqa: E731
    precision = np.mean([any(inside(f, real, rr)) for f in fake])
    recall = np.mean([any(inside(r, fake, fr)) for r in real])
    strictly = lambda p, s, r: [float(torch.dist(p, c)) < rc for c, rc in zip(s, r)]  # noqa: E731
    density = sum(sum(strictly(f, real, rd)) for f in fake) / (k_dc * len(fake))            # Naeem et al.: a
    coverage = np.mean([min(float(torch.dist(r, f)) for f in fake) < rc for r, rc in zip(real, rd)])  # ball's edge is out
    return precision, recall, density, coverage


def test_prdc_equal_brute_force():
    g = torch.Generator().manual_seed(6)
    real = torch.randn(40, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(30, 3, generator=g, dtype=torch.float64) * 0.7 + 0.4
    p, r, d, c = brute_prdc(real, fake, 3, 5)
    pr, dc = precision_recall(real, fake, k=3), density_coverage(real, fake, k=5)
    assert (pr["precision"], pr["recall"]) == pytest.approx((p, r), abs=1e-12)
    assert (dc["density"], dc["coverage"]) == pytest.approx((d, c), abs=1e-12)
    same = precision_recall(real, real.clone())
    assert same["precision"] == same["recall"] == 1.0
    assert density_coverage(real, real.clone()) == {"density": 1.0, "coverage": 1.0, "k": 5}    # not (k+1)/k


def test_density_and_coverage_equal_the_official_prdc_on_the_same_features(capsys):
    prdc = pytest.importorskip("prdc")
    g = torch.Generator().manual_seed(7)
    real = torch.randn(300, 16, generator=g, dtype=torch.float64)
    for fake in (torch.randn(250, 16, generator=g, dtype=torch.float64) * 0.8 + 0.2, real.clone()):
        ref = prdc.compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
        ours = density_coverage(real, fake, k=5)
        assert (ours["density"], ours["coverage"]) == pytest.approx((ref["density"], ref["coverage"]), abs=1e-12)


def test_block_gram_equals_the_plain_product():
    from ganforge.metrics.gram import gram
    a = torch.randn(300, 1100, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    g = gram(a)                                    # 4 column blocks: 10 products instead of 16
    assert torch.equal(g, g.T)
    assert torch.allclose(g, a.T @ a, rtol=1e-12, atol=1e-10)


def test_inception_score_equals_torchmetrics_on_the_same_logits():
    tm = pytest.importorskip("torchmetrics.image.inception")
    logits = torch.randn(1000, 10, generator=torch.Generator().manual_seed(11)) * 3
    m = tm.InceptionScore(feature=torch.nn.Identity(), splits=10)
    m.update(logits)
    torch.manual_seed(5)
    theirs_mean, theirs_std = m.compute()
    torch.manual_seed(5)
    ours = inception_score(logits[torch.randperm(1000)], splits=10)     # the same shuffle, then 10 splits
    assert ours["mean"] == pytest.approx(float(theirs_mean), rel=1e-3)
    # the std over splits: ganforge divides by n as the paper's code (np.std) and torch-fidelity do; torchmetrics by n - 1
    assert ours["std"] * math.sqrt(10 / 9) == pytest.approx(float(theirs_std), rel=1e-6)
    shuffled = inception_score(logits.sort(dim=0).values, splits=10, seed=0)   # seed: a fixed shuffle first
    assert shuffled["mean"] != inception_score(logits.sort(dim=0).values, splits=10)["mean"]


def test_fid_blocked_paths_match_torchmetrics_at_high_dimension():
    # d >= 1,024 takes the blocked Gram and the triangle-aware congruence: same FID as the plain formula
    tm = pytest.importorskip("torchmetrics.image.fid")
    g = torch.Generator().manual_seed(2)
    a = torch.randn(1500, 1100, generator=g).relu()
    b = (torch.randn(1500, 1100, generator=g) * 1.2 + 0.1).relu()
    ad, bd = a.double(), b.double()
    ca, cb = torch.cov(ad.T), torch.cov(bd.T)
    theirs = float(tm._compute_fid(ad.mean(0), ca, bd.mean(0), cb))
    assert fid(a, b) == pytest.approx(theirs, rel=1e-9)
