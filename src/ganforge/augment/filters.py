"""2x upsampling and downsampling with the CDF 9/7 wavelet low-pass pair, for ADA's geometric transforms.

Cohen, Daubechies & Feauveau 1992 (the JPEG 2000 lossy filters): the
analysis low-pass (9 taps, sum 1) and synthesis low-pass (7 taps, sum 2) are
symmetric and biorthogonal, sum_m a[m] s[m + 2n] = delta_n, so upsampling
with s and then downsampling with a returns the signal exactly. They stand in
for the sym6 wavelet of stylegan2-ada-pytorch (Karras et al. 2020, ADA),
which is orthogonal but not symmetric (ganforge.augment.geometry says why).

Each pass is written as a few shifted, strided slices along one axis, and
is an autograd Function whose backward is its adjoint (and the adjoint's
backward the pass again): the gradient costs what the pass costs, second
derivatives (R1 through the augmentation) work, and as nothing is added with
atomics, the gradients are deterministic on a GPU too.
"""
from __future__ import annotations

import torch
from torch import Tensor

# centre tap first
ANALYSIS = (0.6029490182363595, 0.26686411844287505, -0.07822326652899014, -0.01686411844287494, 0.02674875741081004)
SYNTHESIS = (1.115087052457001, 0.5912717631142501, -0.05754352622850034, -0.09127176311425016)


def taps(half: tuple) -> Tensor:
    """The whole symmetric filter from its centre tap and one side."""
    return torch.tensor(half[:0:-1] + half, dtype=torch.float64)


def _at(x: Tensor, dim: int, start: int, length: int, step: int = 1) -> Tensor:
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, start + step * (length - 1) + 1, step)
    return x[tuple(index)]


def _size(x: Tensor, dim: int, n: int) -> list:
    shape = list(x.shape)
    shape[dim] = n
    return shape


# Up along dim: (.., n + 4) samples, mirrored 2 past each end -> (.., 2n - 1) at half pixels.
# out[2i] = s0 x[i+2] + s2 (x[i+1] + x[i+3]);  out[2i+1] = s1 (x[i+2] + x[i+3]) + s3 (x[i+1] + x[i+4])
_UP = ((0, 2, SYNTHESIS[0]), (0, 1, SYNTHESIS[2]), (0, 3, SYNTHESIS[2]),
       (1, 2, SYNTHESIS[1]), (1, 3, SYNTHESIS[1]), (1, 1, SYNTHESIS[3]), (1, 4, SYNTHESIS[3]))


def _up(x: Tensor, dim: int) -> Tensor:
    n = x.shape[dim] - 4
    out = x.new_zeros(_size(x, dim, 2 * n - 1))
    for phase, shift, c in _UP:
        m = n - phase
        _at(out, dim, phase, m, 2).add_(_at(x, dim, shift, m), alpha=c)
    return out


def _up_adjoint(g: Tensor, dim: int) -> Tensor:
    n = (g.shape[dim] + 1) // 2
    out = g.new_zeros(_size(g, dim, n + 4))
    for phase, shift, c in _UP:
        m = n - phase
        _at(out, dim, shift, m).add_(_at(g, dim, phase, m, 2), alpha=c)
    return out


# Down along dim: (.., 2n + 7) half-pixel samples from pixel -2 to n + 1 -> (.., n): out[i] = sum_k a_k y[2i + k]
_DOWN = tuple((k, ANALYSIS[abs(k - 4)]) for k in range(9))


def _down(y: Tensor, dim: int) -> Tensor:
    n = (y.shape[dim] - 7) // 2
    out = y.new_zeros(_size(y, dim, n))
    for k, c in _DOWN:
        out.add_(_at(y, dim, k, n, 2), alpha=c)
    return out


def _down_adjoint(g: Tensor, dim: int) -> Tensor:
    n = g.shape[dim]
    out = g.new_zeros(_size(g, dim, 2 * n + 7))
    for k, c in _DOWN:
        _at(out, dim, k, n, 2).add_(g, alpha=c)
    return out


class _Linear(torch.autograd.Function):
    """``apply(x, op, adjoint, dim)``: a linear pass along ``dim`` whose gradient is its adjoint."""

    @staticmethod
    def forward(ctx, x, op, adjoint, dim):
        ctx.op, ctx.adjoint, ctx.dim = op, adjoint, dim
        return op(x, dim)

    @staticmethod
    def backward(ctx, g):
        return _Linear.apply(g, ctx.adjoint, ctx.op, ctx.dim), None, None, None


def mirror2(x: Tensor, dim: int) -> Tensor:
    """x extended by 2 samples at each end of ``dim``, mirrored about the end samples (F.pad's "reflect"),
    from slices and flips: unlike F.pad's, its gradient is deterministic on a GPU."""
    n = x.shape[dim]
    return torch.cat([x.narrow(dim, 1, 2).flip(dim), x, x.narrow(dim, n - 3, 2).flip(dim)], dim)


def upsample2(x: Tensor) -> Tensor:
    """(n, c, h, w) -> (n, c, 2h-1, 2w-1): sample j sits at pixel j/2 (synthesis filter, gain 2 per axis;
    the image mirrored past its edges)."""
    y = _Linear.apply(mirror2(x, -1), _up, _up_adjoint, -1)
    return _Linear.apply(mirror2(y, -2), _up, _up_adjoint, -2)


def downsample2(y: Tensor) -> Tensor:
    """(n, c, 2h+7, 2w+7), sample j at pixel j/2 - 2 -> (n, c, h, w) (analysis filter)."""
    return _Linear.apply(_Linear.apply(y, _down, _down_adjoint, -1), _down, _down_adjoint, -2)
