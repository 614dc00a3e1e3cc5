"""Data-parallel training over processes started by torchrun (gloo on CPUs, NCCL on GPUs, one per process).

Every rank holds the full G and D and draws the same *global* batch of
indices, z and penalty noise from the run's seeded streams, then keeps its
own contiguous slice of it (``batch_size`` is the global batch; each of the
N ranks computes batch_size / N samples). After each backward pass the
gradients of the network being updated, and only that network, are
averaged over the ranks with one all-reduce of a flat buffer; every rank
then takes the same optimizer step, so the weights stay identical without
broadcasting them. This is the explicit per-phase all-reduce of StyleGAN3's
training loop rather than DistributedDataParallel wrappers: DDP would hook
the backward passes of both nets, and a GAN's D phase computes no gradient
for G and its G phase none for D (D is frozen), which DDP reports as unused
parameters or all-reduces needlessly. Because the slices partition the
global batch and the losses are batch means, N ranks compute exactly the
mean gradient that one process with the whole batch computes (up to the
order of floating-point sums). Batch statistics are made global too: batch
norm through train.syncbn, and the relativistic-average loss's batch means
through ``Dist.batch_mean``, whose backward pass sums the upstream gradient
over the ranks, so that each rank's rows receive the gradient of every
rank's loss terms through the shared mean.

Only rank 0 writes the run folder (logs, samples, checkpoints); the other
ranks wait at a barrier where rank 0 does file work. An evaluation splits
its samples: each rank generates and extracts features for its contiguous
share, and rank 0 gathers them in order and computes the metrics.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist

from ..errors import UserError
from ..device import pick_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"        # where collective tensors live: cuda:N under NCCL

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, n_global: int) -> slice:
        """This rank's slice of a global batch of ``n_global``."""
        k = n_global // self.world
        return slice(self.rank * k, (self.rank + 1) * k)

    def average_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over the ranks (one flat all-reduce)."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def batch_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of x over every rank's rows, differentiable (equal shards assumed)."""
        if not self.active:
            return x.mean()
        return _GlobalMean.apply(x, self.world * x.numel())

    @torch.no_grad()
    def row_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over every rank's rows of x (N, ...), not differentiable (equal shards assumed)."""
        if not self.active:
            return x.mean(0)
        total = x.sum(0).clone()
        dist.all_reduce(total)
        return total / (self.world * x.shape[0])

    def mean(self, values: dict) -> dict:
        """Scalars averaged over the ranks (for log lines)."""
        if not self.active or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.cpu().tolist())}

    def any(self, flag: bool) -> bool:
        """True on every rank when the flag is set on any (a stop request must stop all at one step)."""
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather_to_main(self, obj):
        """Every rank's ``obj`` as a list in rank order on rank 0; None on the others."""
        if not self.active:
            return [obj]
        out = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def leave(self, code: int) -> None:
        """End this rank's process now, with ``code``, once its output is flushed.

        Every collective of the run has completed on every rank when training returns (it ends at a barrier,
        and a stop request is agreed on at one step). What remains is the teardown of the process group, and
        there gloo's C++ threads can abort a rank ("terminate called without an active exception", seen in 1
        of ~10 test runs both with and without destroy_process_group before exit), failing a finished run.
        So a rank skips the interpreter's teardown: files are written atomically and already closed."""
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def broadcast_object(self, obj):
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


class _GlobalMean(torch.autograd.Function):
    """sum over ranks of sum(x) / n; backward: every rank's upstream gradient, summed, / n."""

    @staticmethod
    def forward(ctx, x, n):
        total = x.detach().sum().reshape(1).clone()
        dist.all_reduce(total)
        ctx.shape, ctx.n = x.shape, n
        return (total / n).reshape(())

    @staticmethod
    def backward(ctx, grad):
        g = grad.detach().reshape(1).clone()
        dist.all_reduce(g)
        return (g / ctx.n).reshape(()).expand(ctx.shape).clone(), None


def gpus_for(spec: str, n: int) -> bool:
    """Whether ``n`` processes on this machine train on a GPU each (NCCL), or all on the CPU (gloo).

    device=auto takes the GPUs only when there is one per process (NCCL
    refuses two processes on one GPU), else the CPU; device=cuda insists on
    them and is a user error where they are missing; device=cpu and
    ``GANFORGE_BACKEND=gloo`` keep every process on the CPU. A device with an
    index is refused: process r takes cuda:r."""
    pick_device(spec)                                   # a malformed or impossible device: one line
    gloo = os.environ.get("GANFORGE_BACKEND", "") == "gloo"
    if spec not in ("auto", "cuda", "cpu"):
        raise UserError(f"device={spec} names one GPU, but {n} processes take one each: "
                        "use device=cuda (process r uses cuda:r), auto or cpu")
    if spec == "cpu" or not torch.cuda.is_available():
        return False
    if spec == "cuda" and gloo:
        raise UserError("GANFORGE_BACKEND=gloo trains on the CPU, but the config says device=cuda: use device=cpu or auto")
    if gloo:
        return False
    count = torch.cuda.device_count()
    if count < n:
        if spec == "cuda":
            raise UserError(f"device=cuda with {n} processes needs {n} GPUs, one per process; this machine has {count} "
                            "(device=cpu trains them on the CPU)")
        return False
    return True


def from_env(spec: str = "auto") -> Dist:
    """The process group torchrun describes in the environment (or a single process), for the config's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_nccl = gpus_for(spec, int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))
    if not dist.is_initialized():
        if use_nccl:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_nccl else "gloo")
    return Dist(rank, world, local, f"cuda:{local}" if use_nccl else "cpu")


def rank_device(spec: str) -> torch.device:
    """The device this process trains on: the config's alone; under torchrun, cuda:LOCAL_RANK or the CPU (gpus_for)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return pick_device(spec)
    if gpus_for(spec, int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def threads_per_rank() -> int:
    """The machine's cores shared by the ranks on it (torchrun itself sets OMP_NUM_THREADS=1 for each)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, local))


def check_batch(batch_size: int, d: Dist, pack: int) -> None:
    if batch_size % d.world:
        raise UserError(f"batch_size={batch_size} is the global batch and must divide over the {d.world} processes")
    if (batch_size // d.world) % pack:
        raise UserError(f"each of the {d.world} processes gets {batch_size // d.world} samples, "
                        f"not a multiple of model.pack={pack}")
