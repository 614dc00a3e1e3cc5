"""R3GAN (Huang et al. 2024): shapes, gradients, fix-up initialisation, no normalization, resampling, training."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import assert_same_tensors, final_state, numbers, run_cli
from ganforge.config import build, load_config, raw_from
from ganforge.nets import build_nets
from ganforge.nets.exact import down_bilinear
from ganforge.nets.r3gan import ACT_GAIN, Block, cardinality, stages

SMALL = ("model=r3gan", "model.width=8", "model.group_width=4", "model.z_dim=8")
NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm,
         nn.LocalResponseNorm)


def _nets(shape, *extra, classes=0):
    cfg = load_config(None, (*SMALL, *(("model.conditional=true",) if classes else ()), *extra))
    torch.manual_seed(0)
    return build_nets(cfg.model, shape, classes)


def _call(net, x, y):
    return net(x) if y is None else net(x, y)


@pytest.mark.parametrize("side", [28, 32, 64, 128])
@pytest.mark.parametrize("classes", [0, 10])
def test_shapes_for_every_side_conditional_or_not(side, classes):
    channels = 1 if side == 28 else 3
    G, D = _nets((channels, side, side), classes=classes)
    z, y = torch.randn(4, 8), (torch.tensor([0, 3, 5, 9]) if classes else None)
    x = _call(G, z, y)
    assert x.shape == (4, channels, side, side)
    assert _call(D, x, y).shape == (4,)
    assert len(D.block_list()) == int(math.log2(side // (7 if side == 28 else 4)))     # one per downsampling stage
    G.eval()
    with torch.no_grad():
        assert _call(G, z, y).abs().max() <= 1                # a linear G's samples are clamped for viewing
        soft = F.one_hot(y, 10).float() if classes else None     # class weights mix the embeddings (interpolation)
        if classes:
            torch.testing.assert_close(G(z, soft), G(z, y))


def _branch_inner(net):
    """The parameters of the residual branches before their zero-initialised last layer."""
    return {id(p) for m in net.modules() if isinstance(m, Block) for p in (*m.widen.parameters(), *m.conv.parameters())}


@pytest.mark.parametrize("classes", [0, 10])
def test_a_gradient_reaches_every_parameter(classes):
    G, D = _nets((3, 32, 32), classes=classes)
    z, y = torch.randn(6, 8), (torch.arange(6) if classes else None)
    _call(D, _call(G, z, y), y).mean().backward()
    for net in (G, D):
        inner = _branch_inner(net)
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            # at init the branches' last layer is 0, so nothing flows back into the layers before it
            assert (p.grad.abs().sum() == 0) == (id(p) in inner), name
    opt = torch.optim.SGD([*G.parameters(), *D.parameters()], lr=0.1)
    opt.step()
    opt.zero_grad()
    _call(D, _call(G, z, y), y).mean().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad.abs().sum() > 0, name


def test_fixup_initialisation_zeroes_the_branches_and_scales_by_the_number_of_blocks():
    G, D = _nets((3, 64, 64), "model.width=32", "model.blocks=3")
    for net in (G, D):
        blocks = [m for m in net.modules() if isinstance(m, Block)]
        assert len(blocks) == 3 * 5                          # 5 stages (4 to 64 px), 3 blocks each
        gain = ACT_GAIN * len(blocks) ** -0.25               # the official code: L^(-1/(2m-2)), m = 3 layers
        widen = torch.cat([b.widen.weight.detach().flatten() / (gain / math.sqrt(b.widen.weight[0].numel())) for b in blocks])
        conv = torch.cat([b.conv.weight.detach().flatten() / (gain / math.sqrt(b.conv.weight[0].numel())) for b in blocks])
        for w in (widen, conv):                              # N(0, gain^2 / fan_in), the grouped conv's fan-in per group
            assert abs(float(w.std()) - 1) < 0.05 and abs(float(w.mean())) < 0.05
        for b in blocks:
            assert not b.narrow.weight.any() and b.narrow.bias is None
            assert not b.widen.bias.any() and not b.conv.bias.any()
    z = torch.randn(3, 8)
    with torch.no_grad():                                    # so each block is the identity and G is its skeleton
        x = G.basis[None] * G.project(z)[:, :, None, None]
        for stage in G.stages:
            x = stage[0](x) if not isinstance(stage[0], Block) else x
        torch.testing.assert_close(G(z), G.to_image(x))


def test_no_normalization_layer_in_g_or_d():
    for side, classes in ((28, 0), (28, 10), (64, 0), (128, 10)):
        for net in _nets((3, side, side), classes=classes):
            names = [type(m).__name__ for m in net.modules()]
            assert not [m for m in net.modules() if isinstance(m, NORMS)], names
            assert not any("norm" in n.lower() for n in names), names
            assert not [n for n, _ in net.named_parameters() if "parametrizations" in n]      # no spectral norm


def test_widths_cardinality_and_the_papers_proportions():
    cfg = load_config(None, ("model=r3gan", "model.width=768"))
    assert stages(32, cfg.model.arch) == (4, [768] * 4)                       # CIFAR-10
    assert stages(64, cfg.model.arch) == (4, [768] * 4 + [384])               # FFHQ-64
    assert stages(256, cfg.model.arch) == (4, [768] * 4 + [384, 192, 96])     # FFHQ-256
    assert stages(28, load_config(None, ("model=r3gan", "model.width=64", "model.halve_above=7")).model.arch) == \
        (7, [64, 32, 16])
    assert cardinality(1536, 16) == 96 and cardinality(32, 16) == 2 and cardinality(24, 16) == 1
    assert cardinality(48, 10) == 4                         # 4.8 groups wanted: the nearest divisor below
    G, D = _nets((3, 32, 32), "model.width=48", "model.group_width=16")
    assert all(b.conv.groups == 6 for b in G.modules() if isinstance(b, Block))   # 96 channels in groups of 16


def test_downsampling_is_antialiased_bilinear_with_its_gradient():
    torch.manual_seed(0)
    for shape in ((2, 3, 8, 8), (1, 2, 28, 14), (1, 1, 2, 2)):
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        ours = down_bilinear(x)
        x2 = x.detach().clone().requires_grad_(True)
        want = F.interpolate(x2, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
        torch.testing.assert_close(ours, want)
        v = torch.randn_like(want)
        (ours * v).sum().backward()
        (want * v).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
    with pytest.raises(ValueError):
        down_bilinear(torch.zeros(1, 1, 7, 8))


def test_family_defaults_are_the_papers_recipe():
    from ganforge.config import complete
    cfg = complete(load_config(None, ("model=r3gan",)))
    assert cfg.loss == "relativistic" and cfg.penalty.name == "r1+r2" and cfg.penalty.every == 1
    assert (cfg.optim.g.beta1, cfg.optim.g.beta2, cfg.optim.d.beta1, cfg.optim.d.beta2) == (0.0, 0.99, 0.0, 0.99)
    cfg = complete(load_config("mnist-r3gan"))
    assert cfg.model.name == "r3gan" and cfg.penalty.name == "r1+r2" and cfg.ema.enabled


@pytest.mark.parametrize("extra", [(), ("model.conditional=true",)])
def test_the_meta_device_memory_estimate_works(extra):
    from ganforge.data import load_dataset
    from ganforge.train import budget
    from ganforge.train.start import finish_config
    cfg = finish_config(build(raw_from("mnist-r3gan", list(extra))))
    parts = budget.estimate(cfg, load_dataset(cfg.data))
    assert parts and parts["activations"] > 0 and parts["weights and optimizer"] > 0


TRAIN = [*SMALL[1:], "data=mnist", "model=r3gan", "batch_size=8", "eval.metrics=none", "log.every=1",
         "log.samples_every=100", "log.progress=off", "log.tb=false"]


def test_training_resumes_bit_exactly_and_the_preset_runs(tmp_path):
    args = ["train", *TRAIN, "log.checkpoint_every=2", "--out", tmp_path]
    assert run_cli(*args, "steps=4", "name=whole").returncode == 0
    r = run_cli(*args, "steps=2", "name=part")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("train", "steps=4", "--resume", tmp_path / "part")
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "part")
    for k in ("G", "D", "G_ema", "opt_g", "opt_d", "batches", "z", "aux", "game", "torch_rng", "step", "images"):
        assert_same_tensors(a[k], b[k], k)
    assert numbers(tmp_path / "whole") == numbers(tmp_path / "part")
    rows = numbers(tmp_path / "whole")
    assert len(rows) == 4 and all("penalty_r1" in row and "penalty_r2" in row for row in rows)   # R1 and R2, each step
    r = run_cli("train", "mnist-r3gan", "steps=2", "batch_size=8", "eval.n=100", "name=preset", "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "preset" / "samples" / "step-0000002.png").is_file()


def test_two_processes_equal_one(tmp_path):
    # as tests/test_distributed.py: the CPU, one thread, fp32 and SGD (Adam's first steps are lr * sign(g))
    common = ["train", *TRAIN, "steps=4", "batch_size=16", "device=cpu", "threads=1", "precision=fp32",
              "log.checkpoint_every=4", "optim.g.name=sgd", "optim.d.name=sgd", "optim.g.lr=0.01", "optim.d.lr=0.01",
              "model.conditional=true", "--out", tmp_path]
    r2 = run_cli(*common, "name=two", "--nproc", "2")
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = run_cli(*common, "name=one")
    assert r1.returncode == 0, r1.stderr[-3000:]
    a, b = final_state(tmp_path / "two"), final_state(tmp_path / "one")
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-4, atol=1e-5, msg=f"{net}.{k}")
    for r2, r1 in zip(numbers(tmp_path / "two"), numbers(tmp_path / "one")):
        assert r2["loss_d"] == pytest.approx(r1["loss_d"], abs=1e-5)


def test_freeze_d_keeps_the_first_block_bit_identical(tmp_path):
    from ganforge.nets.transfer import blocks
    from ganforge.train.start import start
    trainer, _ = start(None, (*TRAIN, "steps=3", "model.freeze_d=1", "optim.d.lr=0.01", "name=f"), tmp_path)
    trainer.release_lock()
    found = blocks(trainer.D)
    assert len(found) == 2                                     # 28 px: the 28 and 14 px stages; the 7 px one is the head
    frozen = [p for p in found[0].parameters()]
    frozen_ids = {id(p) for p in frozen}
    trained = [p for p in trainer.D.parameters() if id(p) not in frozen_ids]
    before = [p.detach().clone() for p in frozen], [p.detach().clone() for p in trained]
    trainer.run()
    assert trainer.step == 3
    assert all(torch.equal(p, q) and not p.requires_grad for p, q in zip(frozen, before[0]))
    assert all(not torch.equal(p, q) for p, q in zip(trained, before[1]))          # every other D parameter trains


@pytest.mark.parametrize("extra", [(), ("model.conditional=true", "data.labels=true")])
def test_the_folder_preset_trains_on_an_image_folder_at_64_px(tmp_path, extra):
    """folder-r3gan (64 px, x-flips, ADA, R1 + R2, the lr decay) on a folder, narrowed; without data= one line."""
    from ganforge.api import load_run
    from test_family_folders import _folder
    _folder(tmp_path / "photos")
    small = ("model.width=8", "model.group_width=4", "model.z_dim=8", "batch_size=4", "steps=2", "eval.metrics=none",
             "log.progress=off", "name=r", "--out", tmp_path)
    r = run_cli("train", "folder-r3gan", *small)
    assert r.returncode == 2 and r.stderr == "ganforge: error: data=folder: needs a path, e.g. data=folder:/path/to/data\n"
    r = run_cli("train", "folder-r3gan", f"data=folder:{tmp_path / 'photos'}", *extra, *small)
    assert r.returncode == 0, r.stderr[-2000:]
    run = load_run(tmp_path / "r")
    assert run.config.augment.name == "ada" and run.config.data.mirror and run.config.penalty.name == "r1+r2"
    x = run.sample(3, seed=1, **({"label": "dogs"} if extra else {}))
    assert x.shape == (3, 3, 64, 64) and x.abs().max() <= 1
