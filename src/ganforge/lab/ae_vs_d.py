"""ae-vs-d: the two teachers of a generator that is also a decoder.

Adversarial autoencoder hybrids (e.g. Larsen et al. 2016, VAE/GAN; Dumoulin
et al. 2017 and Donahue et al. 2017 for the encoder) train G on two signals
at once: a reconstruction loss through an encoder E, ‖G(E(x)) − x‖², and
D's adversarial loss on G(z). The seeds report that over training the
gradient that reaches G from the reconstruction loss shrinks, the one from
D grows, and their geometric mean stays nearly constant. Measured here on
the embedded MNIST digits with ganforge's DCGAN G and D and an encoder of
the same shape as D: at every logged step both gradients are computed
separately (autograd on the same batch) and their norms over all of G's
parameters logged; G is updated with their sum, E with the reconstruction
gradient, D on its usual loss. The change of each norm is reported in
orders of magnitude between the first and the last tenth of training, and
the geometric mean's spread beside them.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..losses import bce_d, nonsaturating_g
from ..nets.dcgan import DCGANOptions, build
from .base import Lab, Outcome
from ..games.plain import adam
from .images import mnist

NAME = "ae-vs-d"
SUMMARY = "G trained by a reconstruction loss and by D: the two gradient norms, their ratio and geometric mean"
CLAIM = ("With an encoder and a reconstruction loss on G, the reconstruction gradient shrinks, D's gradient grows, "
         "and their geometric mean stays nearly constant.")
PAGE = """A generator that is also the decoder of an autoencoder hears two teachers: the reconstruction loss, which
is large at first and falls as G learns to redraw the digits E encodes, and the discriminator, which has
little to say at first and more as it learns what separates real from generated. The left panel follows
the norm of each gradient at G, on a log scale; the right panel their ratio and their geometric mean.
The verdict compares each norm's change over training with the geometric mean's."""

THREADS = 2
Z_DIM, WIDTH, BATCH = 64, 32, 64


def encoder() -> nn.Module:
    """D's architecture with Z_DIM outputs: x -> z."""
    _, net = build((1, 28, 28), Z_DIM, DCGANOptions(g_width=WIDTH, d_width=WIDTH))
    last = net.net[-1]
    net.net[-1] = nn.Conv2d(last.in_channels, Z_DIM, last.kernel_size, 1, 0)
    net.forward = lambda x: net.net(x).flatten(1)
    return net


def norm(grads) -> float:
    return math.sqrt(sum(float(g.square().sum()) for g in grads if g is not None))


def run(lab: Lab) -> Outcome:
    from ..viz.plots import figure
    steps, every = lab.pick(1200, 40), lab.pick(20, 5)
    x_all = mnist().x
    gen = lab.generator("ae-vs-d")
    torch.manual_seed(lab.seed)
    G, D = build((1, 28, 28), Z_DIM, DCGANOptions(g_width=WIDTH, d_width=WIDTH))
    E = encoder()
    opt_g, opt_d, opt_e = adam(G, 2e-4), adam(D, 2e-4), adam(E, 2e-4)
    gp = [p for p in G.parameters()]
    rows = []
    for step in range(steps + 1):
        real = x_all[torch.randint(0, len(x_all), (BATCH,), generator=gen)]
        z = torch.randn(BATCH, Z_DIM, generator=gen)
        if step < steps:
            with torch.no_grad():
                fake = G(z)
            loss_d = bce_d(D(real), D(fake))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        D.requires_grad_(False)
        rec = (G(E(real)) - real).square().mean()
        adv = nonsaturating_g(D(G(z)), None)
        g_rec = torch.autograd.grad(rec, gp + list(E.parameters()), allow_unused=True)
        g_adv = torch.autograd.grad(adv, gp, allow_unused=True)
        D.requires_grad_(True)
        n_rec, n_adv = norm(g_rec[: len(gp)]), norm(g_adv)
        if step % every == 0 or step == steps:
            rows.append([step, n_rec, n_adv, float(rec.detach()), float(adv.detach())])
        if step == steps:
            break
        for p, a, b in zip(gp, g_rec[: len(gp)], g_adv):
            p.grad = (a if a is not None else 0) + (b if b is not None else 0)
        for p, a in zip(E.parameters(), g_rec[len(gp):]):
            p.grad = a
        opt_g.step()
        opt_e.step()

    t = torch.tensor(rows, dtype=torch.float64)
    geo = (t[:, 1] * t[:, 2]).sqrt()
    k = max(1, len(t) // 10)
    # skip the first logged point: at step 0 D is untrained and its gradient says nothing yet
    first, last = slice(1, 1 + k), slice(len(t) - k, len(t))

    def orders(col):
        return math.log10(float(col[last].mean()) / float(col[first].mean()))
    change = {"reconstruction": orders(t[:, 1]), "adversarial": orders(t[:, 2]), "geometric_mean": orders(geo)}
    lab.say(f"orders of magnitude from the first to the last tenth: reconstruction {change['reconstruction']:+.2f}, "
            f"adversarial {change['adversarial']:+.2f}, geometric mean {change['geometric_mean']:+.2f}")
    fig, ax = figure(2, 1, size=(4.2, 3.2))
    ax[0, 0].semilogy(t[:, 0], t[:, 1], label="‖∇_G reconstruction‖", color="tab:green")
    ax[0, 0].semilogy(t[:, 0], t[:, 2], label="‖∇_G adversarial (D)‖", color="tab:red")
    ax[0, 0].set_xlabel("step")
    ax[0, 0].legend(fontsize=7)
    ax[0, 1].semilogy(t[:, 0], t[:, 1] / t[:, 2], label="ratio reconstruction / adversarial", color="tab:purple")
    ax[0, 1].semilogy(t[:, 0], geo, label="geometric mean", color="k")
    ax[0, 1].set_xlabel("step")
    ax[0, 1].legend(fontsize=7)
    fig.tight_layout()
    lab.save_figure(fig, "gradients")
    shrinks, grows = change["reconstruction"] < 0, change["adversarial"] > 0
    steady = abs(change["geometric_mean"]) < 0.5 * max(abs(change["reconstruction"]), abs(change["adversarial"]))
    numbers = {"orders_of_magnitude": change, "steps": steps, "batch": BATCH, "rows_columns":
               ["step", "reconstruction_norm", "adversarial_norm", "reconstruction_loss", "adversarial_loss"],
               "rows": rows, "reconstruction_shrinks": shrinks, "adversarial_grows": grows, "geometric_mean_steadier": steady}
    return Outcome(f"reconstruction gradient {change['reconstruction']:+.2f}, D's {change['adversarial']:+.2f}, geometric "
                   f"mean {change['geometric_mean']:+.2f} orders of magnitude over training", shrinks and grows and steady,
                   numbers)
