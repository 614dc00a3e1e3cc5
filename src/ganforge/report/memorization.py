"""The memorisation section of report.html: the verdict of the run's last memorisation check and its closest pairs.

``ganforge eval RUN --metrics memorization`` (metrics.memorization: the
authenticity criterion of Alaa et al. 2022, calibrated by held-out training
images) writes its entry to RUN/eval.json and draws the closest (sample,
training image) pairs to RUN/memorization.png; this section shows both when
they are there, and nothing otherwise.
"""
from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..metrics.memorization import PICTURE
from ..runs import regular


def last_entry(run_dir: Path) -> Optional[dict]:
    """The newest memorisation entry of RUN/eval.json (None when there is none, or the file is unreadable)."""
    try:
        text = regular.read_text(Path(run_dir) / "eval.json")
        evaluations = json.loads(text)["evaluations"] if text else []
    except (UserError, ValueError, KeyError, TypeError):
        return None
    for rec in reversed(evaluations if isinstance(evaluations, list) else []):
        entry = rec.get("metrics", {}).get("memorization") if isinstance(rec, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("verdict"), str):
            return {**entry, "step": rec.get("step")}
    return None


def section(run_dir: Optional[Path]) -> str:
    """The heading, the verdict and the picture, or "" when the run was never checked."""
    if run_dir is None:
        return ""
    entry = last_entry(run_dir)
    try:
        png = regular.read_bytes(Path(run_dir) / PICTURE)
    except UserError:
        png = None
    if entry is None and png is None:
        return ""
    parts = ["<h2>Memorisation</h2>"]
    if entry is not None:
        cls = "finding" if entry.get("copying") else "ok"
        at = f" (the run at step {entry['step']})" if entry.get("step") is not None else ""
        parts.append(f"<p class='{cls}'>{escape(entry['verdict'])}{escape(at)}. Criterion: the authenticity of "
                     "Alaa et al. 2022 in the evaluator's features; baseline: held-out training images.</p>")
    if png is not None:
        src = "data:image/png;base64," + base64.b64encode(png).decode()
        parts.append(f"<figure><img class='px' src='{src}' alt='closest pairs'><figcaption>top: the generated "
                     "samples nearest to a training image, closest first; below each: that training image"
                     "</figcaption></figure>")
    return "".join(parts)
