"""Speed and accuracy of ganforge's FID, KID and CMMD against reference code on the same features, and extractor throughput.

    python benchmarks/metrics.py                 # 10,000 vs 10,000 features of 2,048 dimensions
    python benchmarks/metrics.py --n 2000 --no-extractors

Both sides start from the same precomputed float32 features (ReLU'd
Gaussians with different scales, standing in for Inception pool3 features).
FID: ganforge's FeatureStats + frechet_distance against torchmetrics'
statistics (sums and outer products in float64, as its
FrechetInceptionDistance keeps them) + its _compute_fid. KID: the same 100
subsets of 1,000, ganforge's ``kid`` against torchmetrics' poly_mmd on the
float32 features it keeps by default, and in float64 (its ``set_dtype``),
the only way to get an error as small as ganforge's from it. CMMD (no torchmetrics version): ganforge's
``cmmd`` (blocked, float64 sums) against the authors' algorithm (google-research/cmmd ``distance.mmd``:
three dense kernel matrices in float32 and their means) written out in torch, on the features
L2-normalised as CLIP embeddings are. Accuracy: each result's relative error
against a float64 reference (FID: scipy's sqrtm formula on float64
statistics; KID: float64 per-subset MMD). Each time is the best of
``--repeats`` calls, the two libraries alternating. Then images/s of each
feature extractor on this machine (Inception with random weights of the real
layout: speed does not depend on the values). Writes
benchmarks/results/metrics.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "metrics.json"


def timed(fns: dict, repeats: int) -> dict:
    """{name: (result, best seconds)}, calling the functions in turn ``repeats`` times."""
    best = {k: float("inf") for k in fns}
    out = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            out[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return {k: (out[k], best[k]) for k in fns}


def fid_reference(x: torch.Tensor, y: torch.Tensor) -> float:
    """FID in float64 with scipy's sqrtm (the pytorch-fid formula)."""
    import numpy as np
    from scipy import linalg
    mx, my = x.double().mean(0).numpy(), y.double().mean(0).numpy()
    cx, cy = np.cov(x.double().numpy(), rowvar=False), np.cov(y.double().numpy(), rowvar=False)
    covmean = linalg.sqrtm(cx @ cy)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mx - my) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * np.trace(covmean))


def cmmd_dense(x: torch.Tensor, y: torch.Tensor, sigma: float = 10.0) -> float:
    """The CMMD authors' computation (google-research/cmmd distance.py), in torch: dense kernel matrices, means."""
    gamma = 1.0 / (2 * sigma ** 2)
    nx, ny = x.square().sum(1), y.square().sum(1)
    k = lambda a, b, na, nb: torch.exp(-gamma * (-2 * a @ b.T + na[:, None] + nb[None])).mean()   # noqa: E731
    return float(1000 * (k(x, x, nx, nx) + k(y, y, ny, ny) - 2 * k(x, y, nx, ny)))


def extractor_speed(seconds: float = 8.0) -> list:
    from ganforge.metrics.clip import CLIPImageTower, Geometry
    from ganforge.metrics.dinov2 import DINOv2, Shape
    from ganforge.metrics.features import get_extractor
    from ganforge.metrics.inception import InceptionV3
    rows = []
    nets = [("mnist", lambda: get_extractor("mnist"), (1, 28, 28), 256),
            ("efficientnet-lite0", lambda: get_extractor("efficientnet-lite0"), (3, 64, 64), 32),
            ("inception (random weights, legacy-tf)", lambda: InceptionV3("legacy-tf"), (3, 64, 64), 32),
            # the ViTs with random weights in the real files' geometry (speed does not depend on the values)
            ("dinov2 ViT-S/14", lambda: DINOv2(Shape(384, 12, 0, 37)), (3, 64, 64), 16),
            ("dinov2 ViT-L/14 (FD_DINOv2's)", lambda: DINOv2(Shape(1024, 24, 0, 37)), (3, 64, 64), 8),
            ("clip ViT-B/32", lambda: CLIPImageTower(Geometry(768, 12, 12, 32, 224, 3072, 512)), (3, 64, 64), 16),
            ("clip ViT-L/14@336 (CMMD's)", lambda: CLIPImageTower(Geometry(1024, 24, 16, 14, 336, 4096, 768)),
             (3, 64, 64), 4)]
    for name, build, shape, batch in nets:
        try:
            net = build().eval()
        except Exception as e:  # a missing optional package: say so and go on
            rows.append({"extractor": name, "error": str(e).splitlines()[0]})
            continue
        x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
        with torch.no_grad():
            net(x)                                           # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                net(x)
                n += batch
        rows.append({"extractor": name, "input": "x".join(map(str, shape)), "batch": batch,
                     "images_per_s": round(n / (time.perf_counter() - t0), 1)})
    return rows


def main(argv=None) -> int:
    from ganforge.metrics.reference import install_torch_fidelity_shim
    install_torch_fidelity_shim()
    from torchmetrics.image.fid import _compute_fid
    from torchmetrics.image.kid import poly_mmd

    from ganforge.metrics.cmmd import cmmd
    from ganforge.metrics.fid import FeatureStats, frechet_distance
    from ganforge.metrics.kid import kid, kid_subsets, mmd2_unbiased
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-extractors", action="store_true")
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

    size = min(1000, a.n)
    idx = kid_subsets(a.n, a.n, 100, size, 0)
    fid_t = timed({"ours": ours_fid, "theirs": their_fid}, a.repeats)
    kid_t = timed({"ours": lambda: kid(x, y, index=idx)["mean"],
                   "theirs": lambda: float(torch.stack([poly_mmd(x[i], y[j]) for i, j in idx]).double().mean())},
                  a.repeats)
    xd, yd = x.double(), y.double()
    theirs64 = timed({"theirs": lambda: float(torch.stack([poly_mmd(xd[i], yd[j]) for i, j in idx]).mean())},
                     a.repeats)                                          # torchmetrics after set_dtype(float64)
    kid64_t = {"ours": kid_t["ours"], "theirs": theirs64["theirs"]}
    ux, uy = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
    cmmd_t = timed({"ours": lambda: cmmd(ux, uy)["biased"], "theirs": lambda: cmmd_dense(ux, uy)}, a.repeats)
    cmmd_ref = cmmd_dense(ux.double(), uy.double())
    fid_ref = fid_reference(x, y)
    kid_ref = sum(mmd2_unbiased(xd[i], yd[j]) for i, j in idx) / len(idx)
    rows = []
    for name, t, ref in (("FID", fid_t, fid_ref), (f"KID (100 x {size:,})", kid_t, kid_ref),
                         (f"KID (100 x {size:,}), torchmetrics in float64", kid64_t, kid_ref),
                         ("CMMD (as the authors' code: with diagonals); reference: that code in torch", cmmd_t, cmmd_ref)):
        (vo, so), (vt, st) = t["ours"], t["theirs"]
        rows.append({"metric": name, "ganforge_s": round(so, 3), "torchmetrics_s": round(st, 3),
                     "speedup": round(st / so, 2), "value": vo, "reference": ref,
                     "ganforge_rel_error": abs(vo - ref) / abs(ref), "torchmetrics_rel_error": abs(vt - ref) / abs(ref)})
    print(f"machine: {machine()}, threads {torch.get_num_threads()}; {a.n:,} vs {a.n:,} float32 features of {a.dim:,} "
          f"dims; best of {a.repeats}\n")
    print("| metric | ganforge s | reference s | speed-up | ganforge rel. error | reference rel. error |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['metric']} | {r['ganforge_s']:.2f} | {r['torchmetrics_s']:.2f} | {r['speedup']:.2f}x | "
              f"{r['ganforge_rel_error']:.1e} | {r['torchmetrics_rel_error']:.1e} |")
    print("\nrelative error: against a float64 reference (FID: scipy sqrtm on float64 statistics; "
          "KID: float64 MMD per subset; CMMD: the dense computation in float64); reference: torchmetrics for FID "
          "and KID")
    speed = [] if a.no_extractors else extractor_speed()
    if speed:
        print("\n| extractor | input | batch | images/s |\n|---|---|---|---|")
        for r in speed:
            print(f"| {r['extractor']} | {r.get('input', '-')} | {r.get('batch', '-')} | "
                  f"{r.get('images_per_s', r.get('error'))} |")
        print("\n(efficientnet-lite0, dinov2 and clip ViT-B/32 resize to 224, clip ViT-L/14@336 to 336 and inception "
              "to 299 first: their speed is that of images of that size)")
    RESULTS.parent.mkdir(exist_ok=True)
    atomic.write_text(RESULTS, json.dumps({"machine": machine(), "threads": torch.get_num_threads(), "n": a.n, "dim": a.dim,
                                   "repeats": a.repeats, "metrics": rows, "extractors": speed}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
