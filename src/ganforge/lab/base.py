"""What every lab experiment shares: its folder, its figures, its result.json.

An experiment is a module with ``NAME``, ``SUMMARY`` (one line for ``ganforge
lab list``), ``CLAIM`` (what the seeds say), ``PAGE`` (a few sentences for its
docs page) and ``run(lab) -> Outcome``. ``lab.pick(default, quick)`` chooses
a size: ``default`` is what the docs report (at most 2 minutes on 2 CPU
cores), ``quick`` is for tests. Every number an experiment prints is also in
``result.json`` with the seed, the size, the machine and the seconds taken.
"""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from ..device import cpu_name
from ..runs import atomic
from ..version import __version__


@dataclass
class Outcome:
    """The measured answer to a claim: the headline number, the goal, and whether it held."""
    headline: str                 # one line, e.g. "mean |D - D*| = 0.011 (goal <= 0.02)"
    held: Optional[bool]          # None: the claim has no pass/fail (a picture, a measurement to report)
    numbers: dict[str, Any]
    figures: list[str] = field(default_factory=list)   # filled in by Lab


class Lab:
    """The folder of one experiment run and the helpers to fill it."""

    def __init__(self, out: Path, size: str = "default", seed: int = 0, threads: Optional[int] = None, say=print,
                 final: Optional[Path] = None):
        """``out``: the folder written now; ``final``: where it will be once finished (for messages)."""
        self.out, self.size, self.seed, self.say = Path(out), size, seed, say
        self.final = Path(final) if final is not None else self.out
        self.figures = self.out / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        # never more threads than the process was given (OMP_NUM_THREADS, torch's default: the cores): two
        # threads on a core another process keeps busy made a toy D's step 60x slower (the test suite's workers)
        cap = max(1, min(2, torch.get_num_threads(), os.cpu_count() or 1))
        self.threads = min(threads or 2, cap)
        self.threads_for_images = cap                               # convolutions gain from a second core
        self.written: list[str] = []

    def pick(self, default, quick):
        return quick if self.size == "quick" else default

    def generator(self, purpose: str) -> torch.Generator:
        from ..rng import derive
        return torch.Generator().manual_seed(derive(self.seed, purpose))

    def save_figure(self, fig, name: str) -> Path:
        """Save a matplotlib figure as figures/<name>.png and close it."""
        from ..viz.plots import close
        path = self.figures / f"{name}.png"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        close(fig)
        atomic.write_bytes(path, buf.getvalue())
        self.written.append(str(path.relative_to(self.out)))
        return path

    def save_figure_array(self, arr, name: str) -> Path:
        """Save an (H, W, 3) uint8 array as figures/<name>.png."""
        from ..viz.grid import png_bytes
        path = self.figures / f"{name}.png"
        atomic.write_bytes(path, png_bytes(arr))
        self.written.append(str(path.relative_to(self.out)))
        return path

    def save_animation(self, frames: list, name: str, fps: float = 8, mp4: bool = False) -> list[Path]:
        """Frames (H, W, 3 uint8 arrays) as figures/<name>.gif (and .mp4)."""
        from ..viz.movie import write_gif, write_mp4
        paths = [self.figures / f"{name}.gif"]
        write_gif(frames, paths[0], fps)
        if mp4:
            paths.append(self.figures / f"{name}.mp4")
            write_mp4(frames, paths[1], fps)
        self.written += [str(p.relative_to(self.out)) for p in paths]
        return paths


def machine() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "ganforge": __version__}


def run_experiment(module, out: Path, size: str = "default", seed: int = 0, say=print, final: Optional[Path] = None,
                   **options) -> dict:
    """Run one experiment into ``out`` (to be moved to ``final``) and write its result.json; returns the result."""
    lab = Lab(out, size, seed, threads=getattr(module, "THREADS", None), say=say, final=final)
    threads = torch.get_num_threads()
    torch.set_num_threads(lab.threads)
    t0 = time.perf_counter()
    try:
        outcome: Outcome = module.run(lab, **options)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    result = {"name": module.NAME, "claim": module.CLAIM, "headline": outcome.headline, "held": outcome.held,
              "numbers": outcome.numbers, "figures": lab.written, "size": size, "seed": seed,
              "seconds": round(seconds, 1), "machine": machine()}
    atomic.write_json(lab.out / "result.json", result, indent=2)
    return result
