"""The CUDA path, on a GPU only (every test here is skipped elsewhere; benchmarks/gpu_check.py runs them with
``pytest -m cuda``): fp16 with its gradient scalers and bf16 train a tiny DCGAN with finite losses and resume
from a step-3 checkpoint to the same bits at step 6 as a run that never stopped; a streamed archive (pinned
read-ahead, copies to the GPU without blocking) resumes exactly too and equals the in-memory run; the padding and
upsampling of nets.exact give the same gradients bit for bit on every call; the penalties' double backward under
bf16 and fp16 autocast agrees with fp32 as tests/test_precision.py asks on the CPU."""
import math

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.nets.dcgan import DCGANOptions, build
from ganforge.nets.exact import reflect_pad, up_bilinear, up_nearest
from ganforge.penalties import gradient_penalty, r1_penalty
from ganforge.train.precision import Precision

from conftest import assert_same_tensors, final_state, numbers, run_cli, run_nets, train_run

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TINY = {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16, "batch_size": 16, "log.every": 1,
        "log.checkpoint_every": 3, "log.samples_every": 100, "eval.metrics": "none", "log.tb": False}
STATE_KEYS = ("G", "D", "G_ema", "opt_g", "opt_d", "batches", "z", "aux", "game", "precision", "torch_rng", "cuda_rng",
              "step", "images")
TOL, COS = 0.01, 0.999          # as tests/test_precision.py


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_trains_and_resumes_bit_exact_on_cuda(tmp_path, precision):
    kw = dict(out=tmp_path, progress="off", precision=precision, device="cuda", **TINY)
    whole = ganforge.train("mnist-dcgan", name="whole", steps=6, **kw)
    part = ganforge.train("mnist-dcgan", name="part", steps=3, **kw)
    assert part.step == 3
    resumed = ganforge.train(None, out=tmp_path, resume=part.path, steps=6, progress="off")
    assert resumed.step == whole.step == 6 and whole.config.precision == resumed.config.precision == precision
    rows = numbers(whole.path)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert all(math.isfinite(r[k]) for r in rows for k in ("loss_d", "loss_g"))
    assert numbers(part.path) == rows
    a, b = final_state(whole.path), final_state(part.path)
    for k in STATE_KEYS:
        assert_same_tensors(a[k], b[k], k)
    assert all(p.dtype == torch.float32 for p in whole.G.parameters())        # master weights stay fp32
    if precision == "fp16":                                                   # a gradient scaler per optimizer
        assert set(a["precision"]) == {"g", "d"} and all(s["scale"] > 0 for s in a["precision"].values())
    else:
        assert a["precision"] == {}
    ckpts = sorted((whole.path / "checkpoints").glob("step-*.pt"))
    at3 = torch.load(ckpts[0], weights_only=True)
    assert at3["step"] == 3
    weights = [(n, k) for n in ("G", "D") for k in a[n] if not k.endswith(("running_mean", "running_var", "_tracked"))]
    assert any(not torch.equal(at3[n][k], a[n][k]) for n, k in weights)             # it trained


def test_a_streamed_archive_resumes_bit_exact_on_cuda(tmp_path):
    from test_archive import _digits_u8, write_stylegan_zip
    u8, y = _digits_u8(100)
    write_stylegan_zip(tmp_path / "ds.zip", u8, y)
    base = ["model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "log.progress=off", "log.every=2",
            "eval.metrics=none", "log.samples_every=100", "device=cuda", "precision=bf16", "data.resolution=28",
            f"data=zip:{tmp_path / 'ds.zip'}", "data.mirror=true", "log.checkpoint_every=4"]
    whole = train_run(tmp_path, "whole", base, "steps=8", "data.cache=none", "data.workers=2")
    part = train_run(tmp_path, "part", base, "steps=4", "data.cache=none", "data.workers=1")
    r = run_cli("train", "steps=8", "--resume", part, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_tensors(run_nets(whole), run_nets(part))
    assert numbers(whole) == numbers(part)
    ram = train_run(tmp_path, "ram", base, "steps=8", "data.cache=ram")
    assert_same_tensors(run_nets(whole), run_nets(ram))


EXACT = {
    "reflect_pad": (lambda x: reflect_pad(x, 2), lambda x: F.pad(x, (2, 2, 2, 2), mode="reflect")),
    "up_nearest": (up_nearest, lambda x: F.interpolate(x, scale_factor=2)),
    "up_bilinear": (up_bilinear, lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)),
}


@pytest.mark.parametrize("op", sorted(EXACT))
def test_exact_ops_give_the_same_gradient_bits_every_time_on_cuda(op):
    ours, theirs = EXACT[op]
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(8, 16, 33, 35, device="cuda", generator=g)
    w = torch.randn(ours(x).shape, device="cuda", generator=g)
    grads = []
    for _ in range(3):
        xi = x.clone().requires_grad_(True)
        (ours(xi) * w).sum().backward()
        grads.append(xi.grad)
    assert all(torch.equal(grads[0], other) for other in grads[1:])
    xi = x.clone().requires_grad_(True)
    y = theirs(xi)
    (y * w).sum().backward()
    torch.testing.assert_close(ours(x), y.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(grads[0], xi.grad, rtol=1e-5, atol=1e-5)


def _penalty_and_grad(D, real, fake, mode, kind):
    prec = Precision(mode, torch.device("cuda"))
    D.zero_grad(set_to_none=True)
    if kind == "r1":
        x = real.clone().requires_grad_(True)
        with prec.autocast():
            out = D(x).float()
        pen = r1_penalty(out, x)
    else:
        with prec.autocast():
            pen = gradient_penalty(lambda v: D(v).float(), real, fake, torch.Generator(device="cuda").manual_seed(2))
    pen.backward()                                   # double backward into D's weights
    grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in D.parameters()])
    return float(pen.detach()), grad


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", ["r1", "gp"])
def test_penalties_and_their_double_backward_under_autocast_on_cuda(kind, mode):
    torch.manual_seed(0)
    _, D = build((1, 28, 28), 32, DCGANOptions(g_width=16, d_width=16))
    D = D.cuda()
    g = torch.Generator().manual_seed(1)
    real = (torch.rand(16, 1, 28, 28, generator=g) * 2 - 1).cuda()
    fake = (torch.rand(16, 1, 28, 28, generator=g) * 2 - 1).cuda()
    p32, g32 = _penalty_and_grad(D, real, fake, "fp32", kind)
    p16, g16 = _penalty_and_grad(D, real, fake, mode, kind)
    assert p16 == pytest.approx(p32, rel=TOL)
    assert float(g16.norm()) == pytest.approx(float(g32.norm()), rel=TOL)
    assert float(F.cosine_similarity(g16, g32, dim=0)) > COS
