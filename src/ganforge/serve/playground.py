"""The 2-D playground of ``ganforge serve``: one GAN on toy data, trained in Python, watched live.

In the spirit of GAN Lab (Kahng et al. 2019, "GAN Lab: Understanding Complex
Deep Generative Models using Interactive Visual Experimentation"), but the
game is ganforge's own: the registry's objectives and regularizers
(games.plain.d_update / g_update, Goodfellow et al. 2014 Algorithm 1 with
k = d_steps), the MLPs of nets.mlp, and the VEEGAN/PacGAN mode count of
metrics.modes. A frame holds what the page draws: real samples, G's samples
of fixed codes, D's output on a grid (the heatmap), the direction G's next
update moves each sample (minus the gradient of G's loss at it: the arrows),
and the numbers. A background thread steps the game while it runs; the page
only watches (server-sent events) and sends commands.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Optional

import torch

from ..data.toy import GaussianMixture, grid, ring, spiral
from ..games.plain import adam, d_update, g_update
from ..losses import LOSSES
from ..metrics.modes import mode_metrics
from ..nets.mlp import MLPDiscriminator, MLPGenerator
from .params import VIEW, BadInput, Settings

HEAT = 48           # heatmap cells per side
SHOW = 300          # generated and real samples drawn
CODES = 1000        # fixed codes whose samples are counted for the modes
KEEP = 2000         # history rows kept; beyond, every other row is dropped and the stride doubles
DRAWN_STD = 0.05
IDLE_PAUSE = 30.0   # seconds without a watching page after which a running game pauses


def density_of(name: str, points: Optional[list] = None) -> GaussianMixture:
    """The data: ring of 8 (radius 2), grid of 25 (spacing 1), the spiral, or the drawn points."""
    if name == "ring":
        return ring(8, 2.0, 0.05)
    if name == "grid":
        return grid(5, 1.0, 0.05)
    if name == "spiral":
        return spiral()
    if not points:
        raise BadInput("draw some points on the canvas first (data drawn has none)")
    k = len(points)
    return GaussianMixture(torch.tensor(points, dtype=torch.float32), torch.full((k,), DRAWN_STD),
                           torch.full((k,), 1.0 / k))


def view_of(density: GaussianMixture) -> float:
    """Half the side of the square shown: the data with a margin, at least VIEW."""
    reach = float(density.means.abs().max() + 4 * density.std.max())
    return max(VIEW, math.ceil(reach * 1.15 * 2) / 2)


class Playground:
    """The game, its history and the thread that plays it; every method is safe to call from any thread."""

    def __init__(self, settings: Optional[Settings] = None):
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.points: list = []
        self.version = 0
        self.running = False
        self.closed = False
        self.seen = time.monotonic()
        self.reset(settings or Settings())
        self.thread = threading.Thread(target=self._run, name="ganforge-playground", daemon=True)
        self.thread.start()

    # ---- commands
    def reset(self, settings: Optional[Settings] = None, points: Optional[list] = None) -> None:
        with self.lock:
            s = settings or self.settings
            density = density_of(s.data, points if points is not None else self.points)
            if points is not None:
                self.points = list(points)
            self.settings, self.density, self.objective = s, density, LOSSES[s.loss]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s.seed)
                self.G = MLPGenerator(s.z_dim, (2,), s.hidden, s.layers, "relu")
                self.D = MLPDiscriminator((2,), s.hidden, s.layers)
            self.G.z_dim = s.z_dim
            self.opt_g, self.opt_d = adam(self.G, s.lr_g), adam(self.D, s.lr_d)
            self.gen = torch.Generator().manual_seed(s.seed)
            shown = torch.Generator().manual_seed(s.seed + 1)
            self.codes = torch.randn(CODES, s.z_dim, generator=shown)
            self.real_shown = density.sample(SHOW, shown)
            self.lim = view_of(density)
            axis = (torch.arange(HEAT, dtype=torch.float32) + 0.5) / HEAT * 2 * self.lim - self.lim
            yy, xx = torch.meshgrid(axis.flip(0), axis, indexing="ij")     # row 0 is the top of the canvas
            self.mesh = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
            self.step = 0
            self.history: list = []        # [step, loss_d, loss_g, d_real, d_fake]
            self.modes: list = []          # [step, modes covered]
            self.stride, self.thinned = 1, 0
            self.error: Optional[str] = None
            self.running = False
            self.version += 1
            self._frame = None

    def start(self) -> None:
        with self.lock:
            if self.error:
                raise BadInput(f"{self.error}; reset to play again")
            self.running = True
            self.seen = time.monotonic()
            self.wake.notify_all()

    def pause(self) -> None:
        with self.lock:
            self.running = False

    def close(self) -> None:
        with self.lock:
            self.closed, self.running = True, False
            self.wake.notify_all()

    def advance(self, n: int = 1) -> None:
        """n rounds of the game: d_steps updates of D, then one of G."""
        with self.lock:
            if self.error:
                raise BadInput(f"{self.error}; reset to play again")
            s = self.settings
            real = self.density.sample
            for _ in range(n):
                for _ in range(s.d_steps):
                    d = d_update(self.G, self.D, self.objective, self.opt_d, real(s.batch, self.gen), self.gen,
                                 s.reg, s.weight)
                g = g_update(self.G, self.D, self.objective, self.opt_g, s.batch, self.gen, real)
                self.step += 1
                row = [self.step, d["loss_d"], g["loss_g"], d["d_real"], d["d_fake"]]
                if not all(math.isfinite(v) for v in row):
                    self.error = f"the losses became non-finite at step {self.step} (try lower learning rates)"
                    self.running = False
                    return
                if self.step % self.stride == 0:
                    self._record(row)

    def _record(self, row: list) -> None:
        self.history.append(row)
        if len(self.history) >= KEEP:
            self.history = self.history[1::2]
            self.stride *= 2
            self.thinned += 1

    # ---- the thread
    def _run(self) -> None:
        chunk = 1
        while True:
            with self.lock:
                while not self.closed and not self.running:
                    self.wake.wait()
                if self.closed:
                    return
                if time.monotonic() - self.seen > IDLE_PAUSE:
                    self.running = False          # nobody is watching: do not burn the CPU
                    continue
                t = time.perf_counter()
                try:
                    self.advance(chunk)
                except Exception as e:                # shown on the page; the server goes on
                    self.error, self.running = f"training stopped: {type(e).__name__}: {e}", False
                took = time.perf_counter() - t
            chunk = max(1, min(200, round(chunk * 0.03 / max(took, 1e-4))))     # ~30 ms under the lock
            time.sleep(0.002)                                                  # let commands and frames in

    # ---- what the page draws
    def watched(self) -> None:
        self.seen = time.monotonic()

    def frame(self) -> dict:
        """The picture at the current step (computed once per step)."""
        with self.lock:
            key = (self.version, self.step)
            if self._frame is not None and self._frame[0] == key:
                return self._frame[1]
            G, D, prob = self.G, self.D, self.objective.probability
            with torch.no_grad():
                fake = G(self.codes)
                heat = D(self.mesh)
                heat = torch.sigmoid(heat) if prob else heat
            heat = torch.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)
            lo, hi = (0.0, 1.0) if prob else (float(heat.min()), float(heat.max()))
            cells = ((heat - lo) / max(hi - lo, 1e-12) * 255).round().clamp(0, 255).to(torch.uint8)
            shown = fake[:SHOW].detach().requires_grad_(True)
            D.requires_grad_(False)
            try:
                out_real = D(self.real_shown) if self.objective.g_needs_real else None
                loss_g = self.objective.g(D(shown), out_real) * SHOW      # per-sample terms of the mean
                (grad,) = torch.autograd.grad(loss_g, shown)
            finally:
                D.requires_grad_(True)
            m = mode_metrics(fake, self.density.means, self.density.std)
            if not self.modes or self.modes[-1][0] != self.step:
                self.modes.append([self.step, m["modes"]])
                if len(self.modes) > KEEP:
                    self.modes = self.modes[1::2]
                    self.thinned += 1
            f = {"version": self.version, "step": self.step, "running": self.running, "error": self.error,
                 "settings": self.settings.as_dict(), "lim": self.lim,
                 "real": _rounded(self.real_shown), "fake": _rounded(fake[:SHOW]), "arrows": _rounded(-grad, 5),
                 "heat": {"n": HEAT, "lo": lo, "hi": hi, "probability": prob, "cells": cells.tolist()},
                 "modes": {"covered": m["modes"], "of": m["of"], "hq": round(m["hq"], 1), "kl": round(m["kl"], 3)}}
            self._frame = (key, f)
            return f

    def history_since(self, seen: dict) -> dict:
        """The history rows a page has not seen. ``seen`` is the page's bookkeeping (updated here);
        ``full`` in the answer means 'replace yours' (after a reset, or when the history was thinned)."""
        with self.lock:
            full = seen.get("version") != self.version or seen.get("thinned") != self.thinned
            if full:
                seen.update(version=self.version, thinned=self.thinned, rows=0, modes=0)
            rows, modes = self.history[seen["rows"]:], self.modes[seen["modes"]:]
            seen["rows"] += len(rows)
            seen["modes"] += len(modes)
            return {"full": full, "rows": rows, "modes": modes, "stride": self.stride}


def _rounded(t: torch.Tensor, digits: int = 3) -> list:
    t = torch.nan_to_num(t.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)     # JSON has no NaN
    return [[round(float(a), digits), round(float(b), digits)] for a, b in t.detach().tolist()]
