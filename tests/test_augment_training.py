"""Augmentation in the training loop (issue 25): data.mirror, ADA's p and r_t, exact resume, 2 processes = 1,
and the report's word on an overfitting D. The transforms themselves: tests/test_augment.py."""
import json

import pytest
import torch

from conftest import assert_same_tensors, numbers, run_cli, run_nets, train_run
from ganforge.data import Dataset
from ganforge.data.batches import Batches
from ganforge.errors import UserError
from ganforge.games.augment import Augmenter
from ganforge.report.diagnose import diagnose
from ganforge.rng import Stream


def test_mirror_shows_every_image_once_each_way_per_epoch():
    x = torch.arange(6 * 2 * 3, dtype=torch.float32).view(6, 1, 2, 3)        # six images, none symmetric
    b = Batches(Dataset("t", x, torch.arange(6)), 4, seed=1, mirror=True)
    assert b.per_epoch == 3                                                   # 12 items in batches of 4
    seen = [b.next() for _ in range(3)]
    images, labels = torch.cat([s[0] for s in seen]), torch.cat([s[1] for s in seen])
    for i in range(6):
        got = images[labels == i]
        assert len(got) == 2 and {torch.equal(g, x[i]) for g in got} == {True, False}
        assert any(torch.equal(g, x[i].flip(-1)) for g in got)
    plain = Batches(Dataset("t", x, torch.arange(6)), 4, seed=1)
    assert plain.per_epoch == 1 and torch.equal(plain.next()[0], Batches(Dataset("t", x), 4, seed=1).next()[0])
    with pytest.raises(UserError, match="data.mirror=true flips images; this data holds points"):
        Batches(Dataset("t", torch.zeros(8, 2)), 4, seed=1, mirror=True)


class _Identity:
    """A pipeline that changes nothing, with a p the Augmenter sets."""
    p = 0.0

    def __call__(self, x, generator, rows=slice(None), n_global=None):
        return x


def test_p_follows_r_t_at_the_papers_speed_and_stays_in_0_1():
    """p moves by batch * interval / speed after every interval of D steps, up while r_t > target, down while
    below, and is clamped to [0, 1]; a fixed p never moves."""
    a = Augmenter(_Identity(), Stream(0, "augment"), batch_size=50, rows=slice(None), adaptive=True,
                  target=0.6, interval=4, speed=1000.0)                        # 200 images per update: 0.2
    def outputs(rt):                                                          # D's outputs whose mean sign is rt
        k = round(50 * (1 + rt) / 2)
        return torch.cat([torch.full((k,), 3.0), torch.full((50 - k,), -0.5)])

    script = [1.0] * 7 + [0.7] * 2 + [0.2] * 6 + [0.6]                        # r_t per interval of 4 D steps
    ps = []
    for rt in script:
        for _ in range(4):
            a.observe(outputs(rt))
        ps.append(a.p)
    assert ps == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.0])
    assert a.pipe.p == a.p == 0.0 and a.rt == pytest.approx(0.6)               # at the target p stays
    fixed = Augmenter(_Identity(), Stream(0, "augment"), 50, slice(None), adaptive=False, p=0.3)
    for _ in range(8):
        assert float(fixed.observe(torch.ones(50))["aug_p"]) == 0.3
    assert fixed.p == 0.3


def test_the_state_of_the_heuristic_round_trips():
    a = Augmenter(_Identity(), Stream(0, "augment"), 8, slice(None), adaptive=True, speed=64.0)
    for s in (1.0, -1.0, 1.0, 1.0, 1.0, 1.0):                                  # mid-interval after 6 steps
        a.observe(torch.full((8,), s))
    a(torch.zeros(8, 1, 4, 4))
    b = Augmenter(_Identity(), Stream(0, "augment"), 8, slice(None), adaptive=True, speed=64.0)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.state_dict() == a.state_dict() and b.stream.count == 1
    for s in (1.0, 1.0):
        a.observe(torch.full((8,), s))
        b.observe(torch.full((8,), s))
    assert a.p == b.p == pytest.approx(0.5)              # r_t 0.5 left p at 0, then r_t 1 moved it by 0.5


@pytest.mark.parametrize("loss,want", [("hinge", -1.0), ("nonsaturating", -1.0), ("relativistic", 1.0),
                                       ("relativistic-average", 1.0)])
def test_r_t_of_a_relativistic_d_reads_reals_against_fakes(loss, want):
    """A D whose every output is negative, but which scores each real 1 above every fake: an absolute loss
    reads r_t = E[sign D(x)] = -1; RpGAN and RaGAN, whose D has no level of its own, read the sign of D(x)
    against the paired fake or the fakes' mean, +1, so ADA's p rises (it never rose on folder-r3gan)."""
    from ganforge.games.gan import GANGame, GANOptions, Regularizer
    from ganforge.losses import LOSSES
    from ganforge.train.precision import Precision

    class Level(torch.nn.Module):           # -10 for a fake (all -1), -9 for a real (all +1)
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, x):
            return self.w * x.flatten(1).mean(1) - 9.5

    class Flat(torch.nn.Module):
        z_dim = 4

        def forward(self, z):
            return -torch.ones(len(z), 1, 4, 4)

    class Reals:
        def next(self):
            return torch.ones(8, 1, 4, 4), None

    aug = Augmenter(_Identity(), Stream(0, "augment"), 8, slice(None), adaptive=True, interval=1, speed=80.0)
    D = Level()
    game = GANGame(Flat(), D, None, torch.optim.SGD(D.parameters(), lr=0.0),
                   GANOptions(LOSSES[loss], Regularizer("none", 0.0, 1), batch_size=8), batches=Reals(),
                   z_stream=Stream(0, "z"), aux_stream=Stream(0, "aux"),
                   precision=Precision("fp32", torch.device("cpu")), augment=aug)
    stats = game.d_step()
    assert float(stats["d_real"]) != float(stats["d_fake"])
    assert float(stats["rt"]) == want and aug.rt == want
    assert aug.p == pytest.approx(0.1 if want > 0 else 0.0)      # 8 images of 80 per update, up or clamped at 0


def _rows(rt, p=None):
    return [{"step": 100 * (i + 1), "rt": v, **({"aug_p": p[i]} if p else {})} for i, v in enumerate(rt)]


def test_the_report_says_when_d_overfits():
    found = diagnose(_rows([0.2, 0.3, 0.7, 0.8, 0.9, 0.95]), "nonsaturating")
    assert [f.kind for f in found] == ["overfitting"] and found[0].step == 300
    assert "augment=ada" in found[0].suggestion and "0.6" in found[0].evidence
    assert diagnose(_rows([0.25] * 8), "nonsaturating") == []                  # the main job's level (r_t 0.25)
    assert diagnose(_rows([0.7] * 6, [0.3, 0.5, 0.6, 0.7, 0.8, 0.9]), "nonsaturating") == []   # ADA still adapting
    capped = diagnose(_rows([0.9] * 6, [0.5, 1.0, 1.0, 1.0, 1.0, 1.0]), "nonsaturating")
    assert [f.title for f in capped] == ["The discriminator overfits despite augmentation"]


TINY = ["mnist-dcgan", "model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "log.progress=off",
        "eval.metrics=none", "log.every=2", "log.samples_every=100", "device=cpu", "threads=1", "precision=fp32"]
ADA = ["augment=ada", "augment.speed_kimg=0.5", "augment.interval=2"]    # p moves by 0.064 per update


def _train(tmp_path, name, *extra, nproc=1):
    return train_run(tmp_path, name, TINY, *extra, nproc=nproc)


_nets = run_nets


@pytest.mark.parametrize("extra", [ADA + ["data.mirror=true"], ["augment=diffaug"]])
def test_a_resumed_augmented_run_is_bit_exact(tmp_path, extra):
    """Killed at step 5 (mid-interval of ADA's heuristic) and resumed: the same weights, p and numbers."""
    whole = _train(tmp_path, "whole", "steps=10", "log.checkpoint_every=5", "log.every=5", *extra)
    part = _train(tmp_path, "part", "steps=5", "log.checkpoint_every=5", "log.every=5", *extra)
    r = run_cli("train", "steps=10", "--resume", part, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_tensors(_nets(whole), _nets(part))
    assert numbers(whole) == numbers(part)
    assert all(row["grad_g"] > 0 for row in numbers(whole))      # G's gradient passes through the augmentation
    if "augment=ada" in extra:
        ps = [row["aug_p"] for row in numbers(whole)]
        assert ps[-1] > ps[0]                                      # p really moved, and was resumed with the rest


def test_two_processes_equal_one_with_ada(tmp_path):
    """Each process augments its rows of the global batch with the global batch's draws, and the ranks agree on
    r_t and so on p: the weights equal one process's with the whole batch."""
    sgd = ["optim.g.name=sgd", "optim.d.name=sgd", "optim.g.lr=0.01", "optim.d.lr=0.01", "steps=6"]
    two = _train(tmp_path, "two", *ADA, "augment.target=-1", *sgd, nproc=2)
    one = _train(tmp_path, "one", *ADA, "augment.target=-1", *sgd)
    a, b = _nets(two), _nets(one)
    for net in a:
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-4, atol=1e-5, msg=f"{net}.{k}")
    p2, p1 = ([row["aug_p"] for row in numbers(x)] for x in (two, one))
    assert p2 == p1 and max(p1) > 0
