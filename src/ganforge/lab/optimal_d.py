"""optimal-d: a discriminator trained to convergence is D*(x) = p_data / (p_data + p_g).

Goodfellow et al. 2014, Proposition 1: for a fixed G, the D that maximizes
V(D, G) = E_data[log D(x)] + E_g[log(1 - D(x))] is, point by point,
D*(x) = p_data(x) / (p_data(x) + p_g(x)). Here p_data is a mixture of three
1-D Gaussians, G is fixed with p_g = N(0.5, 1.5^2), and D is ganforge's MLP
discriminator trained on the GAN's D loss with fresh samples at every step
(Adam, learning rate decayed linearly to zero). The distance |D - D*| is
reported as a mean under m = (p_data + p_g)/2, the distribution D is trained
on, and as a maximum over the support (where m is at least 1% of its peak).
"""
from __future__ import annotations

import torch

from ..losses import bce_d
from ..nets.mlp import MLPDiscriminator
from . import pair
from .base import Lab, Outcome

NAME = "optimal-d"
SUMMARY = "D trained to convergence against a fixed G equals D* = p_data / (p_data + p_g) (1-D, exact densities)"
CLAIM = "For a fixed G the optimal discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x))."
GOAL = 0.02
PAGE = """A discriminator trained for long enough against a generator that does not move should become
D*(x) = p_data(x) / (p_data(x) + p_g(x)): where only the data has mass it says 1, where only the
generator has mass it says 0, and where both do it says how much of the density there is data's.
Here both densities are known exactly, so the trained D can be laid over D* point by point. The
remaining gap sits where m = (p_data + p_g)/2 is small: D only learns where it sees samples."""


def train_d(G, steps: int, batch: int, gen: torch.Generator, lr: float = 2e-3, record_every: int = 0,
            hidden: int = 64):
    """D trained on fresh batches of p_data and of a frozen 1-D generator G (z of G.z_dim);
    returns (D, [(step, D on the plot grid)])."""
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    D = MLPDiscriminator((1,), hidden, 3)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    data, xs, frames = pair.data(), plot_grid(), []
    for step in range(steps):
        real = data.sample(batch, gen)
        with torch.no_grad():
            fake = G(torch.randn(batch, G.z_dim, generator=gen)).reshape(batch, 1)
        out = D(torch.cat([real, fake]))
        loss = bce_d(out[:batch], out[batch:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if record_every and (step % record_every == 0 or step == steps - 1):
            frames.append((step + 1, probability(D, xs)))
    return D.eval(), frames


def plot_grid() -> torch.Tensor:
    return torch.linspace(-5, 5, 801, dtype=torch.float64)


@torch.no_grad()
def logit(D, x: torch.Tensor) -> torch.Tensor:
    """D's raw output a on a 1-D grid (D(x) = sigmoid(a)), float64."""
    return D(x.float().reshape(-1, 1)).double()


def probability(D, x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logit(D, x))


def gap(D_vals: torch.Tensor, x: torch.Tensor, G: pair.AffineGenerator) -> dict:
    """Mean |D - D*| under m, and its maximum where m >= 1% of its peak."""
    lp, lq = pair.log_densities(x, G)
    m = 0.5 * (lp.exp() + lq.exp())
    err = (D_vals - pair.log_d_star(lp, lq).exp()).abs()
    support = m >= 0.01 * m.max()
    return {"mean_abs": pair.integrate(err * m, x) / pair.integrate(m, x),
            "max_abs": float(err[support].max()),
            "support": [float(x[support].min()), float(x[support].max())]}


def run(lab: Lab) -> Outcome:
    from ..viz.plots import figure, render
    G = pair.AffineGenerator()
    steps, batch = lab.pick(3000, 300), lab.pick(2048, 512)
    D, frames = train_d(G, steps, batch, lab.generator("optimal-d"), record_every=max(1, steps // lab.pick(40, 6)))
    x = pair.grid()
    numbers = gap(probability(D, x), x, G)
    numbers.update(steps=steps, batch=batch, generator={"mu": G.mu, "sigma": G.sigma})
    numbers["curve"] = [[s, gap_on_plot_grid(v, G)] for s, v in frames]
    lab.say(f"mean |D - D*| = {numbers['mean_abs']:.4f} (goal <= {GOAL}), max on the support {numbers['max_abs']:.4f}")

    xs = plot_grid()
    p, q = pair.densities(xs, G)

    def draw(values, title):
        fig, ax = figure(2, 1, size=(4.4, 3.3))
        ax[0, 0].fill_between(xs, p, color="0.75", label="p_data")
        ax[0, 0].plot(xs, q, color="tab:orange", label="p_g = N(0.5, 1.5²)")
        ax[0, 0].set_title("the two densities", fontsize=9)
        ax[0, 0].legend(fontsize=7)
        ax[0, 1].plot(xs, p / (p + q), color="k", lw=2.2, label="D*(x) = p_data/(p_data+p_g)")
        ax[0, 1].plot(xs, values, color="tab:blue", lw=1.4, ls="--", label="trained D(x)")
        ax[0, 1].set_ylim(-0.03, 1.03)
        ax[0, 1].set_title(title, fontsize=9)
        ax[0, 1].legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        return fig

    fig = draw(probability(D, xs), f"after {steps} D steps: mean |D−D*| = {numbers['mean_abs']:.3f}")
    lab.save_figure(fig, "optimal-d")
    movie = []
    for s, v in frames:
        f = draw(v, f"D step {s}")
        movie.append(render(f))
        from ..viz.plots import close
        close(f)
    lab.save_animation(movie, "optimal-d")

    fig, ax = figure(1, 1)
    ax[0, 0].semilogy([c[0] for c in numbers["curve"]], [c[1] for c in numbers["curve"]], color="tab:blue")
    ax[0, 0].axhline(GOAL, color="tab:red", ls=":", label=f"goal {GOAL}")
    ax[0, 0].set_xlabel("D step")
    ax[0, 0].set_ylabel("mean |D − D*| under m")
    ax[0, 0].legend(fontsize=7)
    fig.tight_layout()
    lab.save_figure(fig, "convergence")
    held = numbers["mean_abs"] <= GOAL
    return Outcome(f"mean |D − D*| = {numbers['mean_abs']:.4f} (goal ≤ {GOAL}); max {numbers['max_abs']:.3f}",
                   held, numbers)


def gap_on_plot_grid(values: torch.Tensor, G) -> float:
    return gap(values, plot_grid(), G)["mean_abs"]
