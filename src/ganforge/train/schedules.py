"""The config's schedules applied to a trainer before each step: learning rates, gamma, beta2, EMA half-life, ADA target.

Each is a ganforge.schedule.Schedule, a pure function of the step, so a resume continues the same curves without
any state in the checkpoint. The learning rates' schedule also carries the NaN guard's rollback scale
(train.guard). What is scheduled is logged beside the learning rates in metrics.jsonl (``gamma``, ``beta2_g``,
``beta2_d``, ``ema_half_life_kimg``, ``ada_target``).
"""
from __future__ import annotations

from ..schedule import lr_schedule, parse

OTHERS = ("gamma", "beta2", "ema", "augment_target")


def build(cfg) -> dict:
    """name -> Schedule for the config (``lr`` always; the others where they are not constant)."""
    o = cfg.optim
    out = {"lr": lr_schedule(cfg.schedule.lr, o.schedule, o.decay_start, o.final_lr)}
    for key in OTHERS:
        s = parse(getattr(cfg.schedule, key), f"schedule.{key}")
        if not s.constant:
            out[key] = s
    return out


def apply(trainer) -> None:
    """Set every scheduled value for the update about to be made (``trainer.step``)."""
    cfg, step, steps, s = trainer.cfg, trainer.step, trainer.cfg.steps, trainer.schedules
    pairs = ((trainer.opt_g, cfg.optim.g), (trainer.opt_d, cfg.optim.d))
    if not (s["lr"].constant and trainer.guard.lr_scale == 1.0):
        f = trainer.guard.lr_scale * s["lr"].value(1.0, step, steps)
        for opt, c in pairs:
            for group in opt.param_groups:
                group["lr"] = c.lr * f
    if "gamma" in s:
        trainer.game.reg.weight = s["gamma"].value(cfg.penalty.weight, step, steps)
    if "beta2" in s:
        for opt, c in pairs:
            b2 = s["beta2"].value(c.beta2, step, steps)
            for group in opt.param_groups:
                if "betas" in group:
                    group["betas"] = (group["betas"][0], b2)
                elif "alpha" in group:              # rmsprop's beta2
                    group["alpha"] = b2
    if "ema" in s:
        trainer.ema.half_life_kimg = s["ema"].value(cfg.ema.half_life_kimg, step, steps)
    if "augment_target" in s:
        trainer.game.augment.target = s["augment_target"].value(cfg.augment.target, step, steps)


def same_so_far(schedules: dict, step: int, old: int, new: int) -> bool:
    """Every schedule took, at every step before ``step``, the value it takes when the run has ``new`` steps
    instead of ``old`` (a schedule drawn over the run's length, e.g. ``linear:0,start=0.75``, may not)."""
    return all(s.value(1.0, t, old) == s.value(1.0, t, new) for s in schedules.values() if not s.constant
               for t in range(step))


def logged(trainer) -> dict:
    """The scheduled values other than the learning rates, for a metrics line."""
    s, out = trainer.schedules, {}
    if "gamma" in s:
        out["gamma"] = trainer.game.reg.weight
    if "beta2" in s:
        for name, opt in (("g", trainer.opt_g), ("d", trainer.opt_d)):
            group = opt.param_groups[0]
            out[f"beta2_{name}"] = group["betas"][1] if "betas" in group else group.get("alpha")
    if "ema" in s:
        out["ema_half_life_kimg"] = trainer.ema.half_life_kimg
    if "augment_target" in s:
        out["ada_target"] = trainer.game.augment.target
    return out
