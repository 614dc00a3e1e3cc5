"""The command line: user mistakes give one line and exit code 2; commands write what they say."""
import json

import numpy as np
import pytest
from PIL import Image

import ganforge
from ganforge.cli import main

from conftest import run_cli


def one_line_error(capsys, argv):
    code = main(argv) if not isinstance(argv, tuple) else main(list(argv))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("argv,needle", [
    (["train", "batch_size=-1"], "batch_size must be an integer >= 1"),
    (["train", "optim.g.lrr=1e-4"], "did you mean 'optim.g.lr'"),
    (["train", "nope.yaml"], "config file nope.yaml does not exist"),
    (["train", "toy-grid", "extra"], "unexpected argument 'extra'"),
    (["train", "data=folder:/does/not/exist"], "does not exist"),
    (["train", "data=mnist", "data.resolution=30"], "cannot build 30x30"),
    (["train", "data=ring"], "model dcgan needs image data"),
    (["train", "data=digits", "batch_size=5000"], "larger than the dataset"),
    (["train", "toy-ring", "model.pack=3"], "multiple of model.pack=3"),
    (["train", "device=cuda:7"], "device=cuda:7"),
    (["train", "precision=fp16", "device=cpu"], "precision=fp16 needs a CUDA device"),
    (["train", "--resume", "/no/such/run"], "no such run folder"),
    (["sample", "/no/such/run", "--out", "x.png"], "not a ganforge run folder"),
    (["data", "show", "mnsit", "--out", "x.png"], "did you mean 'mnist'"),
])
def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, err = one_line_error(capsys, argv)
    assert code == 2
    assert needle in err
    assert err.count("\n") == 1 and err.startswith("ganforge: error: ")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_overrides_may_follow_options(tmp_path):
    assert main(["train", "toy-ring", "--out", str(tmp_path), "steps=3", "log.progress=off"]) == 0
    assert (tmp_path / "toy-ring" / "checkpoints" / "step-0000003.pt").is_file()


def test_argparse_mistakes_are_one_line_too():
    for argv in (["sample"], ["train", "--bogus"], ["sample", "run", "--out", "x.png", "steps=3"]):
        r = run_cli(*argv)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, argv


def test_sample_eval_and_no_overwrite(tmp_path, capsys):
    run = ganforge.train("toy-ring", out=tmp_path, steps=30, progress="off")
    png, npz = tmp_path / "s.png", tmp_path / "s.npz"
    assert main(["sample", str(run.path), "-n", "200", "--out", str(png)]) == 0
    assert Image.open(png).size[0] > 100
    assert main(["sample", str(run.path), "-n", "50", "--out", str(npz), "--seed", "3"]) == 0
    x = np.load(npz)["x"]
    assert x.shape == (50, 2) and np.array_equal(x, run.sample(50, seed=3).numpy())
    capsys.readouterr()
    assert main(["sample", str(run.path), "--out", str(npz)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["sample", str(run.path), "--out", str(tmp_path / "x.jpg")]) == 2
    assert main(["sample", str(run.path), "--out", str(tmp_path / "t.png"), "--truncation", "0.7"]) == 2
    assert "does not support truncation" in capsys.readouterr().err
    assert main(["eval", str(run.path), "-n", "300"]) == 0
    out = capsys.readouterr().out
    assert "modes" in out and "high quality" in out
    rec = json.loads((run.path / "eval.json").read_text())["evaluations"][-1]
    assert rec["n"] == 300 and rec["generator"] == "ema" and rec["step"] == 30
    modes = rec["metrics"]["modes"]
    assert modes["of"] == 8 and modes["n"] == 300 and {"kl_reverse", "kl_forward", "jsd", "floor"} <= set(modes)


def test_image_sample_grid(tmp_path, tiny_dcgan):
    run = ganforge.train("mnist-dcgan", out=tmp_path, steps=3, progress="off", **dict(o.split("=") for o in tiny_dcgan))
    out = tmp_path / "g.png"
    assert main(["sample", str(run.path), "-n", "16", "--out", str(out), "--nrow", "4"]) == 0
    im = Image.open(out)
    assert im.size == (2 + 4 * 30, 2 + 4 * 30) and im.mode == "L"
    x = run.sample(4)
    assert x.shape == (4, 1, 28, 28) and x.abs().max() <= 1


def test_data_list_and_show(tmp_path, capsys):
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("mnist", "digits", "ring", "grid", "spiral", "mixture1d", "folder:PATH", "npz:PATH", "idx:PATH",
                 "cifar10:PATH"):
        assert name in listing
    out = tmp_path / "m.png"
    assert main(["data", "show", "mnist", "--out", str(out)]) == 0
    assert "5000 samples of shape 1x28x28, 10 classes" in capsys.readouterr().out
    assert Image.open(out).size == (2 + 10 * 30, 2 + 10 * 30)
    assert main(["data", "show", "grid", "--out", str(tmp_path / "g.png")]) == 0
    assert main(["data", "show", "digits", "resolution=16", "--out", str(tmp_path / "d.png")]) == 0


def test_config_command_prints_resolved_yaml(capsys):
    assert main(["config", "toy-grid", "loss=hinge"]) == 0
    text = capsys.readouterr().out
    assert "loss: hinge" in text and "hidden: 128" in text
