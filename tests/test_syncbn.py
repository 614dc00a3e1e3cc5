"""ganforge's synchronized batch norm: in one process it is exactly batch norm (forward, backward, buffers)."""
import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

from ganforge.train.syncbn import SyncBatchNorm, _SyncBN, convert


@pytest.fixture(scope="module")
def group():
    if dist.is_initialized():
        yield
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29400 + os.getpid() % 500))
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_function_equals_batch_norm_forward_and_backward(group):
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    x = torch.randn(6, 5, 4, 3) * 3 + 1
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    w, b = bn.weight.detach().clone().requires_grad_(True), bn.bias.detach().clone().requires_grad_(True)
    y_ref = bn(x1)
    y, mean, var = _SyncBN.apply(x2, w, b, bn.eps)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mean, x.mean((0, 2, 3)))
    torch.testing.assert_close(var, x.var((0, 2, 3), unbiased=True), rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    y_ref.backward(g)
    y.backward(g)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w.grad, bn.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b.grad, bn.bias.grad, rtol=1e-4, atol=1e-5)


def test_convert_keeps_weights_and_state_dict_keys():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    net[1].running_mean.fill_(0.3)
    keys = list(net.state_dict())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convert(net)
    assert isinstance(net[1], SyncBatchNorm) and isinstance(net[2][0], SyncBatchNorm)
    assert list(net.state_dict()) == keys
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
