"""Issue 23: a checkpoint or generator file that loads safely (no code runs) but holds the wrong things is refused
with one line naming the entry, before any of it is used: Adam moments of another size (which crashed the fused
CPU kernel with a segmentation fault), wrong types and sizes, NaN weights, networks too large to build, and
files that are not regular files. Every file here is crafted the way an attacker would: a real run's checkpoint
loaded with torch.load(weights_only=True), one entry altered, saved back."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import UserError
from ganforge.runs import checkpoint

from conftest import ganforge_cmd, one_line, rewrite_generator

W = "net.0.weight"


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    """A toy run of 30 steps (MLP, with EMA) with one checkpoint, step 30; tests copy it before changing it."""
    return ganforge.train("toy-ring", out=tmp_path_factory.mktemp("ring"), steps=30, progress="off").path


@pytest.fixture(scope="module")
def generator(ring, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "G.safetensors"
    ganforge.export.export_generator(ring, out)
    return out


def altered(ring, tmp_path, edit, name="run"):
    """A copy of the ring run whose checkpoint ``edit(state)`` changed."""
    run = tmp_path / name
    shutil.copytree(ring, run)
    ck = run / "checkpoints" / "step-0000030.pt"
    state = torch.load(ck, weights_only=True)
    edit(state)
    torch.save(state, ck)
    return run


def setter(*path, value):
    """An edit that sets state[path...] to ``value`` (a callable: of the old value)."""
    def edit(state):
        d = state
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value(d[path[-1]]) if callable(value) else value
    return edit


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- the segmentation fault

def _other_size(state):
    for k in ("exp_avg", "exp_avg_sq"):
        state["opt_g"]["state"][2][k] = torch.zeros(8, 4)


def _expanded(state):
    for k in ("exp_avg", "exp_avg_sq"):
        state["opt_g"]["state"][2][k] = torch.zeros(1).expand(128, 128)


@pytest.mark.parametrize("edit, words", [
    (_other_size, "opt_g.state.2.exp_avg is (8, 4), the run's parameter is (128, 128)"),
    (_expanded, "opt_g.state.2.exp_avg is a view with strides (0, 0) that do not cover its memory once"),
], ids=["another-size", "an-expanded-view"])
def test_adam_moments_that_crashed_fused_adam_are_refused(ring, tmp_path, edit, words):
    """Fused CPU Adam reads and writes exp_avg/exp_avg_sq without checking their size or layout: with (8, 4)
    moments for a (128, 128) weight, or a (128, 128) view of one float (strides 0, as torch.save keeps it),
    ``train --resume`` died with SIGSEGV (exit -11). Now: exit 2, one line, nothing run or written."""
    run = altered(ring, tmp_path, edit)
    before = snapshot(run)
    r = subprocess.run(ganforge_cmd("train", "--resume", run, "steps=40"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert line == f"ganforge: error: {run}/checkpoints/step-0000030.pt: {words}; it comes from another run or was altered"
    assert "Traceback" not in r.stderr
    kept = ("checkpoints", "samples", "metrics.jsonl", "run.json")      # the lock and config.yaml are rewritten
    assert {k: v for k, v in snapshot(run).items() if k.startswith(kept)} == \
        {k: v for k, v in before.items() if k.startswith(kept)}


# ---------------------------------------------------------------- wrong entries, one line each

OPT0 = ("opt_g", "state", 0)
CASES = {
    "format-string": (setter("format", value="1"), "format is the string '1', not a checkpoint format number"),
    "G-a-tensor": (setter("G", value=torch.zeros(3)), "G is a tensor (3,), not a dict"),
    "step-string": (setter("step", value="abc"), "step is the string 'abc', not an integer"),
    "step-bool": (setter("step", value=True), "step is the bool True, not an integer"),
    "images-negative": (setter("images", value=-1), "images is -1, not an integer from 0"),
    "time-string": (setter("time", value="x"), "time is the string 'x', not a number"),
    "rng-size": (setter("torch_rng", value=torch.zeros(10, dtype=torch.uint8)),
                 "torch_rng is (10,), the run's generator state is (5056,)"),
    "rng-float": (setter("torch_rng", value=torch.zeros(5056)), "torch_rng is float32, the run's generator state is uint8"),
    "rng-garbage": (setter("torch_rng", value=torch.zeros(5056, dtype=torch.uint8)),
                    "torch_rng is not a valid generator state (Invalid mt19937 state)"),
    "G-nan": (setter("G", W, value=lambda t: t * float("nan")),
              "G.net.0.weight holds 256 NaN or Inf values of 256; the run had diverged when it was written"),
    "D-one-inf": (setter("D", W, value=lambda t: t.index_fill(0, torch.tensor([0]), float("inf"))),
                  "D.net.0.weight holds 2 NaN or Inf values of 256"),
    "G_ema-float64": (setter("G_ema", W, value=lambda t: t.double()), "G_ema.net.0.weight is float64, the run's is float32"),
    "G-0-d": (setter("G", W, value=torch.tensor(1.0)), "(G.net.0.weight is (), the run's is (128, 2))"),
    "G-sparse": (setter("G", W, value=lambda t: t.to_sparse()), "G.net.0.weight is a sparse_coo tensor"),
    "G-extra-key": (setter("G", "extra", value=torch.zeros(1)), "Unexpected key(s) in state_dict: \"G.extra\""),
    "config-a-list": (setter("config", value=[1, 2]), "config is a list of 2 items, not a dict"),
    "adam-step-nan": (setter(*OPT0, "step", value=torch.tensor(float("nan"))), "opt_g.state.0.step holds 1 NaN"),
    "adam-step-vector": (setter(*OPT0, "step", value=torch.ones(3)), "opt_g.state.0.step is a float32 tensor (3,)"),
    "adam-key-missing": (lambda s: s["opt_g"]["state"][0].pop("exp_avg_sq"), "opt_g.state.0 lacks exp_avg_sq"),
    "adam-other-param": (setter("opt_g", "state", 99, value={}), "opt_g.state.99 is there, but the run's opt_g has "
                                                                  "parameters 0 to 7"),
    "adam-moment-dtype": (setter(*OPT0, "exp_avg", value=lambda t: t.double()),
                          "opt_g.state.0.exp_avg is float64, the run's parameter is float32"),
    "adam-shared-memory": (lambda s: s["opt_d"]["state"][1].__setitem__("exp_avg_sq", s["opt_d"]["state"][1]["exp_avg"]),
                           "opt_d.state.1.exp_avg_sq shares its memory with opt_d.state.1.exp_avg"),
    "amsgrad-flag": (setter("opt_g", "param_groups", 0, "amsgrad", value=True),
                     "opt_g.param_groups.0.amsgrad is the bool True, the run's is False"),
    "params-list": (setter("opt_d", "param_groups", 0, "params", value=[0, 1]), "opt_d.param_groups.0.params is a list"),
    "lr-nan": (setter("opt_g", "param_groups", 0, "lr", value=float("nan")), "opt_g.param_groups.0.lr is nan"),
    "optimizer-a-tensor": (setter("opt_d", value=torch.zeros(2)), "opt_d is a tensor (2,), not a dict"),
    "batches-bool": (setter("batches", "drawn", value=True), "batches.drawn is the bool True"),
    "z-no-count": (lambda s: s["z"].pop("count"), "z lacks count"),
    "game-string": (setter("game", "d_count", value="3"), "game.d_count is the string '3', not an integer"),
    "acc-count": (setter("acc", value={"loss_d": [torch.tensor(1.0), "x"]}), "acc.loss_d.1 is the string 'x'"),
    "best-a-list": (setter("best", value=[1]), "best is a list of 1 items, not a dict"),
    "lr_scale-zero": (setter("lr_scale", value=0.0), "lr_scale is 0.0, not a finite number > 0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_entry_is_one_line_on_resume(ring, tmp_path, capsys, case):
    edit, words = CASES[case]
    run = altered(ring, tmp_path, edit)
    ck = run / "checkpoints" / "step-0000030.pt"
    before = ck.read_bytes()
    capsys.readouterr()
    one_line(capsys, main(["train", "--resume", str(run), "steps=31"]), ck, words)
    assert ck.read_bytes() == before and checkpoint.list_checkpoints(run / "checkpoints") == [ck]


@pytest.mark.parametrize("case", ["format-string", "G-a-tensor", "step-string", "G-nan", "G_ema-float64",
                                  "config-a-list", "G-extra-key"])
def test_a_wrong_entry_is_one_line_for_sample_and_export(ring, tmp_path, capsys, case):
    edit, words = CASES[case]
    run = altered(ring, tmp_path, edit)
    capsys.readouterr()
    one_line(capsys, main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.npz")]), words)
    one_line(capsys, main(["export", str(run), "--out", str(tmp_path / "G.safetensors")]), words)
    assert not (tmp_path / "s.npz").exists() and not (tmp_path / "G.safetensors").exists()


def test_a_moving_average_in_a_run_that_keeps_none_is_refused(ring, tmp_path, capsys):
    """config.yaml says ema.enabled=false but the checkpoint holds a G_ema: before, sample and export used it as
    the run's generator without a word."""
    run = tmp_path / "run"
    shutil.copytree(ring, run)
    cfg = run / "config.yaml"
    assert "ema:\n  enabled: true\n" in cfg.read_text()
    cfg.write_text(cfg.read_text().replace("ema:\n  enabled: true\n", "ema:\n  enabled: false\n"))
    words = "G_ema is there, but the run keeps no moving average of G (ema.enabled=false)"
    for argv in (["sample", run, "-n", "4", "--out", tmp_path / "s.npz"], ["export", run, "--out", tmp_path / "G.safetensors"],
                 ["train", "--resume", run, "steps=31"]):
        one_line(capsys, main(list(map(str, argv))), words)


def test_a_damaged_run_json_shape_is_one_line(ring, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(ring, run)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "shape": ["a"]}))
    for argv in (["sample", run, "-n", "4", "--out", tmp_path / "s.npz"], ["export", run, "--out", tmp_path / "G.safetensors"]):
        one_line(capsys, main(list(map(str, argv))), f"{run}/run.json: shape is ['a'], not a list of one to three "
                                                     "positive integers")


def test_nothing_is_loaded_before_everything_is_checked(ring, tmp_path):
    """A state whose G is fine but whose opt_d is not: the trainer keeps its own G (torch's loaders would have
    copied G, then taken the misfit moments without a word)."""
    from ganforge.train.start import start
    run = tmp_path / "run"
    shutil.copytree(ring, run)
    trainer, _ = start(None, (), tmp_path, resume=run)
    try:
        state = torch.load(run / "checkpoints" / "step-0000030.pt", weights_only=True)
        mine = {k: v.clone() for k, v in trainer.G.state_dict().items()}
        state["G"] = {k: torch.zeros_like(v) for k, v in state["G"].items()}
        state["opt_d"]["state"][0]["exp_avg"] = torch.zeros(3, 3)
        with pytest.raises(UserError, match=r"opt_d.state.0.exp_avg is \(3, 3\), the run's parameter is \(128, 2\)"):
            trainer.load_state_dict(state, "crafted")
        assert all(torch.equal(v, trainer.G.state_dict()[k]) for k, v in mine.items())
    finally:
        trainer.release_lock()


@pytest.mark.parametrize("bad", [(40,), (20, 40)], ids=["newest", "all"])
def test_rollback_never_lands_on_a_checkpoint_with_nan_weights(tmp_path, capsys, bad):
    """guard.nonfinite=rollback: checkpoints ``bad`` hold NaN weights (what a run without the guard, or an altered
    file, leaves); a NaN update at step 46 rolls back to step 20, the newest that passes the checks, named in a
    warning, or stops in one line when none does (before: it rolled back onto the NaN weights)."""
    from ganforge.train.guard import Diverged
    from ganforge.train.start import start
    trainer, _ = start("toy-ring", ("steps=60", "log.every=10", "log.checkpoint_every=20", "log.samples_every=100",
                                    "log.progress=off", "eval.metrics=none", "guard.nonfinite=rollback"), tmp_path)
    save, poisoned = trainer.save_checkpoint, {45}

    def save_checkpoint():
        save()
        if trainer.step in bad:
            ck = trainer.run_dir / "checkpoints" / f"step-{trainer.step:07d}.pt"
            state = torch.load(ck, weights_only=True)
            state["G"][W] = state["G"][W] * float("nan")
            torch.save(state, ck)
    trainer.save_checkpoint = save_checkpoint

    def hook(module, inputs, output):
        if trainer.step in poisoned:
            poisoned.discard(trainer.step)
            return output * float("nan")
    trainer.D.register_forward_hook(hook)
    newest = f"{trainer.run_dir}/checkpoints/step-0000040.pt: G.net.0.weight holds 256 NaN or Inf values of 256"
    if bad == (20, 40):
        with pytest.raises(Diverged) as e:
            trainer.run()
        assert str(e.value).startswith("stopped at step 46: D's loss is nan, and there is no checkpoint to roll back "
                                       f"to: no checkpoint in {trainer.run_dir}/checkpoints loads; the newest: "
                                       f"{newest}"), str(e.value)
        return
    trainer.run()
    err = capsys.readouterr().err
    assert f"ganforge: warning: using step-0000020.pt: {newest}" in err, err
    assert "step 46: D's loss is nan; rolled back to step 20" in err, err
    assert trainer.step == 60 and all(torch.isfinite(p).all() for p in trainer.G.parameters())


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    """A 3-step CycleGAN run (pool_size 6: its image pools are full at step 3)."""
    small = {"model": "cyclegan", "data": "invert-digits", "model.g_width": 4, "model.blocks": 1, "model.d_width": 4,
             "model.d_layers": 1, "model.pool_size": 6, "batch_size": 4, "log.samples_every": 100,
             "eval.metrics": "none"}
    return ganforge.train(None, out=tmp_path_factory.mktemp("cycle"), steps=3, progress="off", **small).path


@pytest.mark.parametrize("images, words", [
    (torch.zeros(6, 3, 28, 28), "game.pool_a.images is (6, 3, 28, 28), the run keeps up to 6 samples of (1, 28, 28)"),
    (torch.zeros(7, 1, 28, 28), "game.pool_a.images is (7, 1, 28, 28), the run keeps up to 6 samples of (1, 28, 28)"),
    ("x", "game.pool_a.images is the string 'x', not a tensor"),
], ids=["other-channels", "more-than-the-pool", "a-string"])
def test_cyclegan_image_pools_are_checked(cycle, tmp_path, capsys, images, words):
    run = tmp_path / "run"
    shutil.copytree(cycle, run)
    ck = checkpoint.list_checkpoints(run / "checkpoints")[-1]
    state = torch.load(ck, weights_only=True)
    assert tuple(state["game"]["pool_a"]["images"].shape) == (6, 1, 28, 28)
    state["game"]["pool_a"]["images"] = images
    torch.save(state, ck)
    one_line(capsys, main(["train", "--resume", str(run), "steps=4"]), ck, words)


# ---------------------------------------------------------------- files that are not files

def test_a_checkpoint_that_is_a_fifo_or_a_directory(ring, tmp_path, capsys):
    """A FIFO named step-N.pt made every reader block forever (a subprocess here, so that the old behaviour
    fails the test instead of hanging it); a directory gave torch's IsADirectoryError. Now one line each."""
    run = tmp_path / "run"
    shutil.copytree(ring, run)
    ck = run / "checkpoints" / "step-0000030.pt"
    ck.unlink()
    os.mkfifo(ck)
    r = subprocess.run(ganforge_cmd("sample", run, "--out", tmp_path / "s.png"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{ck} is not a ganforge checkpoint that loads safely (a FIFO, not a regular file)" in r.stderr
    ck.unlink()
    ck.mkdir()
    for argv in (["sample", run, "--out", tmp_path / "s.png"], ["train", "--resume", run, "steps=31"]):
        one_line(capsys, main(list(map(str, argv))), f"{ck} is not a ganforge checkpoint that loads safely "
                                                     "(a folder, not a regular file)")


# ---------------------------------------------------------------- generator files

GEN_CASES = {
    "shape-strings": ({"meta_edit": lambda m: m.update(shape=["a", "b"])},
                      "metadata.shape is ['a', 'b'], not a list of one to three positive integers"),
    "z_dim-string": ({"meta_edit": lambda m: m.update(z_dim="2")}, "metadata.z_dim is the string '2', not an integer"),
    "classes-string": ({"meta_edit": lambda m: m.update(classes="abc")}, "metadata.classes is the string 'abc'"),
    "step-string": ({"meta_edit": lambda m: m.update(step="x")}, "metadata.step is the string 'x', not an integer"),
    "config-list": ({"meta_edit": lambda m: m.update(config=[1])}, "metadata.config is a list of 1 items, not a dict"),
    "model-list": ({"meta_edit": lambda m: m["config"].update(model=[1])}, "metadata.config.model is a list"),
    "complex": ({"tensor_edit": lambda t: t.update({W: t[W].to(torch.complex64)})},
                "net.0.weight is C64 in the file, F32 in the network"),
    "int": ({"tensor_edit": lambda t: t.update({W: t[W].to(torch.int32)})}, "net.0.weight is I32 in the file"),
    "all-nan": ({"tensor_edit": lambda t: t.update({k: v * float("nan") for k, v in t.items()})},
                "hold NaN or Inf values (net.0.bias: 128 of 128)"),
    "one-inf": ({"tensor_edit": lambda t: t[W].__setitem__((0, 0), float("inf"))},
                "hold NaN or Inf values (net.0.weight: 1 of 256)"),
}


@pytest.mark.parametrize("case", list(GEN_CASES))
def test_a_generator_file_with_wrong_contents_is_one_line(generator, tmp_path, case):
    edit, words = GEN_CASES[case]
    bad = rewrite_generator(generator, tmp_path / "bad.safetensors", **edit)
    with pytest.raises(UserError) as e:
        ganforge.load_generator(bad)
    assert "\n" not in str(e.value) and str(bad) in str(e.value) and words in str(e.value), str(e.value)


LIMITED = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))     # 6 GB of address space: no giant net fits
    from ganforge.cli import main
    import ganforge
    if sys.argv[1] == "load":
        try:
            ganforge.load_generator(sys.argv[2])
        except ganforge.UserError as e:
            print(f"ganforge: error: {e}", file=sys.stderr)
            sys.exit(2)
    else:
        sys.exit(main(sys.argv[1:]))
""")


def limited(*argv):
    """A command in a process that cannot map more than 6 GB (what allocating a declared giant would need)."""
    return subprocess.run([sys.executable, "-c", LIMITED, *map(str, argv)], capture_output=True, text=True,
                          timeout=120)


def _wide_dcgan(m):
    m["config"]["model"] = {"name": "dcgan", "g_width": 100000, "max_width": 100000, "z_dim": 2}
    m["shape"] = [3, 64, 64]


@pytest.mark.parametrize("edit, words", [
    (_wide_dcgan, "do not fit the DCGANGenerator its config builds: the file lacks"),
    (lambda m: m["config"]["model"].update(hidden=100000),
     "do not fit the MLPGenerator its config builds: net.0.weight is (128, 2) in the file, (100000, 2) in the network"),
    (lambda m: m.update(shape=[3, 100000, 100000]),
     "do not fit the MLPGenerator its config builds: net.6.weight is (2, 128) in the file, (30000000000, 128)"),
    (lambda m: m.update(shape=[3, 2 ** 31 - 1, 2 ** 31 - 1]),
     "does not build here: its networks cannot be built (TypeError: empty(): argument 'size'"),
], ids=["dcgan-width-100000", "mlp-hidden-100000", "data-shape-3x100000x100000", "past-int64"])
def test_a_generator_file_declaring_a_giant_network_is_refused_before_allocating(generator, tmp_path, edit, words):
    """Metadata that declares a network of 80 GB to 30 TB over the toy's few tensors: before, load_generator
    built the network first and died allocating it (in a process limited to 6 GB here)."""
    bad = rewrite_generator(generator, tmp_path / "giant.safetensors", meta_edit=edit)
    r = limited("load", bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert str(bad) in r.stderr and words in r.stderr, r.stderr


@pytest.mark.parametrize("how", ["export", "sample"])
def test_a_run_whose_config_declares_a_giant_network_is_refused_before_allocating(ring, tmp_path, how):
    """config.yaml edited to model.hidden=100000 (two 40 GB layers): the checkpoint's small G is compared with the
    network built on the meta device, before a real one is built."""
    run = tmp_path / "run"
    shutil.copytree(ring, run)
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text().replace("hidden: 128", "hidden: 100000"))
    argv = ["export", run, "--out", tmp_path / "G.safetensors"] if how == "export" else ["sample", run, "--out",
                                                                                          tmp_path / "s.npz"]
    r = limited(*argv)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert (f"{run}/checkpoints/step-0000030.pt does not fit the run's mlp model (G.net.0.weight is (128, 2), "
            "the run's is (100000, 2))") in r.stderr, r.stderr


def test_a_generator_larger_than_the_free_memory_is_refused_with_the_sizes(generator, monkeypatch):
    from ganforge import memory
    monkeypatch.setattr(memory, "available", lambda device=None: 1000)
    monkeypatch.delenv(memory.INSIST_ENV, raising=False)
    with pytest.raises(UserError, match=r"the generator in .*G.safetensors needs about .* of memory and this "
                                        r"machine has 1 KB free"):
        ganforge.load_generator(generator)


def test_the_good_files_still_load(ring, generator):
    assert ganforge.load_generator(generator).step == 30
    assert ganforge.load_run(ring).step == 30
