"""The memory a run will need, estimated from its config before any network or batch is allocated.

The nets are built on PyTorch's ``meta`` device (shapes without storage) and
run forward once on a meta batch, under a dispatch mode that adds up the bytes
of every tensor each operator returns: what autograd may keep for the backward
pass. The estimate is

    weights x (1 + gradient + 2 Adam moments) for G and D, + G's moving average
    + every tensor G's and D's forward makes for one batch, x 2 (kept for backward, and their gradients)
    + the fixed-z codes and samples of a dump (log.n_samples), twice (the grid is made from a copy)
    + 100 MB of working memory that any training process takes (measured: benchmarks/memory_estimate.py)
    + eval.n codes and features (Inception's 2048 numbers a sample), three times over

and is compared with the memory free on the run's device (ganforge.memory.check) by the trainer before
any net is built, so before the run folder is made. benchmarks/memory_estimate.py measures it against the
peak memory of real runs: 0.9 to 2.3 times what they used on the presets (docs/reliability.md). A refusal is
one line, and ``--insist`` passes it.
"""
from __future__ import annotations

import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..memory import check, tensor_bytes
from ..nets import FAMILIES, build_nets
from ..nets.layers import no_power_iterations_on_meta

ACTIVATION_FACTOR = 2
OVERHEAD = 100e6


class _Allocations(TorchDispatchMode):
    """Adds up the bytes of every tensor an operator returns (views excluded: they share storage)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.bytes += t.numel() * t.element_size()
        return out


def _outputs_bytes(module: torch.nn.Module, *inputs) -> float:
    """Bytes of every tensor made by one forward of ``module`` on meta tensors (functional ops included: a
    modulated convolution's per-sample weights count)."""
    with _Allocations() as count:
        module(*inputs)
    return count.bytes


def _first_that_runs(module: torch.nn.Module, *calls) -> float:
    """Output bytes of the first call that ``module`` takes; a container of judges (CycleGAN's two Ds): the sum
    over its parts."""
    for inputs in calls:
        try:
            return _outputs_bytes(module, *inputs)
        except (TypeError, RuntimeError, NotImplementedError):
            continue
    return sum(_first_that_runs(part, *calls) for part in module.children())


def _per_sample_activations(cfg, data, G, D) -> float:
    """Bytes of G's and D's activations for one sample (a meta forward of a batch of 2, halved)."""
    n, meta = 2, torch.device("meta")
    x = torch.empty(n, *data.shape, device=meta)
    if FAMILIES[cfg.model.name].game != "gan":                   # image-to-image: G(a), D(a, b) or D(b)
        a = torch.empty(n, *data.shape_a, device=meta)
        return (_outputs_bytes(G, a) + _first_that_runs(D, (a, x), (x,))) / n
    z = torch.empty(n, cfg.model.z_dim, device=meta)
    y = torch.zeros(n, dtype=torch.long, device=meta) if getattr(G, "n_classes", 0) else None
    g = _outputs_bytes(G, *((z,) if y is None else (z, y)))
    d = _outputs_bytes(D, *((x,) if y is None else (x, y)))
    return (g + d) / n


def estimate(cfg, data) -> dict:
    """The bytes a run of ``cfg`` on ``data`` will hold, by part (an empty dict where the nets do not build
    on the meta device; then nothing is checked)."""
    try:
        with no_power_iterations_on_meta():
            with torch.device("meta"):
                G, D = build_nets(cfg.model, data.shape, len(data.classes or ()), data.shape_a)
            per_sample = _per_sample_activations(cfg, data, G, D)
    except Exception:           # a family that cannot run on meta tensors: no estimate rather than a wrong one
        return {}
    p_g = sum(p.numel() for p in G.parameters()) * 4.0
    p_d = sum(p.numel() for p in D.parameters()) * 4.0
    sample = tensor_bytes(1, data.shape) + cfg.model.z_dim * 4.0
    n_dump = cfg.log.n_samples or (64 if data.kind == "image" else 1000)
    return {"weights and optimizer": 4 * (p_g + p_d) + (p_g if cfg.ema.enabled else 0.0),
            "activations": ACTIVATION_FACTOR * cfg.batch_size * per_sample,
            "samples": 2 * n_dump * sample, "working memory": OVERHEAD,
            "evaluation": 0.0 if cfg.eval.metrics == "none" else     # eval.n codes and features, and the real set's
            tensor_bytes(3 * cfg.eval.n, (2048 if data.kind == "image" else data.shape[0],))}


def check_run(cfg, data, device) -> None:
    """Refuse a run whose estimate exceeds the memory free on ``device``, with the estimate and its largest
    part in the line."""
    parts = estimate(cfg, data)
    if not parts:
        return
    big = max(parts, key=parts.get)
    fixes = {"weights and optimizer": "make the networks smaller (model.*width*)",
             "activations": f"lower batch_size (now {cfg.batch_size})" + (" or data.resolution" if data.kind == "image" else ""),
             "samples": "lower log.n_samples", "working memory": "free some memory", "evaluation": "lower eval.n"}
    need = sum(parts.values())
    if math.isfinite(need):
        check(need, f"this run (mostly {big})", fixes[big], device)
