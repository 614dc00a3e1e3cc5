"""Speed and agreement of ganforge's FID and KID against torchmetrics, on the same features.

    python benchmarks/metrics.py            # 10,000 vs 10,000 features of 2,048 dimensions
    python benchmarks/metrics.py --n 2000

Both sides start from the same precomputed features (ReLU'd Gaussians with
different scales, standing in for Inception pool3 features) and compute in
float64. FID: ganforge's FeatureStats + frechet_distance against torchmetrics'
statistics (sums and outer products, as its FrechetInceptionDistance keeps
them) + its _compute_fid. KID: the same 100 subsets of 1,000 through
ganforge's mmd2_unbiased and torchmetrics' poly_mmd. Prints seconds, the
ratio and the relative difference of the results; each time is the best of
two calls. Extractor throughput is
added when the extractors land (issue 3).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402


def timed(fn, repeats: int = 2):
    """Result and the best of ``repeats`` wall times (the first call also pays for thread-pool start-up)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def main(argv=None) -> int:
    from ganforge.metrics.reference import install_torch_fidelity_shim
    install_torch_fidelity_shim()
    from torchmetrics.image.fid import _compute_fid
    from torchmetrics.image.kid import poly_mmd

    from ganforge.metrics.fid import FeatureStats, frechet_distance
    from ganforge.metrics.kid import kid_subsets, mmd2_unbiased
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--dim", type=int, default=2048)
    a = p.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.n, a.dim, generator=g).relu()
    y = (torch.randn(a.n, a.dim, generator=g) * 1.1 + 0.05).relu()

    def ours_fid():
        sx, sy = FeatureStats.of(x), FeatureStats.of(y)
        return frechet_distance(sx.mean, sx.cov, sy.mean, sy.cov)

    def their_stats(f):
        f = f.double()
        n, s, outer = f.shape[0], f.sum(0), f.T @ f
        mean = s / n
        return mean, (outer - n * torch.outer(mean, mean)) / (n - 1)

    def their_fid():
        (mx, cx), (my, cy) = their_stats(x), their_stats(y)
        return float(_compute_fid(mx, cx, my, cy))

    idx = kid_subsets(a.n, a.n, 100, min(1000, a.n), 0)
    xd, yd = x.double(), y.double()
    f_ours, t_ours = timed(ours_fid)
    f_theirs, t_theirs = timed(their_fid)
    k_ours, tk_ours = timed(lambda: sum(mmd2_unbiased(xd[i], yd[j]) for i, j in idx) / len(idx))
    k_theirs, tk_theirs = timed(lambda: sum(float(poly_mmd(xd[i], yd[j])) for i, j in idx) / len(idx))
    print(f"machine: {machine()}, threads {torch.get_num_threads()}; {a.n} vs {a.n} features of {a.dim} dims, float64\n")
    print("| metric | ganforge s | torchmetrics s | speed-up | value (ganforge) | relative difference |")
    print("|---|---|---|---|---|---|")
    print(f"| FID | {t_ours:.2f} | {t_theirs:.2f} | {t_theirs / t_ours:.2f}× | {f_ours:.6f} | {abs(f_ours - f_theirs) / abs(f_theirs):.1e} |")
    print(f"| KID (100 × 1,000) | {tk_ours:.2f} | {tk_theirs:.2f} | {tk_theirs / tk_ours:.2f}× | {k_ours:.6f} "
          f"| {abs(k_ours - k_theirs) / abs(k_theirs):.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
