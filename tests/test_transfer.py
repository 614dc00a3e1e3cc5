"""Transfer learning: init= (a new run from another run's weights) and FreezeD (model.freeze_d)."""
import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

import ganforge
from ganforge.cli import main
from ganforge.export import export_generator
from ganforge.nets.transfer import blocks
from ganforge.train.start import start

from conftest import assert_same_tensors, final_state, numbers, one_line

TINY = ["model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "eval.metrics=none", "log.tb=false",
        "log.samples_every=1000", "log.progress=off"]
NETS = ("G", "D", "G_ema")


def _kw(items):
    return dict(o.split("=", 1) for o in items)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny DCGAN trained 3 steps, its moving average slow enough to differ from G."""
    out = tmp_path_factory.mktemp("source")
    return ganforge.train("mnist-dcgan", out=out, name="a", steps=3, progress="off", **_kw(TINY + ["ema.rampup=null"])).path


def _started(tmp_path, *extra):
    """A trainer at step 0 of a new run (its folder made, its lock released)."""
    trainer, _ = start("mnist-dcgan", tuple(TINY + ["seed=5", *extra]), tmp_path)
    trainer.release_lock()
    return trainer


def _nets(trainer) -> dict:
    return {"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "G_ema": trainer.ema.module.state_dict()}


def test_init_from_a_run_folder_copies_g_d_and_ema_exactly(tmp_path, source, capsys):
    src = final_state(source)
    assert not torch.equal(src["G"]["net.0.weight"], src["G_ema"]["net.0.weight"])    # EMA is its own copy
    fresh = _nets(_started(tmp_path, "name=fresh"))
    assert not torch.equal(fresh["D"]["net.0.weight"], src["D"]["net.0.weight"])
    trainer = _started(tmp_path, f"init={source}", "name=b", "optim.d.lr=0.0001")
    assert_same_tensors(_nets(trainer), {k: src[k] for k in NETS})
    assert trainer.step == 0 and not trainer.opt_g.state and not trainer.opt_d.state    # fresh optimizers
    ckpt = sorted((source / "checkpoints").glob("step-*.pt"))[-1]
    assert f"ganforge: init: G, D and G_ema from {ckpt} (step 3)\n" in capsys.readouterr().err
    info = json.loads((tmp_path / "b" / "run.json").read_text())["init"]
    assert info == {"from": str(source), "file": str(ckpt.resolve()), "kind": "run", "step": 3, "nets": ["D", "G", "G_ema"],
                    "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(), "fresh": [], "left_out": []}


def test_init_from_an_exported_generator_takes_g_and_keeps_d_fresh(tmp_path, source, capsys):
    export_generator(source, tmp_path / "g.safetensors")
    exported = load_file(str(tmp_path / "g.safetensors"))
    fresh = _nets(_started(tmp_path, "name=fresh"))
    trainer = _started(tmp_path, f"init={tmp_path / 'g.safetensors'}", "name=b")
    nets = _nets(trainer)
    assert_same_tensors({"G": nets["G"], "G_ema": nets["G_ema"], "D": nets["D"]},
                        {"G": exported, "G_ema": exported, "D": fresh["D"]})
    assert_same_tensors(exported, final_state(source)["G_ema"])           # the file holds the run's EMA
    err = capsys.readouterr().err
    assert "G and its moving average from" in err and "(its ema weights, step 3); the file holds only G, so D starts " \
        "from its fresh initialisation" in err, err
    assert json.loads((tmp_path / "b" / "run.json").read_text())["init"]["kind"] == "generator"


def test_a_mismatched_tensor_or_family_is_one_line_and_makes_no_folder(tmp_path, source, capsys):
    args = ["train", "mnist-dcgan", *TINY, f"init={source}", "--out", str(tmp_path)]
    one_line(capsys, main([*args, "model.z_dim=24"]), "1 tensor of", "does not fit", "G.net.0.weight",
             "(16, 16, 7, 7) in the source, (24, 16, 7, 7) here", "init.mismatch=reinit")
    one_line(capsys, main([*args, "model=sngan"]), "holds a dcgan model and this run is sngan")
    one_line(capsys, main([*args[:-2], f"init={tmp_path / 'none'}", "--out", str(tmp_path)]), "no such run folder")
    assert not list(tmp_path.iterdir())


def test_reinit_keeps_a_conditional_head_fresh_and_says_which(tmp_path, source, capsys):
    cond = ["model.conditional=true", "model.g_cond=concat"]               # mnist has 10 classes; the source none
    fresh = _nets(_started(tmp_path, *cond, "name=fresh"))
    capsys.readouterr()
    trainer = _started(tmp_path, *cond, f"init={source}", "init.mismatch=reinit", "name=b")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "init.mismatch=reinit: kept the fresh initialisation of 3 tensors that do not fit: " \
        "G.base.net.0.weight ((16, 16, 7, 7) in the source, (48, 16, 7, 7) here), G.embed.weight (not in the source), " \
        "D.embed.weight (not in the source)" in err, err
    nets, src = _nets(trainer), final_state(source)
    new = {"G.base.net.0.weight", "G.embed.weight", "D.embed.weight"}
    for net in NETS:
        for k, t in nets[net].items():
            key = f"{net[0]}.{k}"
            want = fresh[net][k] if key in new else src[net][k.removeprefix("base.")]
            assert torch.equal(t, want), (net, k)
    info = json.loads((tmp_path / "b" / "run.json").read_text())["init"]
    assert sorted(info["fresh"]) == sorted(["G.base.net.0.weight", "G.embed.weight", "D.embed.weight",
                                            "G_ema.base.net.0.weight", "G_ema.embed.weight"])


def test_resume_of_an_init_run_is_bit_exact_and_never_reads_the_source_again(tmp_path, source):
    args = _kw(TINY + [f"init={source}", "model.freeze_d=1", "log.every=1", "log.checkpoint_every=2"])
    straight = ganforge.train("mnist-dcgan", out=tmp_path, name="s", steps=4, progress="off", **args).path
    part = ganforge.train("mnist-dcgan", out=tmp_path, name="p", steps=2, progress="off", **args).path
    moved = source.rename(source.with_name("moved"))
    try:
        ganforge.train(None, out=tmp_path, resume=part, steps=4, progress="off")
    finally:
        moved.rename(source)
    assert numbers(part) == numbers(straight) and len(numbers(part)) == 4
    a, b = final_state(straight), final_state(part)
    for k in (*NETS, "opt_g", "opt_d", "batches", "z", "aux", "game", "torch_rng", "step", "images"):
        assert_same_tensors(a[k], b[k], k)
    src = final_state(source)["D"]
    assert all(torch.equal(b["D"][k], src[k]) for k in ("net.0.weight", "net.0.bias"))     # block 0 frozen
    assert not torch.equal(b["D"]["net.2.weight"], src["net.2.weight"])
    assert json.loads((part / "run.json").read_text())["init"]["from"] == str(source)


FAMILIES = {            # 28 px: dcgan and stylegan D have 2 blocks, sngan and biggan 3; all but the last frozen
    "dcgan": ["model.freeze_d=1"],
    "dcgan-clipped": ["model.freeze_d=1", "loss=wasserstein", "penalty=none"],      # D's clipping spares them
    "sngan": ["model=sngan", "model.freeze_d=2"],
    "stylegan": ["model=stylegan", "model.w_dim=16", "model.mapping_layers=2", "model.max_width=32", "batch_size=8",
                 "penalty.every=1", "model.freeze_d=1"],
    "biggan": ["model=biggan", "model.z_dim=18", "model.shared_dim=8", "model.conditional=true", "model.freeze_d=2"],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_freeze_d_keeps_the_first_blocks_bit_identical_while_the_rest_train(tmp_path, family):
    trainer = _started(tmp_path, *FAMILIES[family], "steps=3", "optim.d.lr=0.01")
    found, n = blocks(trainer.D), trainer.cfg.model.freeze_d
    assert len(found) == n + 1
    frozen = [p for b in found[:n] for p in b.parameters()]
    frozen_ids = {id(p) for p in frozen}
    trained = [p for p in trainer.D.parameters() if id(p) not in frozen_ids]
    before = [p.detach().clone() for p in frozen], [p.detach().clone() for p in trained]
    assert not frozen_ids & {id(p) for g in trainer.opt_d.param_groups for p in g["params"]}
    trainer.run()
    assert trainer.step == 3
    assert all(torch.equal(p, q) and not p.requires_grad for p, q in zip(frozen, before[0]))
    changed = {id(p) for p, q in zip(trained, before[1]) if not torch.equal(p, q)}
    assert all(id(p) in changed for b in found[n:] for p in b.parameters())      # the blocks after them train
    # and the head (wasserstein: all but its bias, which gets no gradient from mean(fake) - mean(real))
    assert len(changed) >= len(trained) - 1 and all(p.requires_grad for p in trained)


@pytest.mark.parametrize("items,words", [
    (["mnist-dcgan", *TINY, "model.freeze_d=3"], ["model.freeze_d=3: this dcgan D has 2 blocks", "choose 0 to 2"]),
    (["toy-ring", "model.freeze_d=1"], ["the mlp family's D has no blocks"]),
])
def test_freeze_d_past_the_blocks_or_without_blocks_is_one_line(tmp_path, capsys, items, words):
    one_line(capsys, main(["train", *items, "--out", str(tmp_path)]), *words)
    assert not list(tmp_path.iterdir())
