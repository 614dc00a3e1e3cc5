"""The non-finite guard: what a run does when a loss or a gradient is NaN or infinite.

Every update is checked after its backward pass (and the gradient all-reduce
of data-parallel training) and before the optimizer step: the loss and the
norm of every gradient, fused into one host sync. A failing update is
dropped before it can touch the weights or the optimizer's moments, as
mixed-precision training drops an update whose gradients overflowed
(Micikevicius et al. 2018). The run then does what ``guard.nonfinite`` says:

- ``skip``: go on with the next batch;
- ``rollback``: reload the newest checkpoint and multiply both learning rates
  by ``guard.lr_factor``; the same batches come again, with smaller steps
  (PaLM restarted from a checkpoint before each loss spike, Chowdhery et al.
  2022);
- ``stop``: stop at once.

``guard.max_failures`` failures between two checkpoints stop the run with
one line that names the likely cause; the newest checkpoint is left intact.
With no failure the guard changes no number, so runs stay bit-for-bit
repeatable and resumable.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..errors import UserError

NETS = {"d": "D", "g": "G"}


class Diverged(UserError):
    """Training stopped on repeated NaN or Inf values; the newest checkpoint is intact."""

    exit_code = 3


def nonfinite(loss: Optional[torch.Tensor], opt: torch.optim.Optimizer) -> Optional[str]:
    """None when the loss (if given) and every gradient of ``opt``'s parameters are finite, else what is not
    ("loss" or "gradient"). One host sync; a second only on failure, to say which."""
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    flags = []
    if loss is not None:
        flags.append(torch.isfinite(loss.detach()).all())
    if grads:
        flags.append(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())
    if not flags or bool(torch.stack(flags).all()):
        return None
    return "loss" if loss is not None and not bool(torch.isfinite(loss.detach()).all()) else "gradient"


def describe(failed: list, stats: list) -> str:
    """'D's loss is nan' from the failed updates of one iteration and its statistics."""
    which, kind = failed[0]
    net = NETS.get(which, which.upper())
    if kind == "gradient":
        return f"{net}'s gradient is not finite"
    for part in stats:
        for k in (f"loss_{which}", "penalty" if which == "d" else ""):
            if k in part and not math.isfinite(x := float(part[k])):
                return f"{net}'s {'loss' if k.startswith('loss') else k} is {x}"
    return f"{net}'s loss is not finite"


def likely_cause(cfg, failed: list, recent: list, nets: dict) -> str:
    """A guess at why updates keep failing, with what to change; ``recent``: the last metrics.jsonl records."""
    which = failed[-1][0]
    key = "d" if which == "d" else "g"
    name = NETS.get(which, "G")
    lr = getattr(cfg.optim, key).lr
    for net_name, net in nets.items():
        if any(not bool(torch.isfinite(p).all()) for p in net.parameters()):
            return (f"{net_name}'s weights are already NaN or Inf (they were written by an update the guard did not "
                    f"check): resume from an earlier checkpoint")
    if cfg.precision in ("bf16", "fp16"):
        return (f"an overflow in {cfg.precision} autocast: try precision=fp32, or a lower optim.{key}.lr (now {lr:g})")
    norms = [r.get(f"grad_{key}") for r in recent if isinstance(r.get(f"grad_{key}"), (int, float))]
    norms = [n for n in norms if math.isfinite(n)]
    if len(norms) >= 2 and norms[0] > 0 and norms[-1] / norms[0] > 10:
        return (f"{name}'s updates diverged (its gradient norm rose from {norms[0]:.3g} to {norms[-1]:.3g} over the "
                f"last {len(norms)} log lines): lower optim.{key}.lr (now {lr:g})"
                + ("" if cfg.penalty.name != "none" else " or add a penalty on D (penalty=r1)"))
    return f"a learning rate too high for this game: lower optim.{key}.lr (now {lr:g}) or use guard.nonfinite=rollback"


class Guard:
    """The guard's state in one run (failures since the last checkpoint, the learning-rate scale its rollbacks
    left, the last metrics records) and what it does when an update was dropped."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.failures = 0           # non-finite updates since the last checkpoint
        self.dropped = 0            # ... since the last metrics line
        self.lr_scale = 1.0         # the product of guard.lr_factor over the rollbacks so far
        self.recent: list = []      # the last few metrics records, for the diagnosis
        self.start_state = None     # rollback target before the first checkpoint

    def note(self, record: dict) -> None:
        """A metrics line was written: it carries the dropped count, and joins the recent ones."""
        if self.dropped:
            record["nonfinite"], self.dropped = self.dropped, 0
        self.recent = (self.recent + [record])[-5:]

    def on_nonfinite(self, trainer, stats: list) -> bool:
        """An update of this iteration was dropped: skip it, roll the trainer back (True), or stop, as
        guard.nonfinite says."""
        from ..runs import checkpoint
        g, failed = self.cfg.guard, trainer.precision.failed
        what = describe(failed, stats)
        self.failures += 1
        self.dropped += 1
        newest = checkpoint.list_checkpoints(trainer.run_dir / "checkpoints")
        since = f"the checkpoint of step {checkpoint.step_of(newest[-1])}" if newest else "the start"
        if g.nonfinite == "stop" or self.failures >= g.max_failures:
            count = ("" if g.nonfinite == "stop" else
                     f"{self.failures} non-finite updates since {since} (last: ") + what
            cause = likely_cause(self.cfg, failed, self.recent, {"G": trainer.G, "D": trainer.D})
            keep = (f"checkpoint {newest[-1].name} is intact" if newest else "no checkpoint was written")
            raise Diverged(f"stopped at step {trainer.step}: {count}{'' if g.nonfinite == 'stop' else ')'}; "
                           f"likely cause: {cause}; {keep}")
        tally = f"({self.failures} of {g.max_failures} allowed between checkpoints)"
        if g.nonfinite == "skip":
            trainer.say(f"step {trainer.step}: {what}; update skipped {tally}")
            return False
        try:        # never onto a checkpoint that does not pass the checks (NaN weights): the newest that does
            found = checkpoint.latest(trainer.run_dir / "checkpoints", map_location="cpu", warn=trainer.warn,
                                      check=trainer.check_state) if newest else None
        except UserError as e:
            raise Diverged(f"stopped at step {trainer.step}: {what}, and there is no checkpoint to roll back to: "
                           f"{e}") from None
        state = found[1] if found else self.start_state
        failures, scale = self.failures, self.lr_scale * g.lr_factor
        at = trainer.step
        trainer.load_state_dict(state)
        self.failures, self.lr_scale, self.dropped = failures, scale, 0
        if trainer.dist.main:
            trainer.metrics.truncate_after(trainer.step)
        trainer.set_lr()
        o = trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]
        trainer.say(f"step {at}: {what}; rolled back to step {trainer.step} with learning rates x{scale:g} "
                    f"(G {o[0]:.3g}, D {o[1]:.3g}) {tally}")
        return True
