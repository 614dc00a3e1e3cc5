"""Numeric precision: fp32, or bf16/fp16 autocast over fp32 master weights.

``auto`` is bf16 on CUDA GPUs that support it; on a CPU it stays ``auto``
here and the trainer times the run's own nets in fp32 and bf16 once the
data and nets exist (train.precision_auto: a flag cannot tell whether bf16
is faster on a given CPU; a measurement can).
fp16 uses a gradient scaler per optimizer (Micikevicius et al. 2018) and
needs CUDA. Losses and penalties are computed in fp32 from the nets' outputs.
"""
from __future__ import annotations

import contextlib
import torch

from ..errors import UserError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(precision: str, device: torch.device) -> str:
    """The precision a run on ``device`` trains with, where it is known before its nets exist: ``auto`` on a CPU
    stays ``auto`` (the trainer measures it: train.precision_auto.choose)."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "auto" if device.type == "cpu" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise UserError("precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return precision


class Precision:
    def __init__(self, mode: str, device: torch.device, check: str = "all"):
        """``check``: what backward_step verifies is finite before each optimizer step (train.guard):
        "all" (the loss and the gradients), "grads" (the gradients only: under data parallelism, where the
        all-reduced gradients are the one thing every process sees alike) or "off"."""
        self.mode, self.device, self.check = mode, device, check
        self.failed: list[tuple[str, str]] = []     # (net, "loss" | "gradient") of dropped updates; the trainer clears it
        self.scalers, self.skipped = {}, {}
        if mode == "fp16":          # (resolve() keeps fp16 to CUDA; the scaler itself also works on the CPU)
            self.scalers = {k: torch.amp.GradScaler(device.type) for k in ("g", "d")}
            self.skipped = {k: 0 for k in self.scalers}     # updates the scaler skipped (Inf/NaN scaled gradients)

    def autocast(self):
        if self.mode == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.mode])

    def backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, which: str, sync=None,
                      then=None) -> None:
        """zero_grad, backward and step for the optimizer of net ``which``; ``sync()`` runs between
        backward and step (the gradient all-reduce of data-parallel training). ``then()``, if given, is
        called after ``loss``'s backward has freed its graph and returns a second term (or None) whose
        gradients are added before the step (a penalty's own pass, as StyleGAN2's separate "Dreg" and "Greg"
        phases: the two graphs are never held at once). An update whose loss or gradients are not finite is dropped (the optimizer
        does not step) and noted in ``failed``."""
        from .guard import nonfinite
        opt.zero_grad(set_to_none=True)
        scaler = self.scalers.get(which)
        if scaler is None:
            loss.backward()
            extra = then() if then is not None else None
            if extra is not None:
                extra.backward()
                loss = loss.detach() + extra.detach()
            if sync is not None:
                sync()
            bad = nonfinite(loss if self.check == "all" else None, opt) if self.check != "off" else None
            if bad:
                opt.zero_grad(set_to_none=True)
                self.failed.append((which, bad))
                return
            opt.step()
        else:                       # fp16: the scaler itself skips steps whose scaled gradients overflowed
            if self.check == "all" and not bool(torch.isfinite(loss.detach()).all()):
                self.failed.append((which, "loss"))
                return
            scaler.scale(loss).backward()
            extra = then() if then is not None else None
            if extra is not None:
                if self.check == "all" and not bool(torch.isfinite(extra.detach()).all()):
                    opt.zero_grad(set_to_none=True)
                    self.failed.append((which, "loss"))
                    return
                scaler.scale(extra).backward()
            if sync is not None:
                sync()
            before = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            if scaler.get_scale() < before:          # it found Inf/NaN gradients, skipped the step, lowered the scale
                self.skipped[which] += 1

    def logged(self) -> dict:
        """For a metrics line under fp16: the updates each scaler has skipped since step 0, and its scale."""
        out = {f"fp16_skipped_{k}": n for k, n in self.skipped.items()}
        return {**out, **{f"fp16_scale_{k}": s.get_scale() for k, s in self.scalers.items()}}

    def state_dict(self) -> dict:
        state = {k: s.state_dict() for k, s in self.scalers.items()}
        return {**state, "skipped": dict(self.skipped)} if self.scalers else state

    def load_state_dict(self, state: dict) -> None:
        for k, s in self.scalers.items():
            if k in state:
                s.load_state_dict(state[k])
        self.skipped.update({k: int(v) for k, v in state.get("skipped", {}).items() if k in self.skipped})


def compiled(net: torch.nn.Module, warn) -> torch.nn.Module:
    """``torch.compile(net)`` whose failures fall back to eager execution with one warning.

    Compilation happens at the first call; TorchDynamo's ``suppress_errors``
    turns a failure there into eager execution of the same module (the
    weights are shared, so checkpoints always hold the plain module)."""
    try:
        import torch._dynamo
        torch._dynamo.config.suppress_errors = True
        return torch.compile(net)
    except Exception as e:                      # no compiler backend at all on this platform
        warn(f"compile=true: torch.compile is unavailable here ({type(e).__name__}: {str(e)[:120]}); running eager")
        return net

