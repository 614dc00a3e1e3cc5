"""flow: generated samples move along the gradient of D, toward the data.

Goodfellow et al. 2014, Figure 1 (and the 'flow in sample space' picture
of the seeds): D's output is a landscape over sample space and G's update
carries each generated point uphill on it, along ∇ₓD(x). Two cases on 2-D
data, each starting from a generator whose samples sit in a small blob at
the origin: a ring of 8 modes (the samples spread outward to every side),
and two modes at (−1.5, 0) and (1.5, 0), where the blob sits exactly
between them and must break the symmetry and split (or choose one). The
number that makes the picture a measurement: for a fixed set of z, the
cosine between each sample's displacement over the next few G updates and
∇ₓD at its position (1 means the samples move exactly along D's gradient;
0, no relation).
"""
from __future__ import annotations



import torch

from ..data.toy import GaussianMixture, ring
from ..nets.mlp import MLPDiscriminator, MLPGenerator
from .base import Lab, Outcome
from ..games.plain import play

NAME = "flow"
SUMMARY = "D's landscape with ∇ₓD arrows at the generated samples: samples flow uphill; a blob between two modes splits"
CLAIM = "G moves its samples along ∇ₓD toward the data; samples between two modes must break the symmetry."
PAGE = """The heatmap is D(x): bright where D believes data lives. The arrows are ∇ₓD at the generated samples,
the direction the generator's update will push each of them. Over training the orange samples climb the
landscape toward the data, and the landscape itself moves as D adapts. In the second case the samples start
exactly between two modes, where the two pulls cancel: small asymmetries decide which mode each part of the
blob joins. The cosine between each sample's actual displacement and ∇ₓD at its position is the measured
version of the arrows; it is well above 0 throughout (it is not 1: G moves samples through its shared
weights, so each sample's motion also feels the pull on its neighbours)."""

THREADS = 1
EVERY = 10


def two_modes() -> GaussianMixture:
    return GaussianMixture(torch.tensor([[-1.5, 0.0], [1.5, 0.0]]), torch.tensor([0.08, 0.08]), torch.tensor([0.5, 0.5]))


CASES = {"ring": (lambda: ring(8, 2.0, 0.05), "a ring of 8 modes"),
         "split": (two_modes, "two modes, samples start between them")}


def grad_d(D, x: torch.Tensor) -> torch.Tensor:
    """∇ₓ D(x) with D(x) = sigmoid(logit)."""
    x = x.detach().requires_grad_(True)
    D.requires_grad_(False)
    torch.sigmoid(D(x)).sum().backward()
    D.requires_grad_(True)
    return x.grad.detach()


def run_case(lab: Lab, case: str, steps: int) -> dict:
    density = CASES[case][0]()
    torch.manual_seed(lab.seed)
    G, D = MLPGenerator(2, (2,), 64, 3, "relu"), MLPDiscriminator((2,), 64, 3)
    G.z_dim = 2
    with torch.no_grad():                        # start as a small blob at the origin
        G.net[-1].weight.mul_(0.05)
        G.net[-1].bias.zero_()
    z = torch.randn(300, 2, generator=lab.generator(f"flow-{case}-z"))
    lim = float(density.means.abs().max()) * 1.6
    axis = torch.linspace(-lim, lim, 90)
    mesh = torch.cartesian_prod(axis, axis)
    shots = []

    def snap(step):
        with torch.no_grad():
            x = G(z)
            d = torch.sigmoid(D(mesh)).reshape(90, 90)
        shots.append({"step": step, "x": x, "grad": grad_d(D, x), "d": d})

    play(G, D, lambda n, g: density.sample(n, g), steps, 256, lab.generator(f"flow-{case}"), lr=5e-4,
         callback=snap, every=EVERY)
    cos = []
    for a, b in zip(shots, shots[1:]):
        move = b["x"] - a["x"]
        ok = (move.norm(dim=1) > 1e-6) & (a["grad"].norm(dim=1) > 1e-9)
        if ok.any():
            cos.append([a["step"], float(torch.nn.functional.cosine_similarity(move[ok], a["grad"][ok]).mean())])
    final = shots[-1]["x"]
    nearest = torch.cdist(final, density.means).argmin(1)
    share = torch.bincount(nearest, minlength=len(density.means)).double() / len(final)
    return {"shots": shots, "cos": cos, "lim": lim, "axis": axis, "density": density,
            "share": share.tolist(), "mean_cos": sum(c[1] for c in cos) / len(cos)}


def draw(ax, shot, r, title):
    a = ax
    lim = r["lim"]
    a.imshow(shot["d"].t().numpy(), origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis", vmin=0, vmax=1,
             interpolation="bilinear")
    m = r["density"].means
    a.scatter(m[:, 0], m[:, 1], s=40, c="white", marker="x", linewidths=1.2)
    x, g = shot["x"], shot["grad"]
    a.scatter(x[:, 0], x[:, 1], s=3, c="tab:orange", linewidths=0)
    sub = slice(None, None, 3)
    norm = g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    unit = g / norm * (lim * 0.09)
    a.quiver(x[sub, 0], x[sub, 1], unit[sub, 0], unit[sub, 1], color="tab:red", angles="xy", scale_units="xy",
             scale=1, width=0.004)
    a.set_xlim(-lim, lim)
    a.set_ylim(-lim, lim)
    a.set_xticks([])
    a.set_yticks([])
    a.set_title(title, fontsize=8)


def run(lab: Lab) -> Outcome:
    from ..viz.plots import close, figure, render
    steps = lab.pick(1500, 60)
    results = {case: run_case(lab, case, steps) for case in CASES}
    numbers = {}
    for case, r in results.items():
        shots = r["shots"]
        picks = [shots[round(f * (len(shots) - 1))] for f in (0, 0.02, 0.05, 0.1, 0.3, 1.0)]     # the action is early
        fig, ax = figure(6, 1, size=(2.3, 2.3))
        for i, shot in enumerate(picks):
            draw(ax[0, i], shot, r, f"step {shot['step']}")
        fig.suptitle(f"{CASES[case][1]}: D(x) (colour), G's samples (orange), ∇ₓD (arrows)", fontsize=9)
        fig.tight_layout()
        lab.save_figure(fig, f"flow-{case}")
        frames = []
        for shot in shots[:40:2] + shots[40::6]:
            f, a = figure(1, 1, size=(3.2, 3.2))
            draw(a[0, 0], shot, r, f"{case}: step {shot['step']}")
            f.tight_layout()
            frames.append(render(f))
            close(f)
        lab.save_animation(frames, f"flow-{case}", fps=10)
        numbers[case] = {"mean_cosine_move_vs_grad_d": r["mean_cos"], "share_per_mode_at_end": r["share"],
                         "cosine_curve": r["cos"], "steps": steps}
        lab.say(f"{case}: mean cosine(displacement, ∇ₓD) = {r['mean_cos']:.2f}; share of samples per mode at the end "
                + ", ".join(f"{s:.2f}" for s in r["share"]))
    fig, ax = figure(1, 1, size=(4.6, 3.0))
    for case, r in results.items():
        c = torch.tensor(r["cos"])
        ax[0, 0].plot(c[:, 0], c[:, 1], label=case, lw=1)
    ax[0, 0].axhline(0, color="k", lw=0.8)
    ax[0, 0].set_xlabel("step")
    ax[0, 0].set_ylabel(f"cos(move over {EVERY} steps, ∇ₓD)")
    ax[0, 0].legend(fontsize=7)
    fig.tight_layout()
    lab.save_figure(fig, "cosine")
    split = results["split"]["share"]
    numbers["split_min_share"] = min(split)
    held = all(r["mean_cos"] > 0.3 for r in results.values())
    head = (f"samples move along ∇ₓD: mean cosine {results['ring']['mean_cos']:.2f} (ring), "
            f"{results['split']['mean_cos']:.2f} (two modes); the blob split {split[0]:.2f} / {split[1]:.2f}")
    return Outcome(head, held, numbers)


