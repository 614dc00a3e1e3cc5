"""Training end to end: files, determinism, exact resume after SIGKILL, Ctrl-C."""
import json
import random
import signal
import subprocess
import time

import pytest
import torch

import ganforge
from ganforge.errors import UserError

from conftest import assert_same_tensors, final_state, ganforge_cmd, numbers, run_cli

STATE_KEYS = ("G", "D", "G_ema", "opt_g", "opt_d", "batches", "z", "aux", "game", "torch_rng", "step", "images")


def test_toy_run_end_to_end(tmp_path):
    run = ganforge.train("toy-ring", out=tmp_path, steps=300, progress="off",
                         log={"every": 50, "samples_every": 100, "checkpoint_every": 100}, eval={"every": 150})
    d = run.path
    assert d == tmp_path / "toy-ring"
    for f in ("config.yaml", "run.json", "metrics.jsonl"):
        assert (d / f).is_file()
    lines = numbers(d)
    assert [r["step"] for r in lines] == [50, 100, 150, 200, 250, 300]
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_g", "grad_d", "lr_g", "lr_d", "kimg", "penalty"):
        assert key in lines[-1], key
    assert "modes" in lines[2] and "modes" in lines[-1] and "modes" not in lines[0]
    assert sorted(p.name for p in (d / "samples").glob("*.png")) == [f"step-{s:07d}.png" for s in (0, 100, 200, 300)]
    assert len(list((d / "checkpoints").glob("step-*.pt"))) == 3
    assert list((d / "tb").glob("events.out.tfevents.*"))
    x = run.sample(500, seed=1)
    assert x.shape == (500, 2) and torch.equal(x, run.sample(500, seed=1))
    assert not torch.equal(x, run.sample(500, seed=2))
    assert run.config.model.name == "mlp" and run.step == 300


def test_same_seed_same_numbers(tmp_path, tiny_dcgan):
    args = ["steps=12", "log.every=4", "log.checkpoint_every=12", "log.samples_every=12"] + tiny_dcgan
    kw = dict(out=tmp_path, progress="off")
    a = ganforge.train("mnist-dcgan", name="a", **_kw(args), **kw)
    b = ganforge.train("mnist-dcgan", name="b", **_kw(args), **kw)
    assert numbers(a.path) == numbers(b.path)
    sa, sb = final_state(a.path), final_state(b.path)
    for k in STATE_KEYS:
        assert_same_tensors(sa[k], sb[k], k)
    c = ganforge.train("mnist-dcgan", name="c", seed=1, **_kw(args), **kw)
    assert numbers(c.path) != numbers(a.path)


def _kw(overrides):
    return dict(o.split("=", 1) for o in overrides)


def _kill_and_resume(tmp_path, preset, overrides, kills=2):
    """Train once straight, once killed with SIGKILL ``kills`` times and resumed; return both run folders."""
    straight = run_cli("train", preset, *overrides, "name=straight", "--out", tmp_path)
    assert straight.returncode == 0, straight.stderr
    run = tmp_path / "killed"
    rng = random.Random(0)
    args = ["train", preset, *overrides, "name=killed", "--out", tmp_path]
    for _ in range(kills):
        before = sorted((run / "checkpoints").glob("step-*.pt"))
        proc = subprocess.Popen(ganforge_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and sorted((run / "checkpoints").glob("step-*.pt")) == before:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        args = ["train", "--resume", run]
    steps = int(next(o for o in overrides if o.startswith("steps=")).split("=")[1])
    assert final_state(run)["step"] < steps          # the kills really interrupted it
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    return tmp_path / "straight", run


@pytest.mark.cuda
def test_sigkill_resume_is_bit_exact_dcgan(tmp_path, tiny_dcgan):
    straight, killed = _kill_and_resume(
        tmp_path, "mnist-dcgan", ["steps=240", "log.every=5", "log.checkpoint_every=30", "log.samples_every=100", "eval.metrics=none"]
        + tiny_dcgan)
    assert numbers(killed) == numbers(straight)
    a, b = final_state(straight), final_state(killed)
    for k in STATE_KEYS:
        assert_same_tensors(a[k], b[k], k)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_writes_a_checkpoint_and_resumes(tmp_path, sig):
    args = ["train", "toy-ring", "steps=100000", "log.checkpoint_every=100000", "name=r", "--out", tmp_path]
    proc = subprocess.Popen(ganforge_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    metrics = tmp_path / "r" / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "ganforge train --resume" in err
    ckpts = list((tmp_path / "r" / "checkpoints").glob("step-*.pt"))
    assert len(ckpts) == 1
    step = torch.load(ckpts[0], weights_only=True)["step"]
    assert 0 < step < 100000
    done = run_cli("train", "--resume", tmp_path / "r", f"steps={step + 20}", "log.progress=off")
    assert done.returncode == 0, done.stderr
    assert final_state(tmp_path / "r")["step"] == step + 20


def test_checkpoints_and_samples_rotate_and_the_old_key_name_still_resumes(tmp_path):
    kw = {"log.checkpoint_every": 3, "eval.metrics": "none", "log.tb": "false", "log.samples_every": 4}
    run = ganforge.train("toy-ring", out=tmp_path, steps=20, name="r", progress="off",
                         **{"log.keep_last": 2, "log.samples_keep": 2}, **kw)
    names = sorted(p.name for p in (run.path / "checkpoints").iterdir())
    assert names == ["step-0000018.pt", "step-0000020.pt"]          # 3, 6, ... 18 and the final 20: the newest 2
    shots = sorted(p.name for p in (run.path / "samples").iterdir())
    assert shots == ["step-0000016.npz", "step-0000016.png", "step-0000020.npz", "step-0000020.png"], shots
    config = run.path / "config.yaml"
    text = config.read_text()
    assert "keep_last: 2" in text
    config.write_text(text.replace("keep_last: 2", "keep: 2"))      # as a run written before the rename
    again = ganforge.train(None, out=tmp_path, resume=run.path, steps=26, progress="off",
                           **{"log.keep": 1, "log.samples_keep": "null"})
    assert again.step == 26 and again.config.log.keep_last == 1
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == ["step-0000026.pt"]
    shots = sorted(p.name for p in (run.path / "samples").iterdir())
    assert [s[:12] for s in shots[::2]] == ["step-0000016", "step-0000020", "step-0000024", "step-0000026"]   # null: all


def test_resume_warns_when_the_data_changed_since_the_checkpoint(tmp_path, capsys):
    from PIL import Image
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(8):
        Image.new("L", (8, 8), 30 * i).save(imgs / f"{i}.png")
    kw = {"data.resolution": 8, "model.g_width": 8, "model.d_width": 8, "model.z_dim": 8, "batch_size": 4,
          "eval.metrics": "none", "log.tb": "false"}
    run = ganforge.train("mnist-dcgan", out=tmp_path, steps=2, name="r", progress="off", data=f"folder:{imgs}", **kw).path
    capsys.readouterr()
    ganforge.train(None, out=tmp_path, resume=run, steps=3, progress="off")
    assert "data changed" not in capsys.readouterr().err                     # the same data: no word
    Image.new("L", (8, 8), 255).save(imgs / "8.png")
    ganforge.train(None, out=tmp_path, resume=run, steps=4, progress="off")
    err = capsys.readouterr().err
    assert (f"ganforge: warning: the data changed since {run}/checkpoints/step-0000003.pt (8 items then, 9 now); "
            "training goes on") in err, err
    Image.new("L", (8, 8), 1).save(imgs / "0.png")                          # as many images, one redrawn
    ganforge.train(None, out=tmp_path, resume=run, steps=5, progress="off")
    assert "(the same 9 items in number, other contents)" in capsys.readouterr().err


def test_new_run_never_reuses_a_folder(tmp_path):
    a = ganforge.train("toy-ring", out=tmp_path, steps=5, progress="off")
    b = ganforge.train("toy-ring", out=tmp_path, steps=5, progress="off")
    assert (a.path.name, b.path.name) == ("toy-ring", "toy-ring-1")
    with pytest.raises(UserError, match="exists; add --resume"):
        ganforge.train("toy-ring", out=tmp_path, steps=5, name="toy-ring", progress="off")


def test_resume_refuses_a_changed_config_but_takes_more_steps(tmp_path):
    ganforge.train("toy-ring", out=tmp_path, steps=20, name="r", progress="off")
    with pytest.raises(UserError, match="cannot resume .* loss was 'nonsaturating', now 'hinge'"):
        ganforge.train(None, out=tmp_path, resume=tmp_path / "r", loss="hinge", progress="off")
    run = ganforge.train(None, out=tmp_path, resume=tmp_path / "r", steps=30, progress="off")
    assert run.step == 30
    # resume=true on the named folder does the same
    run = ganforge.train("toy-ring", out=tmp_path, name="r", resume=True, steps=40, progress="off")
    assert run.step == 40


@pytest.mark.parametrize("loss,extra", [
    ("minimax", {}), ("wasserstein", {}), ("wgan-gp", {"d_steps": 2, "penalty": "gp"}), ("least-squares", {}),
    ("hinge", {"penalty": "r2"}), ("relativistic", {}), ("relativistic-average", {"penalty": "r1"}),
])
def test_every_objective_trains(tmp_path, loss, extra):
    run = ganforge.train("toy-ring", out=tmp_path, steps=20, loss=loss, progress="off", log={"every": 10}, **extra)
    last = run.metrics()[-1]
    assert all(v == v for v in last.values() if isinstance(v, float))      # no NaN
    cfg = run.config
    if loss == "wgan-gp":
        assert (cfg.penalty.name, cfg.penalty.weight, cfg.penalty.every) == ("gp", 10.0, 1) and last["penalty"] > 0
    if loss == "wasserstein":
        assert cfg.clip == 0.01
        assert max(p.abs().max().item() for p in run.D.parameters()) <= 0.01


def test_wgan_gp_without_its_penalty_is_refused(tmp_path):
    with pytest.raises(UserError, match="loss=wgan-gp includes penalty gp.*add penalty=gp"):
        ganforge.train("toy-ring", out=tmp_path, steps=5, loss="wgan-gp", progress="off")


def test_metrics_record_what_produced_them(tmp_path):
    run = ganforge.train("toy-grid", out=tmp_path, steps=10, progress="off", log={"every": 5})
    info = json.loads((run.path / "run.json").read_text())
    assert info["shape"] == [2] and info["kind"] == "vector"
    text = (run.path / "config.yaml").read_text()
    assert "penalty:\n  name: r1" in text and "precision: auto" not in text     # resolved, not 'auto'
    if info["device"] == "cpu":                 # a CPU measured its choice (train.precision_auto)
        assert f"precision: {info['precision_auto']['precision']}" in text


@pytest.mark.cuda
def test_bf16_autocast_trains_with_r1(tmp_path, tiny_dcgan):
    kw = dict(o.split("=", 1) for o in tiny_dcgan)
    run = ganforge.train("mnist-dcgan", out=tmp_path, steps=4, precision="bf16", penalty="r1", progress="off",
                         log={"every": 2}, **kw)      # lazy R1: computed at D steps 0 only, so the line of step 2
    first, last = run.metrics()
    assert first["penalty"] > 0 and "penalty" not in last
    assert run.config.precision == "bf16"
    assert all(v == v for r in (first, last) for v in r.values() if isinstance(v, float))
    assert all(p.dtype == torch.float32 for p in run.G.parameters())      # master weights stay fp32


def test_eval_metrics_none_and_nothing_to_measure_at_several_evaluations(tmp_path, tiny_dcgan):
    """eval.metrics=none skips evaluation; an image run with nothing to measure passes eval.every quietly."""
    args = ["steps=4", "log.every=2", "log.checkpoint_every=4", "log.samples_every=4", "eval.every=2"] + tiny_dcgan
    run = ganforge.train("mnist-dcgan", name="none", **_kw(args + ["eval.metrics=none"]), out=tmp_path, progress="off")
    assert all("fid" not in r for r in run.metrics())
    run = ganforge.train("mnist-dcgan", name="digits8", **_kw(args + ["data=digits", "data.resolution=16"]), out=tmp_path,
                         progress="off")
    assert run.step == 4 and [r["step"] for r in run.metrics()] == [2, 4]


def test_progress_line_shows_only_what_the_game_computes():
    from ganforge.train.progress import Progress
    p = Progress(100, "lines")
    p.start(0)
    gan = p.text(10, {"img_s": 5, "loss_d": 1.0, "loss_g": 3.0, "d_real": 0.5, "d_fake": 0.4})
    assert "D 1.000 G 3.000 | D(x) 0.500 D(G(z)) 0.400" in gan and "L1" not in gan
    l1_alone = p.text(10, {"img_s": 5, "loss_g": 3.0, "loss_l1": 0.1})       # pix2pix with gan_weight=0: no D
    assert "G 3.000 L1 0.100 | ETA" in l1_alone and "nan" not in l1_alone and "D(x)" not in l1_alone
