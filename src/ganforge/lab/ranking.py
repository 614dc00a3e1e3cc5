"""ranking: does D's score say which generated samples are good?

The seeds claim that at the end of training D's output ranks the samples of
a batch poorly: D is trained to separate two distributions, not to grade
single samples. Measured here on a trained image run (a short run of
mnist-dcgan, or ``--run RUN``): 1,000 samples of its trained generator (the
one D was trained against), each scored by D (its raw output) and by three
independent measures of quality: the confidence of the evaluation issue's
digit classifier (max softmax), the distance to the nearest real training
image in the classifier's 128-d feature space, and the same in pixels. The
Spearman rank correlation between D's score and each measure is reported
with its standard error under independence, 1/sqrt(n − 1); a good ranking
would correlate positively with confidence and negatively with distance.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .base import Lab, Outcome
from .images import classifier, open_run, run_label, short_run

NAME = "ranking"
SUMMARY = "a batch sorted by D's score, and D's rank correlation with independent measures of quality"
CLAIM = "Within a batch, D's score says little about the quality of individual samples."
PAGE = """The grid shows 64 generated digits sorted by D's score, highest at the top left. If D graded samples, the
top rows would hold the cleanest digits and the bottom rows the failures; the second grid sorts the same
64 by the digit classifier's confidence for comparison. The rank correlations over 1,000 samples say how
much D's order agrees with three independent measures of quality. Values near 0 support the seeds' claim;
the sign and size we measure are in the table below."""

THREADS = 2
N = 1000
CLAIM_LIMIT = 0.3      # |rho| below this for every measure: D's score "says little"


def ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 (ties broken by position: the measures here are continuous)."""
    r = torch.empty_like(v, dtype=torch.float64)
    r[v.argsort()] = torch.arange(len(v), dtype=torch.float64)
    return r


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = ranks(a.double()), ranks(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


@torch.no_grad()
def measures(x: torch.Tensor, real: torch.Tensor) -> dict:
    net = classifier()
    fx, lx = (torch.cat(t) for t in zip(*[net(c) for c in x.split(256)]))
    fr = torch.cat([net(c)[0] for c in real.split(256)])
    return {"classifier confidence": lx.softmax(1).max(1).values.double(),
            "feature distance to nearest real": torch.cdist(fx.double(), fr.double()).min(1).values,
            "pixel distance to nearest real": torch.cdist(x.flatten(1).double(), real.flatten(1).double()).min(1).values}


def run(lab: Lab, run: Optional[Path] = None) -> Outcome:
    from ..data import load_dataset
    from ..viz.grid import grid
    from ..viz.plots import figure
    if run is None:
        steps = lab.pick(800, 20)
        lab.say(f"training a short run of mnist-dcgan ({steps} steps) into {lab.final / 'run'}")
        run = short_run(lab.out, steps, samples_every=steps, seed=lab.seed).path
    r = open_run(run)
    x = r.sample(lab.pick(N, 200), seed=lab.seed + 1, ema=False)
    with torch.no_grad():
        score = torch.cat([r.D(c).float() for c in x.split(256)]).double()
    real = load_dataset(r.config.data).x
    m = measures(x, real)
    n = len(x)
    rho = {k: spearman(score, v) for k, v in m.items()}
    se = 1 / (n - 1) ** 0.5
    for k, v in rho.items():
        lab.say(f"Spearman rho(D score, {k}) = {v:+.3f} (±{se:.3f} under independence)")

    batch = slice(0, 64)
    order = score[batch].argsort(descending=True)
    by_conf = m["classifier confidence"][batch].argsort(descending=True)
    fig, ax = figure(2, 1, size=(3.6, 3.9))
    for a, idx, title in ((ax[0, 0], order, "sorted by D's score (highest top-left)"),
                          (ax[0, 1], by_conf, "sorted by classifier confidence")):
        a.imshow(grid(x[batch][idx], nrow=8), cmap="gray")
        a.set_title(title, fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
        a.grid(False)
    fig.tight_layout()
    lab.save_figure(fig, "sorted-batch")
    fig, ax = figure(3, 1, size=(3.2, 3.0))
    for a, (k, v) in zip(ax[0], m.items()):
        a.scatter(score, v, s=3, alpha=0.5, linewidths=0)
        a.set_xlabel("D's score (logit)", fontsize=8)
        a.set_ylabel(k, fontsize=8)
        a.set_title(f"Spearman ρ = {rho[k]:+.2f}", fontsize=8)
    fig.tight_layout()
    lab.save_figure(fig, "scatter")
    held = all(abs(v) < CLAIM_LIMIT for v in rho.values())
    numbers = {"run": run_label(lab, run), "n": n, "spearman": rho, "standard_error_if_independent": se, "claim_limit": CLAIM_LIMIT,
               "d_score_mean": float(score.mean()), "d_score_sd": float(score.std())}
    head = "; ".join(f"ρ(D, {k.split(' to ')[0]}) {v:+.2f}" for k, v in rho.items())
    return Outcome(f"{head} (n = {n}, ±{se:.2f} if independent)", held, numbers)
