"""The playground's settings and drawn points, checked on the server before anything uses them.

Every value a page sends is parsed here: unknown keys, wrong types, numbers
out of range and non-finite numbers raise ``BadInput`` with one sentence
that names the setting and what is allowed; the app answers it with a 400.
Choosing an objective without a regularizer brings the one it is used with
(wgan-gp its gradient penalty of weight 10, wasserstein clipping at 0.01).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..games.plain import REGULARIZERS
from ..losses import LOSSES
from ..penalties import DEFAULT_WEIGHT

DATA = ("ring", "grid", "spiral", "drawn")
VIEW = 3.0            # drawn points lie in [-VIEW, VIEW]^2
MOST_POINTS = 2000


class BadInput(ValueError):
    """A request the playground refuses; its message is shown to the user."""


@dataclass(frozen=True)
class Settings:
    data: str = "ring"
    loss: str = "nonsaturating"
    reg: str = "none"
    weight: float = 0.0
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    d_steps: int = 1
    batch: int = 256
    hidden: int = 64
    layers: int = 3
    z_dim: int = 2
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


# name -> (kind, allowed): a tuple of choices, or (low, high) inclusive for numbers
RULES = {
    "data": ("choice", DATA),
    "loss": ("choice", tuple(LOSSES)),
    "reg": ("choice", REGULARIZERS),
    "weight": ("float", (0.0, 1000.0)),
    "lr_g": ("float", (1e-6, 0.1)),
    "lr_d": ("float", (1e-6, 0.1)),
    "d_steps": ("int", (1, 20)),
    "batch": ("int", (8, 2048)),
    "hidden": ("int", (4, 512)),
    "layers": ("int", (1, 6)),
    "z_dim": ("int", (1, 16)),
    "seed": ("int", (0, 2**31 - 1)),
}
assert set(RULES) == {f.name for f in fields(Settings)}


def _value(name: str, v):
    kind, allowed = RULES[name]
    if kind == "choice":
        if not isinstance(v, str) or v not in allowed:
            raise BadInput(f"{name} must be one of {', '.join(allowed)}, not {v!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadInput(f"{name} must be a number, not {v!r}")
    if kind == "int":
        if isinstance(v, float) and not v.is_integer():
            raise BadInput(f"{name} must be a whole number, not {v!r}")
        v = int(v)
    else:
        v = float(v)
        if not math.isfinite(v):
            raise BadInput(f"{name} must be a finite number, not {v!r}")
    lo, hi = allowed
    if not lo <= v <= hi:
        raise BadInput(f"{name} must be between {lo:g} and {hi:g}, not {v:g}")
    return v


def loss_regularizer(loss: str) -> tuple[str, float]:
    """The regularizer and weight an objective is used with: wgan-gp its penalty, wasserstein its clipping."""
    o = LOSSES[loss]
    if o.penalty != "none":
        return o.penalty, DEFAULT_WEIGHT[o.penalty]
    if o.clip:
        return "clip", o.clip
    return "none", 0.0


def parse_settings(body, base: Settings) -> Settings:
    """``base`` with the keys of the JSON object ``body`` changed; raises BadInput."""
    if not isinstance(body, dict):
        raise BadInput("the settings must be a JSON object")
    unknown = sorted(set(body) - set(RULES))
    if unknown:
        raise BadInput(f"unknown setting {unknown[0]!r}; the settings are {', '.join(RULES)}")
    new = {**base.as_dict(), **{k: _value(k, v) for k, v in body.items()}}
    if "loss" in body and "reg" not in body and new["loss"] != base.loss:
        new["reg"], new["weight"] = loss_regularizer(new["loss"])       # an objective brings its usual regularizer
    if new["reg"] == "clip" and not 0 < new["weight"] <= 1:
        raise BadInput(f"with reg clip, weight is the clipping bound c and must be in (0, 1], not {new['weight']:g}")
    return Settings(**new)


def parse_points(body) -> list[tuple[float, float]]:
    """The points drawn on the canvas: {"points": [[x, y], ...]}, 1 to MOST_POINTS in [-VIEW, VIEW]^2."""
    pts = body.get("points") if isinstance(body, dict) else None
    if not isinstance(pts, list) or not pts:
        raise BadInput('send {"points": [[x, y], ...]} with at least one point')
    if len(pts) > MOST_POINTS:
        raise BadInput(f"at most {MOST_POINTS} points, not {len(pts)}")
    out = []
    for p in pts:
        ok = isinstance(p, list) and len(p) == 2 and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in p)
        if not ok:
            raise BadInput(f"each point must be [x, y] with two finite numbers, not {p!r}"[:200])
        if max(abs(p[0]), abs(p[1])) > VIEW:
            raise BadInput(f"points must lie in [-{VIEW:g}, {VIEW:g}]^2, not {p!r}")
        out.append((float(p[0]), float(p[1])))
    return out


def parse_count(body, name: str = "steps", most: int = 1000) -> int:
    """An optional whole number ``name`` of the JSON object (default 1), 1 to ``most``."""
    if body is None:
        return 1
    if not isinstance(body, dict):
        raise BadInput("the request must be a JSON object")
    v = body.get(name, 1)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= most:
        raise BadInput(f"{name} must be a whole number from 1 to {most}, not {v!r}")
    return v
