"""Issue 9, safe files: `ganforge export` writes a generator as safetensors, load_generator reads it without
pickle, and a checkpoint that would run code when unpickled is refused everywhere, its code never run."""
import json
import os
import pickle
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import ganforge
from ganforge.cli import main
from ganforge.errors import UserError
from ganforge.runs import checkpoint

from conftest import assert_same_tensors, one_line, rewrite_generator

SMALL_P2P = ["model=pix2pix", "model.g_width=8", "model.d_width=8", "model.d_layers=1", "batch_size=8",
             "log.samples_every=100", "eval.metrics=none", "log.progress=off"]


def _train(argv, out):
    assert main(["train", *argv, "--out", str(out)]) == 0
    return sorted(p for p in out.iterdir() if p.is_dir())[-1]


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    """A toy run of 30 steps (MLP, with EMA); tests copy it before changing it."""
    run = ganforge.train("toy-ring", out=tmp_path_factory.mktemp("ring"), steps=30, progress="off")
    return run.path


@pytest.fixture(scope="module")
def conditional_dcgan(tmp_path_factory):
    tiny = ["model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "log.progress=off"]
    return _train(["model.conditional=true", "steps=3", "log.samples_every=100", "eval.metrics=none", *tiny],
                  tmp_path_factory.mktemp("dcgan"))


def export(run, out, *flags):
    return main(["export", str(run), "--out", str(out), *map(str, flags)])


# ---------------------------------------------------------------- round trips

def test_toy_round_trip_same_tensors_and_samples(ring, tmp_path, capsys):
    out = tmp_path / "G.safetensors"
    assert export(ring, out) == 0
    assert "moving-average (EMA) mlp generator" in capsys.readouterr().out
    run, G = ganforge.load_run(ring), ganforge.load_generator(out)
    assert_same_tensors(G.state_dict(), run.G_ema.state_dict())
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert (G.z_dim, G.n_classes, G.shape, G.step, G.weights) == (2, 0, (2,), 30, "ema")
    assert G.config.to_dict() == run.config.to_dict()
    for seed in (0, 7):
        assert torch.equal(G.sample(500, seed=seed), run.sample(500, seed=seed))
    assert not torch.equal(G.sample(50, seed=0), G.sample(50, seed=1))
    # --raw: the trained G, which differs from its average
    assert export(ring, tmp_path / "raw.safetensors", "--raw") == 0
    raw = ganforge.load_generator(tmp_path / "raw.safetensors")
    assert raw.weights == "raw"
    assert_same_tensors(raw.state_dict(), run.G.state_dict())
    assert torch.equal(raw.sample(100, seed=3), run.sample(100, seed=3, ema=False))
    assert not torch.equal(raw.sample(100, seed=3), G.sample(100, seed=3))


def test_the_reference_library_reads_the_file(ring, tmp_path):
    out = tmp_path / "G.safetensors"
    assert export(ring, out) == 0
    with safe_open(str(out), framework="pt") as f:
        header = f.metadata()
        names = set(f.keys())
        first = f.get_tensor(sorted(names)[0])
    assert header["format"] == "ganforge-generator" and header["format_version"] == "1"
    meta = json.loads(header["ganforge"])
    assert meta["config"]["model"]["name"] == "mlp" and meta["shape"] == [2] and meta["step"] == 30
    assert meta["version"] == ganforge.__version__ and meta["checkpoint"] == "step-0000030.pt"
    state = ganforge.load_run(ring).G_ema.state_dict()
    assert names == set(state) and torch.equal(first, state[sorted(names)[0]])
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask          # an ordinary file to share (save_file makes 0600)
    # the layout of the format: 8 bytes little-endian header length, then that much JSON
    raw = out.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert set(json.loads(raw[8:8 + n])) == names | {"__metadata__"}


def test_load_generator_never_unpickles(ring, tmp_path, monkeypatch):
    out = tmp_path / "G.safetensors"
    assert export(ring, out) == 0
    want = ganforge.load_run(ring).sample(200, seed=2)

    def refuse(*a, **k):
        raise AssertionError("load_generator unpickled something")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)
    G = ganforge.load_generator(out)
    assert torch.equal(G.sample(200, seed=2), want)


def test_conditional_image_round_trip(conditional_dcgan, tmp_path):
    out = tmp_path / "c.safetensors"
    assert export(conditional_dcgan, out) == 0
    run, G = ganforge.load_run(conditional_dcgan), ganforge.load_generator(out)
    assert_same_tensors(G.state_dict(), run.G_ema.state_dict())
    assert G.n_classes == 10 and [str(c) for c in G.classes] == [str(c) for c in run.classes]
    assert G.shape == (1, 28, 28) and G.z_dim == 16
    x = G.sample(20, seed=1)
    assert x.shape == (20, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, run.sample(20, seed=1))
    assert torch.equal(G.sample(8, seed=1, label=3), run.sample(8, seed=1, label=3))
    with pytest.raises(UserError, match="out of range"):
        G.sample(4, label=10)


def test_pix2pix_round_trip_and_translate(tmp_path):
    run_dir = _train(["edges2digits", *SMALL_P2P, "steps=2"], tmp_path / "runs")
    run = ganforge.load_run(run_dir)
    assert run.G_ema is not None
    for flags, net in (((), run.G_ema), (("--raw",), run.G)):
        out = tmp_path / f"p{len(flags)}.safetensors"
        assert export(run_dir, out, *flags) == 0
        G = ganforge.load_generator(out)
        assert_same_tensors(G.state_dict(), net.state_dict())
        assert G.shape_a == tuple(run.info["shape_a"]) and G.z_dim == 0
        x = torch.rand(5, *G.shape_a) * 2 - 1
        assert torch.equal(G.translate(x), run.translate(x, ema=not flags))
        with pytest.raises(UserError, match="translates images"):
            G.sample(4)


# ---------------------------------------------------------------- files that are not what they claim

def _set_model(**kw):
    return lambda meta: meta["config"]["model"].update(kw)


@pytest.mark.parametrize("edit, words", [
    ({"meta_edit": _set_model(hidden=64)}, ["do not fit the MLPGenerator", "net.0.weight is (128, 2) in the file, (64, 2) in the network"]),
    ({"tensor_edit": lambda t: t.update({"net.0.bias": torch.zeros(7)})}, ["net.0.bias is (7,) in the file"]),
    ({"tensor_edit": lambda t: t.pop("net.0.bias")}, ["the file lacks net.0.bias"]),
    ({"tensor_edit": lambda t: t.update({"extra": torch.zeros(1)})}, ["the file has extra"]),
    ({"meta_edit": _set_model(name="dcgan")}, ["the config in", "does not build here"]),
    ({"meta_edit": _set_model(name="vqgan")}, ["model family 'vqgan'", "families: mlp"]),
    ({"header_edit": lambda h: h.update(format_version="2")}, ["newer ganforge (generator format 2", "upgrade"]),
    ({"header_edit": lambda h: h.update(format="something-else")}, ["is not a ganforge generator"]),
    ({"header_edit": lambda h: h.update(ganforge="{not json")}, ["no readable ganforge metadata"]),
], ids=["narrower-config", "tensor-shape", "missing-tensor", "extra-tensor", "other-family", "unknown-family",
        "newer-format", "not-ours", "bad-json"])
def test_files_that_do_not_fit_give_one_sentence(ring, tmp_path, edit, words):
    good = tmp_path / "G.safetensors"
    assert export(ring, good) == 0
    bad = rewrite_generator(good, tmp_path / "bad.safetensors", **edit)
    with pytest.raises(UserError) as e:
        ganforge.load_generator(bad)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg, msg
    for w in words:
        assert w in msg, msg


def test_not_a_safetensors_file(ring, tmp_path):
    for name, data in (("junk.safetensors", b"\x00" * 5), ("ckpt.safetensors", None)):
        path = tmp_path / name
        if data is None:
            shutil.copy(checkpoint.list_checkpoints(ring / "checkpoints")[-1], path)    # a torch.save zip
        else:
            path.write_bytes(data)
        with pytest.raises(UserError, match="is not a safetensors file"):
            ganforge.load_generator(path)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))              # safetensors, not ours
    with pytest.raises(UserError, match="is not a ganforge generator"):
        ganforge.load_generator(tmp_path / "plain.safetensors")
    with pytest.raises(UserError, match="does not exist"):
        ganforge.load_generator(tmp_path / "none.safetensors")


# ---------------------------------------------------------------- a checkpoint that would run code

class _Payload:
    """Unpickling this object runs code: it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"__import__('pathlib').Path({self.marker!r}).touch()",))


def _plant(path, marker):
    torch.save({"format": checkpoint.FORMAT, "step": 10, "G": _Payload(marker)}, path)


def test_the_planted_payload_is_real(tmp_path):
    """The trap works: loaded the unsafe way, the file runs its code."""
    _plant(tmp_path / "evil.pt", tmp_path / "ran")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert (tmp_path / "ran").exists()


@pytest.fixture
def trapped(ring, tmp_path):
    """A copy of the ring run cut back to one good checkpoint (step 30), with a code-running step-0000040.pt
    as its newest checkpoint and as checkpoints/best.pt."""
    run = tmp_path / "x"
    shutil.copytree(ring, run)
    ck = run / "checkpoints"
    marker = tmp_path / "code-ran"
    _plant(ck / "step-0000040.pt", marker)
    shutil.copy(ck / "step-0000040.pt", ck / "best.pt")
    assert checkpoint.list_checkpoints(ck)[-1].name == "step-0000040.pt"
    return run, marker


def test_a_code_running_checkpoint_is_refused_and_never_run(trapped, tmp_path, capsys):
    run, marker = trapped
    evil, best = run / "checkpoints" / "step-0000040.pt", run / "checkpoints" / "best.pt"
    with pytest.raises(UserError, match="loads safely") as e:
        checkpoint.load(evil)
    assert str(evil) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="loads safely") as e:
        ganforge.load_run(run, which="best")
    assert str(best) in str(e.value)
    one_line(capsys, export(run, tmp_path / "b.safetensors", "--checkpoint", "best"), best, "loads safely")
    one_line(capsys, export(run, tmp_path / "e.safetensors", "--checkpoint", evil), evil, "loads safely")
    assert not (tmp_path / "b.safetensors").exists() and not (tmp_path / "e.safetensors").exists()
    # latest: the newest checkpoint that loads is used (step 30), by design, and the trap stays shut
    capsys.readouterr()
    assert ganforge.load_run(run).step == 30
    warned = capsys.readouterr().err
    assert warned.startswith("ganforge: warning: using step-0000030.pt: ") and str(evil) in warned
    assert "it would run code: Unsupported global" in warned and warned.count("\n") == 1
    assert export(run, tmp_path / "l.safetensors") == 0 and "step-0000030.pt" in capsys.readouterr().out
    assert main(["sample", str(run), "-n", "16", "--out", str(tmp_path / "s.npz")]) == 0
    assert main(["train", "--resume", str(run), "steps=40"]) == 0
    assert ganforge.load_run(run).step == 40                  # resumed from 30; step-0000040.pt is now a real one
    assert not marker.exists()


def test_when_only_a_code_running_checkpoint_is_left(trapped, tmp_path, capsys):
    run, marker = trapped
    (run / "checkpoints" / "step-0000030.pt").unlink()
    evil = run / "checkpoints" / "step-0000040.pt"
    one_line(capsys, export(run, tmp_path / "G.safetensors"), evil, "loads safely")
    assert not (tmp_path / "G.safetensors").exists()
    with pytest.raises(UserError):
        ganforge.load_run(run)
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 2
    assert not marker.exists()


@pytest.mark.parametrize("how", ["load_run", "sample", "resume"])
def test_only_a_code_running_checkpoint_is_named(trapped, tmp_path, capsys, how):
    run, marker = trapped
    (run / "checkpoints" / "step-0000030.pt").unlink()
    evil = run / "checkpoints" / "step-0000040.pt"
    if how == "load_run":
        with pytest.raises(UserError, match="step-0000040.pt"):
            ganforge.load_run(run)
    elif how == "sample":
        one_line(capsys, main(["sample", str(run), "--out", str(tmp_path / "s.png")]), evil)
    else:
        one_line(capsys, main(["train", "--resume", str(run)]), evil)
    assert not marker.exists()


# ---------------------------------------------------------------- command-line mistakes and atomic writes

def test_export_mistakes_are_one_line(ring, tmp_path, capsys):
    out = tmp_path / "G.safetensors"
    out.write_bytes(b"precious")
    one_line(capsys, export(ring, out), "exists", "--force")
    assert out.read_bytes() == b"precious"
    one_line(capsys, export(ring, tmp_path / "G.pt"), "must end in .safetensors")
    one_line(capsys, export(tmp_path, tmp_path / "n.safetensors"), "not a ganforge run folder")
    one_line(capsys, export(tmp_path / "nope", tmp_path / "n.safetensors"), "not a ganforge run folder")
    one_line(capsys, export(ring, tmp_path / "n.safetensors", "--checkpoint", "best"), "no checkpoints/best.pt")
    one_line(capsys, export(ring, tmp_path / "n.safetensors", "--checkpoint", tmp_path / "x.pt"), "best, latest or")
    empty = tmp_path / "empty"
    shutil.copytree(ring, empty)
    shutil.rmtree(empty / "checkpoints")
    one_line(capsys, export(empty, tmp_path / "n.safetensors"), "has no checkpoint yet")
    assert [p.name for p in tmp_path.glob("*.safetensors")] == ["G.safetensors"] and not list(tmp_path.glob(".*.tmp-*"))
    assert export(ring, out, "--force") == 0
    assert ganforge.load_generator(out).step == 30


def test_a_failed_write_leaves_the_old_file(ring, tmp_path, monkeypatch):
    """A full disk found at fsync (delayed allocation): the half-written temporary file goes, the old file stays."""
    out = tmp_path / "G.safetensors"
    out.write_bytes(b"old")
    seen = []

    def full(fd):
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        ganforge.export.export_generator(ring, out, force=True)
    monkeypatch.undo()
    assert seen and ".G.safetensors.tmp-" in seen[0]            # the bytes went to a temporary file beside it
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["G.safetensors"]
