"""The progress display of a training run: a one-line bar on a terminal, a plain line every few seconds elsewhere."""
from __future__ import annotations

import math
import sys
import time
from typing import Optional


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """A one-line bar on a terminal, or a plain line every few seconds elsewhere."""

    def __init__(self, total: int, mode: str = "auto", stream=None, every_s: float = 5.0):
        self.total, self.stream = total, stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode, self.every_s = mode, every_s
        self._last_line = 0.0
        self._t0: Optional[float] = None
        self._s0 = 0

    def start(self, step: int) -> None:
        self._t0, self._s0 = time.time(), step

    def text(self, step: int, s: dict) -> str:
        done = step - self._s0
        elapsed = time.time() - (self._t0 or time.time())
        eta = (self.total - step) * elapsed / done if done > 0 else float("inf")
        pct = step / self.total
        bar = "#" * int(pct * 20) + "-" * (20 - int(pct * 20))
        width = len(str(self.total))
        parts = [f"step {step:>{width}}/{self.total} [{bar}] {pct:4.0%}", f"{s.get('img_s', 0):6.0f} img/s"]
        for group in ((("D", "loss_d"), ("G", "loss_g"), ("L1", "loss_l1")), (("D(x)", "d_real"), ("D(G(z))", "d_fake"))):
            shown = " ".join(f"{label} {s[key]:.3f}" for label, key in group if key in s)   # what this game computes
            if shown:
                parts.append(shown)
        return " | ".join(parts + [f"ETA {_fmt_time(eta)}"])

    def update(self, step: int, stats: dict, force: bool = False) -> None:
        if self.mode == "off":
            return
        line = self.text(step, stats)
        if self.mode == "bar":
            self.stream.write("\r" + line + "\033[K")
            self.stream.flush()
        elif force or time.time() - self._last_line >= self.every_s:
            self._last_line = time.time()
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()

    def say(self, message: str, always: bool = False) -> None:
        """One line on the stream; ``always``: also with progress off (warnings the user must see)."""
        if self.mode == "off" and not always:
            return
        if self.mode == "bar":
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")
        self.stream.flush()
