"""Schedules of scalar hyperparameters over a run: one mechanism for learning rates, R1/R2's gamma, Adam's beta2, the
EMA half-life and ADA's target.

A schedule is a string, parsed once (one clear line for a mistake) and evaluated as a pure function of the
step, so a resumed run takes the same values as one that never stopped. The shapes are those of the GAN
literature's recipes: StyleGAN2-ADA's ramps, R3GAN's cosine decays of gamma, beta2 and the learning rate
(Huang et al. 2024, "The GAN is dead; long live the GAN!"), and the step-wise drops of older training code.

    ""                         the configured value throughout (constant)
    linear:END                 from the configured value at the start to END at the last step
    cosine:END                 the same with a half-cosine (Loshchilov & Hutter 2017, SGDR, without restarts)
    ...,start=F,stop=F         the change happens between fractions F of the run (defaults 0 and 1)
    ...,warmup=F               times a linear ramp from 0 to 1 over the first F of the run (Goyal et al. 2017)
    warmup:F                   the ramp alone
    piecewise:F1=V1;F2=V2      the configured value, then V1 from fraction F1 of the run, V2 from F2, ...

Values are absolute, in the units of the hyperparameter, except the learning rates' schedule (``schedule.lr``),
whose values multiply each optimizer's own rate (``cosine:0.25``: both end at a quarter of theirs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UserError
from .schema import opt

SHAPES = ("constant", "linear", "cosine", "warmup", "piecewise")


@dataclass
class ScheduleConfig:
    """Schedules of scalar hyperparameters over the run (ganforge.schedule: linear:END, cosine:END with ,start=F
    ,stop=F ,warmup=F; warmup:F; piecewise:F1=V1;F2=V2); empty: the configured value throughout."""
    lr: str = opt("", "both learning rates, as factors of each optimizer's lr (cosine:0.25 ends at a quarter); "
                  "given, it replaces optim.schedule's decay; empty: that decay, if any")
    gamma: str = opt("", "penalty.weight (R1/R2's gamma, gp's lambda), e.g. R3GAN's cosine:0.005")
    beta2: str = opt("", "Adam's beta2 of both optimizers (rmsprop: alpha), e.g. R3GAN's cosine from 0.9 to 0.99")
    ema: str = opt("", "ema.half_life_kimg")
    augment_target: str = opt("", "augment.target, ADA's r_t target")


@dataclass(frozen=True)
class Schedule:
    shape: str = "constant"
    end: float = 0.0
    start: float = 0.0
    stop: float = 1.0
    warmup: float = 0.0
    points: tuple = ()          # piecewise: ((fraction, value), ...), by fraction

    def value(self, base: float, step: int, steps: int) -> float:
        """The value before update ``step`` (0-based) of a run of ``steps``, from the configured ``base``."""
        v = base
        if self.shape in ("linear", "cosine") and step >= self.start * steps:
            t0, t1 = self.start * steps, self.stop * steps
            frac = min(max((step - t0) / max(t1 - t0, 1), 0.0), 1.0)
            shape = 1.0 - frac if self.shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))
            v = self.end + (base - self.end) * shape
        elif self.shape == "piecewise":
            for at, value in self.points:
                if step >= at * steps:
                    v = value
        if self.warmup and step < self.warmup * steps:
            v *= step / (self.warmup * steps)
        return v

    @property
    def constant(self) -> bool:
        return self.shape == "constant" and not self.warmup


def lr_schedule(spec: str, old: str = "constant", decay_start: float = 0.0, final_lr: float = 0.0) -> Schedule:
    """The learning rates' schedule: ``schedule.lr``, else the decay of ``optim.schedule`` (older configs), the same
    curve (linear or cosine from 1 to ``final_lr`` after ``decay_start`` of the run)."""
    if spec or old == "constant":
        return parse(spec, "schedule.lr")
    return Schedule(old, final_lr, start=decay_start)


def parse(spec: str, key: str = "schedule") -> Schedule:
    """The Schedule a string describes (module doc); a UserError naming ``key`` for anything else."""
    text = (spec or "").strip()
    if text in ("", "constant"):
        return Schedule()

    def bad(why: str) -> UserError:
        return UserError(f"{key}={spec}: {why} (give linear:END or cosine:END with optional ,start=F ,stop=F "
                         ",warmup=F; warmup:F; or piecewise:F1=V1;F2=V2; F are fractions of the run)")

    def number(s: str, what: str, fraction: bool = False) -> float:
        try:
            x = float(s)
        except ValueError:
            raise bad(f"{what} {s!r} is not a number") from None
        if not math.isfinite(x) or (fraction and not 0.0 <= x <= 1.0):
            raise bad(f"{what} {s!r} must be " + ("a fraction in [0, 1]" if fraction else "finite"))
        return x
    shape, _, rest = text.partition(":")
    shape = shape.strip()
    if shape not in SHAPES[1:]:
        raise bad(f"unknown shape {shape!r}")
    if not rest.strip():
        raise bad(f"{shape} needs a value after the colon")
    if shape == "warmup":
        return Schedule("constant", warmup=number(rest, "warmup", fraction=True))
    if shape == "piecewise":
        points = []
        for part in rest.split(";"):
            at, eq, value = part.partition("=")
            if not eq:
                raise bad(f"piece {part!r} is not F=V")
            points.append((number(at, "fraction", fraction=True), number(value, "value")))
        if [p[0] for p in points] != sorted(p[0] for p in points):
            raise bad("the fractions must increase")
        return Schedule("piecewise", points=tuple(points))
    end, *options = rest.split(",")
    kw = {}
    for option in options:
        name, eq, value = option.partition("=")
        if name.strip() not in ("start", "stop", "warmup") or not eq:
            raise bad(f"unknown option {option!r}")
        kw[name.strip()] = number(value, name.strip(), fraction=True)
    out = Schedule(shape, number(end, "end"), **kw)
    if out.stop <= out.start:
        raise bad("stop must come after start")
    return out


def check(cfg) -> None:
    """A run's schedules parsed and matched with what they schedule (config.complete): one line for a mistake."""
    sch = cfg.schedule
    for key in ("lr", "gamma", "beta2", "ema", "augment_target"):
        parse(getattr(sch, key), f"schedule.{key}")
    for key, missing in (("gamma", cfg.penalty.name == "none" and "no penalty (penalty=r1, r1+r2, gp ...)"),
                         ("ema", not cfg.ema.enabled and "ema.enabled=false"),
                         ("augment_target", not (cfg.augment.name == "ada" and cfg.augment.p is None) and
                          "no adaptive ADA (augment=ada without augment.p)"),
                         ("beta2", "sgd" in (cfg.optim.g.name, cfg.optim.d.name) and "an sgd optimizer (no beta2)")):
        if getattr(sch, key) and missing:
            raise UserError(f"schedule.{key}={getattr(sch, key)} has nothing to schedule: this run has {missing}")
