"""Batch norm with statistics over all data-parallel processes, on CPUs as on GPUs.

Ioffe & Szegedy 2015 normalize with the batch's statistics; under
data-parallel training each process sees only its slice of the batch, so
plain batch norm would normalize with per-process statistics and the run
would differ from one process with the whole batch. Synchronized batch norm
(as in Peng et al. 2018, MegDet) sums each channel's count, sum and sum of
squares over the processes (one all-reduce) and normalizes with the global
mean and variance; the backward pass all-reduces the two per-channel sums
it needs. PyTorch's own ``nn.SyncBatchNorm`` accepts only GPU tensors, so
this one is written here (autograd Function, float32 statistics). Running
statistics use the unbiased global variance, as ``nn.BatchNorm2d`` does.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _SyncBN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        local = torch.cat([xf.sum(dims), xf.square().sum(dims),
                           torch.tensor([xf.numel() / xf.shape[1]], dtype=torch.float32, device=x.device)])
        dist.all_reduce(local)
        c = x.shape[1]
        count = local[-1]
        mean = local[:c] / count
        var = (local[c:2 * c] / count - mean.square()).clamp_min(0)
        shape = [1, c] + [1] * (x.dim() - 2)
        inv = torch.rsqrt(var + eps)
        xhat = (xf - mean.view(shape)) * inv.view(shape)
        ctx.save_for_backward(xhat, weight, inv)
        ctx.count, ctx.dims, ctx.shape = count, dims, shape
        y = xhat * weight.float().view(shape) + bias.float().view(shape)
        unbiased = var * count / (count - 1).clamp_min(1)
        ctx.mark_non_differentiable(mean, unbiased)
        return y.to(x.dtype), mean, unbiased

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar):
        xhat, weight, inv = ctx.saved_tensors
        dims, shape, count = ctx.dims, ctx.shape, ctx.count
        dy = dy.float()
        d_weight, d_bias = (dy * xhat).sum(dims), dy.sum(dims)
        dxhat = dy * weight.float().view(shape)
        sums = torch.cat([dxhat.sum(dims), (dxhat * xhat).sum(dims)])
        dist.all_reduce(sums)
        c = xhat.shape[1]
        dx = (dxhat - sums[:c].view(shape) / count - xhat * sums[c:].view(shape) / count) * inv.view(shape)
        return dx, d_weight.to(weight.dtype), d_bias.to(weight.dtype), None


class SyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics cover every process (plain batch norm otherwise)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        w, b = self.weight, self.bias
        if w is None:                     # affine=False (the inner norm of a class-conditional batch norm)
            w, b = x.new_ones(x.shape[1], dtype=torch.float32), x.new_zeros(x.shape[1], dtype=torch.float32)
        y, mean, var = _SyncBN.apply(x, w, b, self.eps)
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
            self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
            self.running_var.mul_(1 - m).add_(var.to(self.running_var.dtype), alpha=m)
            self.num_batches_tracked.add_(1)
        return y


def convert(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by a SyncBatchNorm with the same weights and buffers."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d and child.track_running_stats:
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, affine=child.affine)
            sync.load_state_dict(child.state_dict())
            sync.to(child.running_mean.device)
            setattr(module, name, sync)
        else:
            convert(child)
    return module
