"""equilibrium: when p_g = p_data the best D can do is say 1/2 everywhere.

Goodfellow et al. 2014, Section 4: at the global optimum p_g = p_data and
D*(x) = 1/2. Here ganforge's MLP generator and discriminator play the
non-saturating game on the 1-D three-Gaussian mixture, and every few steps
D(x) is recorded on a grid, with mean |D(x) − 1/2| under p_data (and under
p_g) and the JSD between p_data and a kernel density estimate of p_g (from
20,000 samples; exact p_data). The learning rates decay to zero over the
second half so that the game settles rather than circles. At the end a fresh
D is trained to convergence against the frozen final G: if p_g = p_data,
even the best D stays at 1/2.
"""
from __future__ import annotations

import math

import torch

from ..nets.mlp import MLPDiscriminator, MLPGenerator
from . import optimal_d, pair
from .base import Lab, Outcome
from ..games.plain import play

NAME = "equilibrium"
SUMMARY = "a generator trained to match a 1-D mixture leaves D flat at 1/2 over the support"
CLAIM = "At the equilibrium p_g = p_data the discriminator is D(x) = 1/2 everywhere."
PAGE = """At the start D separates the two distributions easily and its curve swings between 0 and 1. As the
generator's density moves onto the data's, D loses its footing: its curve flattens towards 1/2 over the
support, the point where it can no longer tell real from generated. The mean distance from 1/2 measured
under p_data is the number to watch; the JSD from a density estimate of p_g shows the generator matching
the data at the same time. What remains of the mismatch sits in the gaps between the modes, where a
generator with a continuous map from z must still put a little mass. The dashed curve is |D* − 1/2| for the optimal D of
the generator at that moment (from a density estimate, so it carries the estimate's noise): the trained D
is flatter than D* would be, a reminder that a flat D can also mean a D that has stopped learning. Two
checks rule that out: the JSD beside it, and a fresh discriminator trained to convergence against the final
generator (as in `optimal-d`), which finds nothing to separate either."""

GOAL = 0.05          # mean |D − 1/2| under p_data at the end
JSD_GOAL = 0.02      # ... while the generator matches the data (the floor of the estimate is ~0.002)
THREADS = 1          # nets this small run faster on one thread
Z_DIM = 4


def kde_log_density(samples: torch.Tensor, x: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Log of a Gaussian kernel density estimate at x (1-D), float64."""
    s = samples.double().reshape(1, -1)
    d = (x.double().reshape(-1, 1) - s) / bandwidth
    return torch.logsumexp(-0.5 * d * d, 1) - math.log(s.shape[1] * bandwidth * math.sqrt(2 * math.pi))


KDE_N, BANDWIDTH = 5000, 0.04


def snapshot(G, D, x: torch.Tensor, gen: torch.Generator) -> dict:
    """D on the grid; p_g estimated; mean |D − 1/2| and |D* − 1/2| under p_data and p_g; JSD."""
    with torch.no_grad():
        fake = G(torch.randn(KDE_N, Z_DIM, generator=gen)).reshape(-1)
        d = torch.sigmoid(D(x.float().reshape(-1, 1)).double())
    lp = pair.data().log_prob(x.reshape(-1, 1))
    lq = kde_log_density(fake, x, BANDWIDTH)
    p, q = lp.exp(), lq.exp()
    dev, dev_star = (d - 0.5).abs(), (pair.log_d_star(lp, lq).exp() - 0.5).abs()
    under = lambda f, w: pair.integrate(f * w, x) / pair.integrate(w, x)     # noqa: E731
    return {"d": d, "log_pg": lq, "mean_abs_half_data": under(dev, p), "mean_abs_half_g": under(dev, q),
            "d_star_mean_abs_half_data": under(dev_star, p), "jsd": pair.jsd(lp, lq, x)}


def jsd_floor(x: torch.Tensor, gen: torch.Generator) -> float:
    """The JSD the density estimate reports for true samples of p_data (its bias at this n and bandwidth)."""
    lp = pair.data().log_prob(x.reshape(-1, 1))
    return pair.jsd(lp, kde_log_density(pair.data().sample(KDE_N, gen).reshape(-1), x, BANDWIDTH), x)


def run(lab: Lab) -> Outcome:
    from ..viz.plots import close, figure, render
    steps, batch = lab.pick(12000, 300), 512
    every = max(1, steps // lab.pick(60, 10))
    torch.manual_seed(lab.seed)
    G = MLPGenerator(Z_DIM, (1,), 64, 3, "relu")
    G.z_dim = Z_DIM
    D = MLPDiscriminator((1,), 64, 3)
    probe = lab.generator("equilibrium-probe")
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    history = []
    play(G, D, lambda n, g: pair.data().sample(n, g), steps, batch, lab.generator("equilibrium"), decay=True,
         callback=lambda step: history.append((step, snapshot(G, D, x, probe))), every=every)
    final = history[-1][1]
    G.eval()
    fresh, _ = optimal_d.train_d(G, lab.pick(3000, 100), 2048, lab.generator("equilibrium-fresh-d"))
    fresh_dev = (optimal_d.probability(fresh, x) - 0.5).abs()
    p = pair.data().log_prob(x.reshape(-1, 1)).exp()
    fresh_mean = pair.integrate(fresh_dev * p, x) / pair.integrate(p, x)
    peak = max(h["mean_abs_half_data"] for _, h in history)
    floor = jsd_floor(x, probe)
    curve = [[s, h["mean_abs_half_data"], h["mean_abs_half_g"], h["d_star_mean_abs_half_data"], h["jsd"]]
             for s, h in history]
    lab.say(f"mean |D − 1/2| under p_data: peak {peak:.3f} → {final['mean_abs_half_data']:.4f} at step {steps} "
            f"(for D* of the final p_g: {final['d_star_mean_abs_half_data']:.4f}); JSD(p_data, p_g) {final['jsd']:.4f} "
            f"(estimator floor {floor:.4f}); a fresh D trained to convergence on the final G: {fresh_mean:.4f}")

    def draw(step, h):
        fig, ax = figure(1, 2, size=(6.0, 2.3), sharex=True)
        ax[0, 0].fill_between(x, p, color="0.75", label="p_data")
        ax[0, 0].plot(x, h["log_pg"].exp(), color="tab:orange", lw=1.3, label="p_g (density estimate)")
        ax[0, 0].set_ylim(0, 0.6)
        ax[0, 0].legend(fontsize=7, loc="upper left")
        ax[0, 0].set_title(f"step {step}: JSD {h['jsd']:.3f}, mean |D − 1/2| under p_data {h['mean_abs_half_data']:.3f}",
                           fontsize=9)
        ax[1, 0].plot(x, h["d"], color="tab:blue", label="D(x)")
        ax[1, 0].axhline(0.5, color="k", ls=":", lw=1)
        ax[1, 0].set_ylim(-0.03, 1.03)
        ax[1, 0].legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        return fig

    frames = []
    for step, h in history[:: max(1, len(history) // lab.pick(30, 5))] + [history[-1]]:
        f = draw(step, h)
        frames.append(render(f))
        close(f)
    lab.save_animation(frames, "equilibrium")
    lab.save_figure(draw(steps, final), "equilibrium")

    fig, ax = figure(1, 1, size=(5.0, 3.2))
    c = torch.tensor(curve)
    ax[0, 0].plot(c[:, 0], c[:, 1], label="mean |D − 1/2| under p_data")
    ax[0, 0].plot(c[:, 0], c[:, 2], label="mean |D − 1/2| under p_g", alpha=0.7)
    ax[0, 0].plot(c[:, 0], c[:, 3], label="mean |D* − 1/2| under p_data (D* of the current p_g)", lw=1, ls="--")
    ax[0, 0].plot(c[:, 0], c[:, 4], label="JSD(p_data, p_g)", color="k", lw=1)
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_xlabel("step")
    ax[0, 0].legend(fontsize=7)
    fig.tight_layout()
    lab.save_figure(fig, "curve")
    numbers = {"mean_abs_half_data": final["mean_abs_half_data"], "mean_abs_half_g": final["mean_abs_half_g"],
               "d_star_mean_abs_half_data": final["d_star_mean_abs_half_data"], "jsd_final": final["jsd"],
               "jsd_estimator_floor": floor, "fresh_d_mean_abs_half_data": fresh_mean, "mean_abs_half_data_peak": peak, "steps": steps, "batch": batch,
               "goal": {"mean_abs_half": GOAL, "jsd": JSD_GOAL}, "kde": {"n": KDE_N, "bandwidth": BANDWIDTH},
               "curve_columns": ["step", "mean_abs_half_data", "mean_abs_half_g", "d_star_mean_abs_half_data", "jsd"],
               "curve": curve}
    held = final["mean_abs_half_data"] <= GOAL and final["jsd"] <= JSD_GOAL
    return Outcome(f"mean |D − 1/2| under p_data = {final['mean_abs_half_data']:.4f} at the end (peak "
                   f"{peak:.2f}); a fresh D trained to convergence: {fresh_mean:.3f}; JSD {final['jsd']:.3f}", held, numbers)
