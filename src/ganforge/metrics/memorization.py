"""Memorisation: the share of generated samples closer to a training image than the training images are to each other.

The criterion is the authenticity of Alaa et al. 2022 ("How Faithful is your
Synthetic Data? Sample-level Metrics for Evaluating and Auditing Generative
Models", ICML 2022): a sample g whose nearest training image is r_j is
flagged (not authentic) when d(g, r_j) < d(r_j, the training image nearest to
r_j), Euclidean distance in the evaluator's features (points are their own
features). ``memorized`` is the flagged share, ``authenticity`` one minus it.

The number alone is hard to read: a fresh sample of the data distribution is
flagged too, whenever it and its nearest training image are each other's
nearest neighbours, which happens at a rate that depends on the data and the
feature space (42% of held-out MNIST digits, in pixels or in ganforge's digit
features). So the training features are split once, with a fixed seed, into
a reference part and a held-out part (a fifth, at most 2,000); the held-out
real images are measured against the reference part (``memorized_baseline``)
and so are the samples. Given the reference part, both shares are means of
independent Bernoulli draws, so a one-sided two-proportion z-test (pooled
variance) asks whether the samples are flagged more often than real images
the generator never saw; copying is reported when p < 0.01. A generator that
copies training images uniformly is flagged at about r + (1 - r) * baseline,
r the reference share (0.8 on 5,000 digits): a copy of a held-out image
counts as a fresh sample. Lower is better, yet the share is never an
``eval.best`` choice: a generator of noise copies nothing.

Why not the C_T of Meehan et al. 2020 ("A Non-Parametric Test to Detect
Data-Copying in Generative Models", AISTATS 2020)? C_T also compares
generated samples with held-out real ones (its three-sample idea is the
calibration above), but as one aggregate statistic: Mann-Whitney z-scores of
generated-to-training against held-out-to-training nearest-neighbour
distances, averaged over k-means cells of the training set. It depends on
the number of cells and a minimum of samples per cell, copying in some cells
is averaged with underfitting in others, and it names no sample. Alaa's
criterion judges each sample on its own, with no parameter, so the closest
pairs can be shown and the share read as "how many samples".

Limits: a training image with an exact duplicate has a nearest-neighbour
distance of 0, so nothing is flagged against it; the criterion sees only what
the feature space sees (a mirrored copy may be far away in it).
Distances are computed in float64, in blocks of rows (torch.cdist), so memory
stays bounded.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch

from ..errors import UserError
from ..rng import Stream
from .finite import require_finite

BLOCK, CELLS = 2048, 1 << 24    # rows of points per block; at most CELLS distances (128 MiB) at once
PAIRS = 8                      # the closest pairs kept for the picture
ALPHA = 0.01                   # the one-sided test's level
HOLDOUT_SHARE, HOLDOUT_MOST, REAL_LEAST = 0.2, 2000, 10
SPLIT = "memorization split"   # the rng purpose of the fixed reference/held-out split (seed 0)
TEST = ("authenticity criterion of Alaa et al. 2022; one-sided two-proportion z-test (pooled) of the samples' "
        "flagged share against that of held-out training images")
PICTURE = "memorization.png"


def _flat(x: torch.Tensor, what: str) -> torch.Tensor:
    require_finite(x, f"the {what} features of the memorization metric")
    return x.reshape(x.shape[0], -1).to(torch.float64)


def nearest(points: torch.Tensor, ref: torch.Tensor, skip_self: bool = False) -> tuple:
    """For each row of ``points``, (distance, index) of its nearest row of ``ref``; ``skip_self``: points is
    ref, and a row is not its own neighbour (an exact duplicate still is)."""
    dist, idx = [], []
    block = max(1, min(BLOCK, CELLS // max(1, ref.shape[0])))
    for i in range(0, points.shape[0], block):
        d = torch.cdist(points[i:i + block], ref)
        if skip_self:
            rows = torch.arange(d.shape[0])
            d[rows, rows + i] = math.inf
        m = d.min(1)
        dist.append(m.values)
        idx.append(m.indices)
    return torch.cat(dist), torch.cat(idx)


def flags(points: torch.Tensor, ref: torch.Tensor, radius: Optional[torch.Tensor] = None) -> dict:
    """Alaa et al.'s criterion for each row of ``points`` against the training rows ``ref``: ``nearest`` (index
    into ref), ``distance`` to it, ``radius`` (that training row's distance to its nearest other) and
    ``flagged`` (distance < radius). ``radius``: ref's own nearest-other distances, when already known."""
    points, ref = _flat(points, "generated"), _flat(ref, "training")
    if radius is None:
        radius = nearest(ref, ref, skip_self=True)[0]
    d, j = nearest(points, ref)
    return {"nearest": j, "distance": d, "radius": radius[j], "flagged": d < radius[j]}


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple:
    """One-sided two-proportion z-test with pooled variance of H1: share 1 > share 2; (z, p)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:                        # both shares 0 or both 1: no difference to see
        return 0.0, 0.5
    z = (x1 / n1 - x2 / n2) / se
    return z, 0.5 * math.erfc(z / math.sqrt(2))


def split(n: int, holdout: Optional[int] = None) -> tuple:
    """The fixed split of ``n`` training rows: (reference indices, held-out indices), each sorted."""
    if n < REAL_LEAST:
        raise UserError(f"the memorization metric needs at least {REAL_LEAST} training samples, got {n}")
    k = holdout if holdout is not None else min(int(n * HOLDOUT_SHARE), HOLDOUT_MOST)
    if not 1 <= k < n - 1:
        raise UserError(f"the memorization metric's held-out part must leave 2 reference samples: {k} of {n}")
    perm = torch.randperm(n, generator=Stream(0, SPLIT).next())
    return perm[k:].sort().values, perm[:k].sort().values


def memorization(real: torch.Tensor, fake: torch.Tensor, holdout: Optional[int] = None, pairs: int = PAIRS,
                 alpha: float = ALPHA) -> dict:
    """The eval.json entry: shares flagged, the test, the verdict and the ``pairs`` closest (sample, training
    image) pairs (``train`` indexes the rows of ``real``). ``holdout``: the held-out rows (default: a fifth, at
    most 2,000)."""
    real, fake = _flat(real, "training"), _flat(fake, "generated")
    if fake.shape[0] == 0:
        raise UserError("the memorization metric needs at least one generated sample")
    ref_i, held_i = split(real.shape[0], holdout)
    ref = real[ref_i]
    radius = nearest(ref, ref, skip_self=True)[0]
    got = flags(fake, ref, radius)
    base = flags(real[held_i], ref, radius)
    x1, n1, x2, n2 = int(got["flagged"].sum()), fake.shape[0], int(base["flagged"].sum()), len(held_i)
    z, p = two_proportion_z(x1, n1, x2, n2)
    order = got["distance"].argsort()[:pairs].tolist()
    closest = [{"sample": i, "train": int(ref_i[got["nearest"][i]]), "distance": float(got["distance"][i]),
                "radius": float(got["radius"][i]), "flagged": bool(got["flagged"][i])} for i in order]
    m, b = x1 / n1, x2 / n2
    out = {"memorized": m, "memorized_baseline": b, "authenticity": 1 - m, "flagged": x1, "n": n1,
           "baseline_flagged": x2, "baseline_n": n2, "reference_n": len(ref_i), "z": z, "p": p, "alpha": alpha,
           "copying": bool(p < alpha), "test": TEST, "distance": "euclidean",
           "split": f"fixed: a permutation drawn from rng.Stream(0, {SPLIT!r})",
           "pairs": closest}
    out["verdict"] = verdict(out)
    return out


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _head(e: dict) -> str:
    return (f"{e['flagged']} of {e['n']} samples ({_pct(e['memorized'])}) are closer to a training image than "
            f"training images are to each other; held-out real images: {_pct(e['memorized_baseline'])}")


def _test(e: dict) -> str:
    p = f"p = {e['p']:.2g}" if e["p"] > 0 else "p < 1e-300"
    return f"z = {e['z']:.2f}, {p}, one-sided two-proportion z-test at {e['alpha']:g}"


def verdict(e: dict) -> str:
    """The plain line: how many samples are flagged, how many held-out real images, and what the test says."""
    if e["copying"]:
        return f"{_head(e)}. Copying: the samples are flagged more often than held-out real images ({_test(e)})"
    return f"{_head(e)}. No evidence of copying ({_test(e)})"


def rows(e: dict) -> list:
    out = [("memorized", f"{e['memorized']:.4f} (held-out real images {e['memorized_baseline']:.4f}; "
                         f"authenticity {e['authenticity']:.4f}, Alaa et al. 2022)"),
           ("", _head(e)), ("copying", f"{'YES' if e['copying'] else 'no evidence'} ({_test(e)})")]
    if e.get("note"):
        out.append(("", e["note"]))
    if e.get("picture"):
        out.append(("", f"closest pairs: {e['picture']}"))
    return out


def compute(inp) -> dict:
    """The registry's compute (metrics.registry.Inputs): the real features are the training set's."""
    real = getattr(inp.evaluator, "real", None)
    if real is not None and (real.key or {}).get("split") == "holdout":
        raise UserError("the memorization metric compares samples with the images the run trained on; "
                        "drop --real-split holdout")
    out = memorization(inp.real.features, inp.fake.features)
    if real is not None and real.density is not None:
        out["note"] = ("toy data: training draws fresh points from the density, so these points are a reference "
                       "sample the generator never saw as such")
    return out


def picture_path(out: Path) -> Path:
    """Where the closest pairs are drawn: beside the eval file ``out`` (RUN/memorization.png for RUN/eval.json,
    else NAME-memorization.png for NAME.json)."""
    out = Path(out)
    return out.with_name(PICTURE if out.name == "eval.json" else f"{out.stem}-{PICTURE}")


def draw_pairs(entry: dict, fake, real_x: torch.Tensor, path: Path) -> Optional[Path]:
    """The closest pairs as one PNG: generated samples on the top row, their nearest training images below
    (images in [-1, 1]); ``fake`` is a tensor or fn(start, count). None for points (nothing to draw)."""
    from ..viz.grid import as_rgb, grid, save_png
    pairs = entry.get("pairs") or []
    if real_x.dim() != 4 or not pairs:
        return None
    top = [(fake[p["sample"]:p["sample"] + 1] if isinstance(fake, torch.Tensor) else fake(p["sample"], 1)).detach().cpu()
           for p in pairs]
    bottom = [real_x[p["train"]:p["train"] + 1].detach().cpu() for p in pairs]
    c = max(x.shape[1] for x in top + bottom)
    x = torch.cat([as_rgb(t.float(), c) for t in top + bottom])
    scale = max(1, 64 // x.shape[-1])
    if scale > 1:
        x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_png(grid(x, nrow=len(pairs)), path)
    return Path(path)
