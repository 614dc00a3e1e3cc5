"""nets.exact: padding and upsampling with deterministic GPU backward passes equal torch's own: values
exactly (bilinear: to rounding), gradients to the rounding of a sum in another order (float64 on the CPU)."""
import pytest
import torch
import torch.nn.functional as F

from ganforge.nets.exact import ReflectPad, reflect_pad, up_bilinear, up_nearest

# in the set benchmarks/gpu_check.py runs on a GPU (pytest -m cuda); these compare on the CPU in float64, and
# tests/test_cuda_paths.py checks on the GPU that the backward passes repeat bit for bit
pytestmark = pytest.mark.cuda


def _both(ours, theirs, shape=(2, 3, 7, 9)):
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    g = torch.randn_like(theirs(x))
    out = []
    for f in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        y = f(xi)
        (y * g).sum().backward()
        out.append((y.detach(), xi.grad))
    return out


@pytest.mark.parametrize("p, q", [(1, 1), (3, 3), (2, 1), (0, 2), (2, 0)])
def test_reflect_pad_equals_torch(p, q):
    (a, ga), (b, gb) = _both(lambda x: reflect_pad(x, p, q), lambda x: F.pad(x, (p, q, p, q), mode="reflect"))
    assert torch.equal(a, b)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-13)
    (a, ga), (b, gb) = _both(ReflectPad(p), torch.nn.ReflectionPad2d(p))
    assert torch.equal(a, b)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-13)


def test_reflect_pad_needs_a_wider_side():
    with pytest.raises(ValueError, match="needs a side above"):
        reflect_pad(torch.zeros(1, 1, 3, 3), 3)


def test_nearest_upsampling_equals_torch():
    (a, ga), (b, gb) = _both(up_nearest, lambda x: F.interpolate(x, scale_factor=2))
    assert torch.equal(a, b)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-13)


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 2, 1, 4), (1, 1, 2, 1)])
def test_bilinear_upsampling_equals_torch(shape):
    (a, ga), (b, gb) = _both(up_bilinear, lambda x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                                 align_corners=False), shape)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-13)
