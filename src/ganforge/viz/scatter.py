"""Pictures of toy samples: 2-D scatter plots, 1-D histograms, real beside fake."""
from __future__ import annotations

import io

import numpy as np
import torch


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def toy_png(fake: torch.Tensor, real: torch.Tensor, title: str = "", size: float = 4.0) -> bytes:
    """A PNG of fake (orange) over real (gray) samples."""
    plt = _plt()
    fake, real = fake.detach().float().cpu().numpy(), real.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    if fake.shape[1] == 1:
        lo = float(min(real.min(), fake.min()))
        hi = float(max(real.max(), fake.max()))
        bins = np.linspace(lo, hi, 80)
        ax.hist(real[:, 0], bins=bins, density=True, color="0.6", alpha=0.7, label="real")
        ax.hist(fake[:, 0], bins=bins, density=True, color="tab:orange", alpha=0.6, label="generated")
    else:
        ax.scatter(real[:, 0], real[:, 1], s=3, c="0.6", alpha=0.5, label="real", linewidths=0)
        ax.scatter(fake[:, 0], fake[:, 1], s=3, c="tab:orange", alpha=0.7, label="generated", linewidths=0)
        lim = float(np.abs(real).max()) * 1.25
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
