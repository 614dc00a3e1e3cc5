"""Matplotlib without a display: figures for the lab and the docs.

Always the Agg backend (files, no windows), one style for every figure, and
``render`` to turn a figure into an RGB array for animations.
"""
from __future__ import annotations

import numpy as np


def pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def figure(ncols: int = 1, nrows: int = 1, size: tuple = (4.2, 3.4), **kw):
    """A figure with ``nrows x ncols`` axes of ``size`` inches each."""
    plt = pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kw)
    for ax in axes.flat:
        ax.grid(True, alpha=0.25, linewidth=0.6)
        ax.tick_params(labelsize=8)
    return fig, axes


def render(fig, dpi: int = 90) -> np.ndarray:
    """The figure as an (H, W, 3) uint8 array (the figure stays open)."""
    fig.canvas.draw()
    fig.set_dpi(dpi)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def close(fig) -> None:
    pyplot().close(fig)
