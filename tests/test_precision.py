"""bf16 autocast against fp32: losses, gradient penalties and their double backward.

The game runs the nets under autocast and computes losses and penalties in
fp32 from their outputs (train.precision). bf16 keeps 8 bits of mantissa
(relative rounding 2^-8 = 0.4%), so a penalty or a gradient under autocast
is expected within about a percent of fp32, with the same direction; these
tests state that tolerance and check it on a DCGAN discriminator.
"""
import pytest
import torch

from ganforge.losses import LOSSES
from ganforge.nets.dcgan import DCGANOptions, build
from ganforge.penalties import gradient_penalty, r1_penalty
from ganforge.train.precision import Precision

# in the set benchmarks/gpu_check.py runs on a GPU (pytest -m cuda); these compute on the CPU, and
# tests/test_cuda_paths.py repeats the penalty check on the GPU
pytestmark = pytest.mark.cuda

TOL = 0.01           # relative, for values and gradient norms under bf16 (measured: <= 8e-4 here)
COS = 0.999          # cosine between the bf16 and fp32 gradients (measured: 0.9999)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    _, D = build((1, 28, 28), 32, DCGANOptions(g_width=16, d_width=16))
    g = torch.Generator().manual_seed(1)
    real = torch.rand(16, 1, 28, 28, generator=g) * 2 - 1
    fake = torch.rand(16, 1, 28, 28, generator=g) * 2 - 1
    return D, real, fake


def _penalty_and_grad(D, real, fake, mode, kind):
    prec = Precision(mode, torch.device("cpu"))
    D.zero_grad(set_to_none=True)
    if kind == "r1":
        x = real.clone().requires_grad_(True)
        with prec.autocast():
            out = D(x).float()
        pen = r1_penalty(out, x)
    else:
        with prec.autocast():
            pen = gradient_penalty(lambda v: D(v).float(), real, fake, torch.Generator().manual_seed(2))
    pen.backward()                                   # double backward into D's weights
    grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in D.parameters()])
    return float(pen.detach()), grad


@pytest.mark.parametrize("kind", ["r1", "gp"])
def test_penalties_and_their_double_backward_under_bf16(nets, kind):
    D, real, fake = nets
    p32, g32 = _penalty_and_grad(D, real, fake, "fp32", kind)
    p16, g16 = _penalty_and_grad(D, real, fake, "bf16", kind)
    assert p16 == pytest.approx(p32, rel=TOL)
    assert float(g16.norm()) == pytest.approx(float(g32.norm()), rel=TOL)
    assert float(torch.nn.functional.cosine_similarity(g16, g32, dim=0)) > COS


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_under_bf16_autocast(nets, loss):
    D, real, fake = nets
    out = {}
    for mode in ("fp32", "bf16"):
        with torch.no_grad(), Precision(mode, torch.device("cpu")).autocast():
            a, b = D(real).float(), D(fake).float()
        out[mode] = (float(LOSSES[loss].d(a, b)), float(LOSSES[loss].g(b, a)))
    for v16, v32 in zip(out["bf16"], out["fp32"]):
        assert v16 == pytest.approx(v32, rel=TOL, abs=1e-3)


def test_fp16_updates_the_scaler_skips_are_counted_logged_and_kept_across_a_checkpoint():
    """A scaled loss whose gradients overflow: the scaler skips the step and halves its scale; the count is what
    metrics.jsonl logs (fp16_skipped_d) and goes into the checkpoint. (fp16 trains on CUDA only; its scaler is the
    same code on the CPU.)"""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    prec = Precision("fp16", torch.device("cpu"))
    x = torch.ones(2, 3)
    w = net.weight.detach().clone()
    prec.backward_step(net(x).sum() * 1e35, opt, "d")      # x 65536 is past fp32's 3.4e38: Inf gradients
    assert torch.equal(net.weight, w)
    assert prec.logged() == {"fp16_skipped_g": 0, "fp16_skipped_d": 1, "fp16_scale_g": 65536.0, "fp16_scale_d": 32768.0}
    prec.backward_step(net(x).sum(), opt, "d")
    assert not torch.equal(net.weight, w) and prec.skipped == {"g": 0, "d": 1}
    again = Precision("fp16", torch.device("cpu"))
    again.load_state_dict(prec.state_dict())
    assert again.logged() == prec.logged()
