"""evolution: the same fixed codes z, drawn by G at every stage of training.

Radford et al. 2016 and the seeds: a run keeps 64 fixed z and draws them at
intervals, so that one watches the same samples turn from noise into
digits. ``ganforge train`` writes these grids to samples/step-N.npz; this
experiment trains a short run of mnist-dcgan (or takes ``--run RUN``) and
assembles its grids into a GIF and an H.264 MP4, with two numbers per
frame that say what one sees: the distance from each sample to its nearest
real training image (RMS per pixel; noise → digits) and the mean per-pixel
change from the previous frame (the codes settling). The digit
classifier's mean confidence is logged too, but it is no measure of
quality: the classifier is as confident on step-0 noise as on digits.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import UserError
from ..runs.folder import sample_files
from .base import Lab, Outcome
from .images import classify, open_run, run_label, short_run

NAME = "evolution"
SUMMARY = "64 fixed codes z drawn at every stage of a run, as a GIF and an MP4 (noise → digits)"
CLAIM = "Watching fixed codes over training shows samples turning from noise into digits and settling."
PAGE = """Each frame draws the same 64 codes z with the generator of that step. Early frames are noise and blobs;
strokes appear, then digits, and late in the run each code keeps its digit and only sharpens. The two
curves say the same in numbers: the distance from each sample to its nearest real digit falls, and the
change from one frame to the next falls as the generator settles. The MP4 is H.264 and plays in a
browser; the GIF loops. `--run RUN` makes the same movie for any image run that wrote sample grids."""

THREADS = 2


def frame(x: torch.Tensor, step: int, scale: int = 2) -> np.ndarray:
    """A grid of the samples, enlarged, with the step written above it."""
    from PIL import Image, ImageDraw
    from ..viz.grid import grid
    arr = grid(x[:64], nrow=8)
    img = Image.fromarray(arr).convert("RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (img.width, img.height + 22), "white")
    canvas.paste(img, (0, 22))
    ImageDraw.Draw(canvas).text((6, 5), f"step {step}", fill="black")
    return np.asarray(canvas)


def run(lab: Lab, run: Optional[Path] = None) -> Outcome:
    from ..viz.plots import figure
    if run is None:
        steps = lab.pick(700, 20)
        lab.say(f"training a short run of mnist-dcgan ({steps} steps) into {lab.final / 'run'}")
        run = short_run(lab.out, steps, samples_every=max(1, steps // 35), seed=lab.seed).path
    open_run(run)
    shots = sample_files(Path(run), ".npz")
    if len(shots) < 2:
        raise UserError(f"{run} has {len(shots)} sample grids in samples/; evolution needs at least 2 "
                        f"(train with a smaller log.samples_every)")
    real = data_of(run)
    frames, rows, prev = [], [], None
    for step, path in shots:
        x = torch.from_numpy(np.load(path)["x"].astype(np.float32))[:64]
        conf = float(classify(x).softmax(1).max(1).values.mean()) if x.shape[1] in (1, 3) else None
        change = float((x - prev).abs().mean()) if prev is not None else None
        rows.append([step, nearest_rms(x, real), change, conf])
        prev = x
        frames.append(frame(x, step))
    lab.save_animation(frames, "evolution", fps=6, mp4=True)
    lab.save_figure_array(frames[-1], "final")
    fig, ax = figure(2, 1, size=(3.8, 2.8))
    ax[0, 0].plot([r[0] for r in rows], [r[1] for r in rows], color="tab:blue")
    ax[0, 0].set_xlabel("step")
    ax[0, 0].set_ylabel("RMS distance to nearest real image")
    ax[0, 1].semilogy([r[0] for r in rows[1:]], [r[2] for r in rows[1:]], color="tab:orange")
    ax[0, 1].set_xlabel("step")
    ax[0, 1].set_ylabel("mean |x_t − x_prev| per pixel")
    fig.tight_layout()
    lab.save_figure(fig, "curves")
    q = max(1, len(rows) // 4)
    first_change = float(np.mean([r[2] for r in rows[1:1 + q]]))
    last_change = float(np.mean([r[2] for r in rows[-q:]]))
    d0, d1 = rows[0][1], rows[-1][1]
    held = d1 < 0.5 * d0 and last_change < 0.5 * first_change
    lab.say(f"{len(frames)} frames from step {shots[0][0]} to {shots[-1][0]}: distance to the nearest real image "
            f"{d0:.3f} → {d1:.3f}; frame-to-frame change {first_change:.3f} (first quarter) → {last_change:.3f} (last quarter)")
    numbers = {"run": run_label(lab, run), "frames": len(frames), "first_step": shots[0][0], "last_step": shots[-1][0],
               "nearest_real_rms_start": d0, "nearest_real_rms_end": d1, "change_first_quarter": first_change,
               "change_last_quarter": last_change, "classifier_confidence_start": rows[0][3],
               "classifier_confidence_end": rows[-1][3], "rows_columns": ["step", "nearest_real_rms", "change", "confidence"],
               "rows": rows}
    return Outcome(f"{len(frames)} frames; distance to the nearest real digit {d0:.3f} → {d1:.3f}; frame-to-frame "
                   f"change {first_change:.3f} → {last_change:.3f}", held, numbers)


def data_of(run: Path) -> torch.Tensor:
    """The run's training images (its data config, as it trained)."""
    from ..api import load_run
    from ..data import load_dataset
    return load_dataset(load_run(run).config.data).x


def nearest_rms(x: torch.Tensor, real: torch.Tensor) -> float:
    """Mean over samples of the RMS per-pixel distance to the nearest real image."""
    a, b = x.flatten(1).double(), real.flatten(1).double()
    d = torch.cdist(a, b).min(1).values / (a.shape[1] ** 0.5)
    return float(d.mean())
