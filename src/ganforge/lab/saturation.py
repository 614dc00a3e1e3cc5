"""saturation: log(1 − D(G(z))) stops teaching G once D wins; −log D(G(z)) does not.

Goodfellow et al. 2014, Section 3: early in training D rejects the fakes
with confidence and log(1 − D(G(z))) saturates, so G is trained to maximize
log D(G(z)) instead. With D = sigmoid(a), the slope of the saturating loss
in the logit is −D and that of the non-saturating one is −(1 − D): at
D(G(z)) = 0.01 they are 0.01 and 0.99. Arjovsky & Bottou 2017 (Figure 2)
measured it: with G frozen and D trained from scratch, the norm of the
saturating generator's gradient fell by up to 5 orders of magnitude within
4,000 D iterations. Here the same measurement is made on the 2-D ring (G
frozen after 0, 500 and 2,000 steps of the game) and on the embedded MNIST
digits (a DCGAN generator frozen after a short training): D is trained on
its usual loss, and every few steps the norm over all of G's parameters of
the gradient of each generator loss (on a fixed batch of z) is logged.
Decay in orders of magnitude is log10(largest norm / median norm of the last
5% of D steps): a freshly initialized D has small weights, so the gradients
first grow while D learns, then the saturating one collapses once D wins.
"""
from __future__ import annotations

import math

import torch

from ..losses import bce_d, minimax_g, nonsaturating_g
from ..nets.mlp import MLPDiscriminator, MLPGenerator
from .base import Lab, Outcome
from ..games.plain import adam, play

NAME = "saturation"
SUMMARY = "with G frozen and D trained, the saturating loss's gradient vanishes; the non-saturating one's does not"
CLAIM = ("log(1 − D(G(z))) saturates when D rejects the fakes; −log D(G(z)) keeps its gradient "
         "(Arjovsky & Bottou 2017: up to 5 orders of magnitude of decay in 4,000 D steps).")
PAGE = """The left figure is the seeds' comparison of the two generator losses: log(1 − D) is flat where D(G(z)) is
near 0, exactly where a young generator lives, while −log D is steepest there. Its slope in D's logit,
which is what flows back into G, is D for the first and 1 − D for the second. The measured runs freeze a
generator, train a fresh discriminator against it for thousands of steps and log the norm of the
gradient each loss would send to G. As D wins, D(G(z)) falls towards 0 and the saturating gradient
collapses by orders of magnitude, while the non-saturating gradient stays put (or grows as D sharpens).
The claim holds where D wins. A generator frozen after 2,000 steps on the ring is already good enough that
D cannot reject its samples (D(G(z)) stays near 0.3), and there neither gradient vanishes. On the digits
D wins more slowly within the time budget, and the saturating gradient there falls by less than an order
of magnitude in 1,500 D steps while the non-saturating one keeps growing. The verdict asks for at least 3
orders of decay for the saturating loss in some run where D won, and at most 1 order for the
non-saturating loss in every run."""

THREADS = 1
WON = 0.01      # D(G(z)) at the end below this: D rejects the fakes with confidence


def grad_norm(G, D, z: torch.Tensor, loss) -> float:
    """The norm over all of G's parameters of the gradient of ``loss(D(G(z)))``."""
    G.zero_grad(set_to_none=True)
    loss(D(G(z)), None).backward()
    return math.sqrt(sum(float(p.grad.square().sum()) for p in G.parameters() if p.grad is not None))


def starve(G, D, real, d_steps: int, batch: int, gen: torch.Generator, lr: float, record: list[int], z: torch.Tensor):
    """Train D alone against the frozen G; log both gradient norms and mean D(G(z)) at the steps in ``record``."""
    opt = adam(D, lr)
    rows, want = [], set(record)
    G.requires_grad_(True)
    for step in range(d_steps + 1):
        if step in want:
            D.requires_grad_(False)
            sat, ns = grad_norm(G, D, z, minimax_g), grad_norm(G, D, z, nonsaturating_g)
            with torch.no_grad():
                dg = float(torch.sigmoid(D(G(z)).float()).mean())
            D.requires_grad_(True)
            rows.append([step, sat, ns, dg])
        if step == d_steps:
            break
        x = real(batch, gen)
        with torch.no_grad():
            fake = G(torch.randn(batch, G.z_dim, generator=gen))
        loss = bce_d(D(x), D(fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    G.zero_grad(set_to_none=True)
    return rows


def schedule(d_steps: int, every: int, dense: int = 20) -> list[int]:
    """The D steps at which the gradients are measured: each of the first ``dense``, then every ``every``th."""
    return sorted(set(list(range(0, min(dense, d_steps))) + list(range(0, d_steps + 1, every)) + [d_steps]))


def decay(rows: list) -> dict:
    """Orders of magnitude each loss's gradient fell from its largest value to the end."""
    tail = rows[-max(1, len(rows) // 20):]
    out = {"d_of_g_end": tail[-1][3]}
    for col, key in ((1, "saturating"), (2, "nonsaturating")):
        peak, end = max(r[col] for r in rows), sorted(r[col] for r in tail)[len(tail) // 2]
        out.update({f"{key}_orders": math.log10(peak / max(end, 1e-300)), f"{key}_peak": peak, f"{key}_end": end})
    return out


def toy_runs(lab: Lab) -> dict:
    from ..data.toy import ring
    data = ring()
    real = lambda n, g: data.sample(n, g)        # noqa: E731
    d_steps = lab.pick(4000, 100)
    out = {}
    for stage in lab.pick((0, 500, 2000), (0, 50)):
        torch.manual_seed(lab.seed)
        G, D = MLPGenerator(2, (2,), 128, 3, "relu"), MLPDiscriminator((2,), 128, 3)
        G.z_dim = 2
        if stage:
            play(G, D, real, stage, 256, lab.generator(f"saturation-ring-{stage}"))
        torch.manual_seed(lab.seed + 1)
        D = MLPDiscriminator((2,), 128, 3)
        z = torch.randn(512, 2, generator=lab.generator("saturation-z"))
        rows = starve(G, D, real, d_steps, 256, lab.generator(f"saturation-ring-d-{stage}"), 1e-3,
                      schedule(d_steps, max(1, d_steps // lab.pick(100, 10)), lab.pick(20, 5)), z)
        out[f"ring, G after {stage} steps"] = {"rows": rows, **decay(rows)}
    return out


def mnist_run(lab: Lab) -> dict:
    from ..nets.dcgan import DCGANOptions, build
    from .images import mnist
    x = mnist().x
    real = lambda n, g: x[torch.randint(0, len(x), (n,), generator=g)]      # noqa: E731
    torch.manual_seed(lab.seed)
    G, D = build((1, 28, 28), 64, DCGANOptions(g_width=32, d_width=32))
    G.z_dim = 64
    stage = lab.pick(200, 10)
    play(G, D, real, stage, 64, lab.generator("saturation-mnist"), lr=1e-3, betas=(0.0, 0.99))
    G.eval()                                       # batch norm at its running statistics: G is frozen
    torch.manual_seed(lab.seed + 1)
    _, D = build((1, 28, 28), 64, DCGANOptions(g_width=32, d_width=32))
    d_steps = lab.pick(1500, 50)
    z = torch.randn(128, 64, generator=lab.generator("saturation-z"))
    threads = torch.get_num_threads()
    torch.set_num_threads(lab.threads_for_images)
    try:
        rows = starve(G, D, real, d_steps, 64, lab.generator("saturation-mnist-d"), 1e-3,
                      schedule(d_steps, max(1, d_steps // lab.pick(50, 10)), lab.pick(20, 5)), z)
    finally:
        torch.set_num_threads(threads)
    return {f"MNIST DCGAN, G after {stage} steps": {"rows": rows, **decay(rows)}}


def loss_figure(lab: Lab) -> None:
    from ..viz.plots import figure
    d = torch.logspace(-4, math.log10(1 - 1e-4), 400, dtype=torch.float64)
    d = torch.cat([d, 1 - torch.logspace(-4, -0.4, 200, dtype=torch.float64).flip(0)]).unique()
    fig, ax = figure(2, 1, size=(4.3, 3.3))
    ax[0, 0].plot(d, torch.log1p(-d), label="saturating: minimize log(1 − D)", color="tab:red")
    ax[0, 0].plot(d, -torch.log(d), label="non-saturating: minimize −log D", color="tab:blue")
    ax[0, 0].set_xlabel("D(G(z))")
    ax[0, 0].set_ylabel("generator loss")
    ax[0, 0].set_ylim(-5, 5)
    ax[0, 0].legend(fontsize=7)
    ax[0, 1].loglog(d, d, color="tab:red", label="|∂/∂a log(1 − D)| = D")
    ax[0, 1].loglog(d, 1 - d, color="tab:blue", label="|∂/∂a (−log D)| = 1 − D")
    ax[0, 1].loglog(d, 1 / (1 - d), color="tab:red", ls="--", lw=1, label="|∂/∂D log(1 − D)| = 1/(1 − D)")
    ax[0, 1].loglog(d, 1 / d, color="tab:blue", ls="--", lw=1, label="|∂/∂D (−log D)| = 1/D")
    ax[0, 1].set_xlabel("D(G(z)) = sigmoid(a)")
    ax[0, 1].set_ylabel("slope magnitude")
    ax[0, 1].legend(fontsize=6.5, loc="lower left")
    fig.tight_layout()
    lab.save_figure(fig, "losses")


def run(lab: Lab) -> Outcome:
    from ..viz.plots import figure
    loss_figure(lab)
    runs = {**toy_runs(lab), **mnist_run(lab)}
    fig, ax = figure(len(runs), 1, size=(3.6, 3.2), sharey=False)
    for i, (label, r) in enumerate(runs.items()):
        rows = torch.tensor(r["rows"])
        a = ax[0, i]
        a.semilogy(rows[:, 0], rows[:, 1], color="tab:red", label="saturating log(1 − D)")
        a.semilogy(rows[:, 0], rows[:, 2], color="tab:blue", label="non-saturating −log D")
        a.set_title(f"{label}\nsat. −{r['saturating_orders']:.1f}, non-sat. {-r['nonsaturating_orders']:+.1f} orders",
                    fontsize=8)
        a.set_xlabel("D steps (G frozen)")
        if i == 0:
            a.set_ylabel("‖∇θ_G loss‖")
            a.legend(fontsize=7)
        lab.say(f"{label}: saturating gradient fell {r['saturating_orders']:.1f} orders of magnitude, "
                f"non-saturating {r['nonsaturating_orders']:+.1f} (D(G(z)) at the end {r['d_of_g_end']:.2e})")
    fig.tight_layout()
    lab.save_figure(fig, "gradient-norms")
    won = {k: r for k, r in runs.items() if r["d_of_g_end"] < WON}
    sat = [r["saturating_orders"] for r in won.values()]
    ns_max = max(r["nonsaturating_orders"] for r in runs.values())
    held = bool(won) and max(sat) >= 3 and ns_max <= 1
    numbers = dict(runs)
    numbers["rows_columns"] = ["d_step", "saturating_norm", "nonsaturating_norm", "mean_d_of_g"]
    numbers["d_won"] = sorted(won)
    span = f"{min(sat):.1f}–{max(sat):.1f}" if sat else "–"
    return Outcome(f"where D won (D(G(z)) < {WON} in {len(won)} of {len(runs)} runs) the saturating gradient fell "
                   f"{span} orders of magnitude; the non-saturating one at most {max(ns_max, 0):.1f}", held, numbers)
