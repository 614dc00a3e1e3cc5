"""collapse: which objectives drop modes of the ring and the grid, and how packing helps.

The benchmark of Metz et al. 2017 (Unrolled GAN), Srivastava et al. 2017
(VEEGAN, Table 1) and Lin et al. 2018 (PacGAN, Table 1): a mixture of 8
Gaussians on a ring and 25 on a grid; 2,500 samples per trained generator;
a sample is high quality within 3 standard deviations of its nearest mode, a
mode is captured when it is the nearest mode of a high-quality sample, and
the reverse KL compares the histogram of high-quality samples over the modes
with the uniform one (``ganforge.metrics.modes``). Every objective is trained
on several seeds, with no regularizer, so that what collapses is the
objective's doing; PacGAN's packing (D judges m samples at once, the core's
``model.pack``) is the discriminator option that PacGAN showed fixes it.

Protocol (ours, sized for 2 minutes on 2 cores; PacGAN trained 400 epochs of
100,000 points): ganforge's MLPs with 3 hidden layers of 64 units, a 2-D
latent, D judges 128 items per batch (single samples, or for PacGAN-m packs
of m samples, as in the PacGAN paper), Adam 2e-3 with
betas (0, 0.99) (as the toy presets; measured here: twice the high-quality
share of (0.5, 0.999) at 1e-3 on the grid), the learning rate constant for half the steps and then
decayed linearly to 0. The seeds of one setting train together as one
stacked network (``lab.stacked``), the two datasets in two processes.
"""
from __future__ import annotations

import multiprocessing as mp

import torch

from ..data.toy import grid, ring
from ..losses import LOSSES
from ..metrics.modes import mode_metrics
from .base import Lab, Outcome
from .stacked import discriminate, stacked_pair

NAME = "collapse"
SUMMARY = "objectives x {ring, grid} x seeds: modes captured, high-quality %, reverse KL; PacGAN packing"
CLAIM = "Plain GAN objectives drop modes of multi-modal data; PacGAN's packing recovers them (VEEGAN, PacGAN tables)."
PAGE = """Each row trains one objective on several seeds and counts what the generators cover: modes captured (of 8
on the ring, of 25 on the grid), the share of samples that land within 3 standard deviations of a mode,
and the reverse KL of the captured-mode histogram from uniform. The published rows (marked) come from
VEEGAN's and PacGAN's tables; their networks were larger and trained about a hundred times longer, so
compare the pattern, not the digits. The sample-evolution figures show seed 0 of each setting over
training: collapse looks like a generator hopping between a few modes, coverage like every mode filling
in at once. In this budget the packed discriminators learn more slowly: packing buys modes on the grid
but its samples are less often within 3 standard deviations of a mode, a trade the published runs, a
hundred times longer, do not show. The verdict asks only about modes: that some plain objective drops
modes, and that packing captures at least as many on both datasets and more on one."""

VARIANTS = [("GAN (non-saturating)", "nonsaturating", 1), ("GAN (minimax)", "minimax", 1),
            ("LSGAN", "least-squares", 1),
            ("PacGAN2", "nonsaturating", 2), ("PacGAN4", "nonsaturating", 4)]
DATA = {"ring": ring, "grid": grid}
HIDDEN, LAYERS, BATCH, LR, BETAS, EVAL_N = 64, 3, 128, 2e-3, (0.0, 0.99), 2500

PUBLISHED = [  # ../shared/REFERENCE.md: VEEGAN Table 1 and PacGAN Table 1 (published, not ours)
    ("GAN (VEEGAN Table 1)", "1", "99.3", "–", "3.3", "0.5", "–"),
    ("Unrolled GAN (VEEGAN)", "7.6", "35.6", "–", "23.6", "16", "–"),
    ("VEEGAN (VEEGAN)", "8", "52.9", "–", "24.6", "40", "–"),
    ("GAN (PacGAN Table 1)", "6.3±0.5", "98.2±0.2", "0.45±0.09", "17.3±0.8", "94.8±0.7", "0.70±0.07"),
    ("PacGAN2 (PacGAN)", "7.9±0.1", "95.6±2.0", "0.07±0.03", "23.8±0.7", "91.3±0.8", "0.13±0.04"),
    ("PacGAN4 (PacGAN)", "7.8±0.1", "95.9±1.4", "0.07±0.02", "24.8±0.2", "93.6±0.6", "0.04±0.01"),
]


def train_setting(data_name: str, loss: str, pack: int, seeds: list[int], steps: int, snaps: list[int]):
    """Train one stacked setting; returns (final samples (S, EVAL_N, 2), [(step, samples of seed 0)])."""
    density = DATA[data_name]()
    objective = LOSSES[loss]
    S = len(seeds)
    G, D = stacked_pair(seeds, 2, 2, HIDDEN, LAYERS, pack)
    opt_g = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    decay = lambda s: min(1.0, 2 * (1 - s / steps))      # noqa: E731
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (opt_g, opt_d)]
    gen = torch.Generator().manual_seed(seeds[0] * 7919 + pack * 31 + len(loss))
    probe = torch.randn(1, 500, 2, generator=torch.Generator().manual_seed(1))
    frames, want = [], set(snaps)
    n = BATCH * pack                     # D judges BATCH items: single samples, or packs of ``pack``

    def per_copy(fn, *outs):
        return sum(fn(*(o[s] if o is not None else None for o in outs)) for s in range(S))

    for step in range(steps + 1):
        if step in want:
            with torch.no_grad():
                frames.append((step, G(probe.expand(S, -1, -1))[0].clone()))
        if step == steps:
            break
        real = density.sample(S * n, gen).view(S, n, 2)
        with torch.no_grad():
            fake = G(torch.randn(S, n, 2, generator=gen))
        out = discriminate(D, torch.cat([real, fake], 1), pack)
        loss_d = per_copy(objective.d, out[:, :BATCH], out[:, BATCH:])
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        out_fake = discriminate(D, G(torch.randn(S, n, 2, generator=gen)), pack)
        out_real = discriminate(D, density.sample(S * n, gen).view(S, n, 2), pack) if objective.g_needs_real else None
        loss_g = per_copy(objective.g, out_fake, out_real)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        for sc in scheds:
            sc.step()
    with torch.no_grad():
        final = G(torch.randn(S, EVAL_N, 2, generator=torch.Generator().manual_seed(2)))
    return final, frames


def _dataset_job(args) -> dict:
    data_name, seeds, steps, snaps = args
    torch.set_num_threads(1)
    density = DATA[data_name]()
    out = {}
    for label, loss, pack in VARIANTS:
        final, frames = train_setting(data_name, loss, pack, seeds, steps, snaps)
        scores = [mode_metrics(final[s], density.means, density.std) for s in range(len(seeds))]
        out[label] = {"scores": scores, "frames": frames}
    return out


def summarize(scores: list[dict]) -> dict:
    def ms(key):
        v = torch.tensor([float(s[key]) for s in scores], dtype=torch.float64)
        return float(v.mean()), float(v.std(unbiased=True)) if len(v) > 1 else 0.0
    return {k: ms(k) for k in ("modes", "hq", "kl")}


def table(result: dict) -> str:
    """The Markdown table of ours beside the published rows."""
    rows = ["| setting | ring modes /8 | ring HQ % | ring KL | grid modes /25 | grid HQ % | grid KL |",
            "|---|---|---|---|---|---|---|"]
    n = result["numbers"]
    for label in n["settings"]:
        cells = []
        for data_name in DATA:
            s = n["table"][data_name][label]
            cells += [f"{s['modes'][0]:.1f}±{s['modes'][1]:.1f}", f"{s['hq'][0]:.1f}±{s['hq'][1]:.1f}",
                      f"{s['kl'][0]:.2f}±{s['kl'][1]:.2f}"]
        rows.append(f"| {label} (ours, {n['seeds']} seeds) | " + " | ".join(cells) + " |")
    for row in PUBLISHED:
        rows.append(f"| {row[0]} — published | " + " | ".join(row[1:]) + " |")
    return "\n".join(rows)


def run(lab: Lab) -> Outcome:
    steps = lab.pick(4000, 80)
    seeds = [lab.seed * 100 + i for i in range(lab.pick(3, 2))]
    snaps = sorted(set([0] + [round(steps * f) for f in (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)]))
    jobs = [(name, seeds, steps, snaps) for name in DATA]
    if lab.threads > 1:
        with mp.get_context("spawn").Pool(2) as pool:
            results = dict(zip(DATA, pool.map(_dataset_job, jobs)))
    else:
        results = {name: _dataset_job(job) for name, job in zip(DATA, jobs)}
    summary = {d: {label: summarize(r["scores"]) for label, r in results[d].items()} for d in DATA}
    per_seed = {d: {label: r["scores"] for label, r in results[d].items()} for d in DATA}
    for d in DATA:
        for label, s in summary[d].items():
            lab.say(f"{d:4s} {label:22s} modes {s['modes'][0]:5.1f}±{s['modes'][1]:.1f}  "
                    f"HQ {s['hq'][0]:5.1f}%  KL {s['kl'][0]:.2f}")
    evolution_figures(lab, results, snaps)
    base, pac = "GAN (non-saturating)", [v[0] for v in VARIANTS if v[2] > 1]
    gains = {d: max(summary[d][p]["modes"][0] for p in pac) - summary[d][base]["modes"][0] for d in DATA}
    collapsed = {d: min(s["modes"][0] for s in summary[d].values()) < DATA[d]().means.shape[0] for d in DATA}
    held = any(collapsed.values()) and all(g >= 0 for g in gains.values()) and any(g > 0 for g in gains.values())
    numbers = {"settings": [v[0] for v in VARIANTS], "seeds": len(seeds), "steps": steps, "batch": BATCH,
               "hidden": HIDDEN, "lr": LR, "betas": list(BETAS), "eval_samples": EVAL_N, "table": summary, "per_seed": per_seed,
               "packing_gain_in_modes": gains}
    fewest = {d: min(summary[d].items(), key=lambda kv: kv[1]["modes"][0]) for d in DATA}
    head = "; ".join(f"{d}: GAN {summary[d][base]['modes'][0]:.1f}/{DATA[d]().means.shape[0]} modes, best packing "
                     f"{summary[d][base]['modes'][0] + gains[d]:.1f}, fewest {fewest[d][0]} {fewest[d][1]['modes'][0]:.1f}"
                     for d in DATA)
    return Outcome(head, held, numbers)


def _panel(a, means: torch.Tensor, x: torch.Tensor, lim: float, size: float) -> None:
    """One scatter of generated points over the modes (grey crosses), without ticks."""
    a.scatter(means[:, 0], means[:, 1], s=14, c="0.7", marker="x", linewidths=0.8)
    a.scatter(x[:, 0], x[:, 1], s=size, c="tab:orange", linewidths=0)
    a.set_xlim(-lim, lim)
    a.set_ylim(-lim, lim)
    a.set_xticks([])
    a.set_yticks([])
    a.set_aspect("equal")


def evolution_figures(lab: Lab, results: dict, snaps: list[int]) -> None:
    """Per dataset: a grid (settings x steps) of seed 0's samples, and a GIF of the settings side by side."""
    from ..viz.plots import close, figure, render
    for d, by_label in results.items():
        means = DATA[d]().means
        lim = float(means.abs().max()) * 1.35
        labels = list(by_label)
        fig, ax = figure(len(snaps), len(labels), size=(1.55, 1.55))
        for r, label in enumerate(labels):
            for c, (step, x) in enumerate(by_label[label]["frames"]):
                _panel(ax[r, c], means, x, lim, 1.2)
                if r == 0:
                    ax[r, c].set_title(f"step {step}", fontsize=7)
                if c == 0:
                    ax[r, c].set_ylabel(label, fontsize=6.5)
        fig.tight_layout(pad=0.3)
        lab.save_figure(fig, f"evolution-{d}")
        frames = []
        for i in range(len(snaps)):
            f, a2 = figure(len(labels), 1, size=(1.9, 2.0))
            for c, label in enumerate(labels):
                _panel(a2[0, c], means, by_label[label]["frames"][i][1], lim, 1.5)
                a2[0, c].set_title(label, fontsize=6.5)
            f.suptitle(f"{d}, seed 0, step {snaps[i]}", fontsize=8)
            f.tight_layout(pad=0.3)
            frames.append(render(f))
            close(f)
        lab.save_animation(frames, f"evolution-{d}", fps=2)
