"""Faults: SIGKILL anywhere, NaN and Inf in the game, a full or read-only disk, two trainers on one run."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganforge.cli import main
from ganforge.runs import checkpoint
from kill_harness import kill_anywhere
from ganforge.train.guard import Diverged
from ganforge.runs.metrics_log import read_metrics
from ganforge.train.loop import Trainer
from ganforge.train.start import start
from ganforge.schedule import lr_schedule

from conftest import assert_same_tensors, ganforge_cmd, numbers

TOY = ["steps=200", "log.every=10", "log.checkpoint_every=50", "log.samples_every=100", "log.progress=off",
       "eval.every=100"]


def test_kill_anywhere_toy(tmp_path):
    """SIGKILL during steps, sample writing and checkpoint writing, resumed each time: the newest checkpoint
    always loads, at most checkpoint_every logged steps are lost, and the end is bit-for-bit the straight run."""
    report = kill_anywhere(tmp_path, "toy-grid",
                           ["steps=600", "log.every=10", "log.checkpoint_every=50", "log.samples_every=100",
                            "eval.every=200", "eval.metrics=modes", "eval.best=kl", "log.progress=off"],
                           kills=3, seed=0, log=lambda s: None)
    assert report["kills"] == 3 and report["kinds"] == {"step": 1, "samples": 1, "checkpoints": 1}, report
    assert all(r["torn"] for r in report["record"] if r["kind"] != "step")      # the writes were really cut
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert (killed / "best.json").read_text() == (straight / "best.json").read_text()
    best = [torch.load(r / "checkpoints" / "best.pt", weights_only=True) for r in (straight, killed)]
    assert_same_tensors(best[0]["G"], best[1]["G"], "best.G")


# ---------------------------------------------------------------- NaN and Inf

@pytest.fixture
def poison(monkeypatch):
    """poison(steps): D's output becomes NaN during the iterations that start at these trainer steps
    (each listed step once, so that a rolled-back replay runs clean; 'all' after a step: every time)."""
    plan = {"steps": set(), "from": None, "trainer": None}

    def setup(self, _orig=Trainer.setup_game):
        _orig(self)
        plan["trainer"] = self

        def hook(module, inputs, output):
            s = self.step
            if s in plan["steps"] or (plan["from"] is not None and s >= plan["from"]):
                return output * float("nan")
        self.D.register_forward_hook(hook)

        game_step = self.game.step

        def step():
            out = game_step()
            plan["steps"].discard(self.step)       # poisoned once
            return out
        self.game.step = step
    monkeypatch.setattr(Trainer, "setup_game", setup)
    return plan


def _params(trainer):
    return {"G": {k: v.clone() for k, v in trainer.G.state_dict().items()},
            "D": {k: v.clone() for k, v in trainer.D.state_dict().items()},
            "adam_steps": [s["step"].clone() for opt in (trainer.opt_g, trainer.opt_d) for s in opt.state.values()]}


def test_skip_drops_the_poisoned_update_before_it_touches_anything(tmp_path, poison, capsys):
    poison["steps"] = {57}
    trainer, _ = start("toy-ring", tuple(TOY), tmp_path)
    seen = {}
    inner = trainer.game.step

    def step():
        if trainer.step == 57:
            seen["before"] = _params(trainer)
        out = inner()
        if trainer.step == 57:
            seen["after"] = _params(trainer)
        return out
    trainer.game.step = step
    trainer.run()
    assert_same_tensors(seen["before"], seen["after"])     # weights and Adam's step counts untouched
    err = capsys.readouterr().err
    assert err.count("ganforge: step 58: D's loss is nan; update skipped (1 of 5 allowed between checkpoints)") == 1
    lines = read_metrics(tmp_path / "toy-ring" / "metrics.jsonl")
    assert [r["step"] for r in lines] == list(range(10, 201, 10))
    assert [r.get("nonfinite") for r in lines if "nonfinite" in r] == [1] and lines[5]["nonfinite"] == 1
    assert all(torch.isfinite(torch.tensor(r["loss_d"])) for r in lines)


def test_rollback_returns_to_the_checkpoint_with_lower_learning_rates(tmp_path, poison, capsys):
    poison["steps"] = {57, 130}
    trainer, _ = start("toy-ring", tuple(TOY + ["guard.nonfinite=rollback", "guard.lr_factor=0.25"]), tmp_path)
    loads = []
    inner = trainer.load_state_dict

    def load_state_dict(s):
        inner(s)
        loads.append((int(s["step"]), _params(trainer)["G"]))
    trainer.load_state_dict = load_state_dict
    trainer.run()
    err = capsys.readouterr().err
    assert "ganforge: step 58: D's loss is nan; rolled back to step 50 with learning rates x0.25" in err
    assert "ganforge: step 131: D's loss is nan; rolled back to step 100 with learning rates x0.0625" in err
    assert [s for s, _ in loads] == [50, 100]
    run = tmp_path / "toy-ring"
    lines = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in lines] == list(range(10, 201, 10))         # replayed lines replaced, none twice
    o = trainer.cfg.optim
    lr = [o.g.lr * lr_schedule("", o.schedule, o.decay_start, o.final_lr).value(1.0, r["step"] - 1, 200) for r in lines]
    scale = [1] * 5 + [0.25] * 5 + [0.0625] * 10
    assert [r["lr_g"] for r in lines] == pytest.approx([a * b for a, b in zip(lr, scale)], rel=1e-12)
    final = checkpoint.load(checkpoint.list_checkpoints(run / "checkpoints")[-1])
    assert final["lr_scale"] == 0.0625
    # resuming keeps the lowered rates (and needs no guard setting to match)
    done = main(["train", "--resume", str(run), "steps=220", "guard.nonfinite=skip"])
    assert done == 0
    last = read_metrics(run / "metrics.jsonl")[-1]
    assert last["lr_g"] == pytest.approx(0.0625 * o.g.lr * lr_schedule("", o.schedule, o.decay_start, o.final_lr).value(1.0, 219, 220))


def test_rollback_before_the_first_checkpoint_restarts_from_step_0(tmp_path, poison, capsys):
    poison["steps"] = {20}
    trainer, _ = start("toy-ring", tuple(TOY + ["guard.nonfinite=rollback", "steps=60"]), tmp_path)
    init = _params(trainer)
    back = {}
    inner = trainer.load_state_dict

    def load_state_dict(s):
        inner(s)
        back.update(_params(trainer))
    trainer.load_state_dict = load_state_dict
    trainer.run()
    assert "rolled back to step 0 with learning rates x0.5" in capsys.readouterr().err
    assert_same_tensors(init["G"], back["G"])
    assert_same_tensors(init["D"], back["D"])


def test_repeated_failures_stop_with_the_likely_cause_and_exit_3(tmp_path, poison, capsys):
    poison["from"] = 57
    code = main(["train", "toy-ring", *TOY, "guard.max_failures=3", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == Diverged.exit_code == 3
    assert err[-1].startswith("ganforge: error: stopped at step 60: 3 non-finite updates since the checkpoint of step 50 "
                              "(last: D's loss is nan); likely cause: ")
    assert err[-1].endswith("checkpoint step-0000050.pt is intact")
    run = tmp_path / "toy-ring"
    assert [checkpoint.step_of(p) for p in checkpoint.list_checkpoints(run / "checkpoints")] == [50]
    assert checkpoint.load(run / "checkpoints" / "step-0000050.pt")["step"] == 50
    assert "Traceback" not in "\n".join(err)


def test_a_real_divergence_stops_or_is_rescued_by_rollback(tmp_path, capsys):
    """No injection: learning rates of 100 make the toy game's gradients overflow within a few steps."""
    wild = ["steps=120", "optim.d.lr=100", "optim.g.lr=100", "penalty=none", "log.progress=off"]
    assert main(["train", "toy-ring", *wild, "name=stop", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "non-finite updates since the start" in err and "lower optim.d.lr (now 100)" in err
    assert main(["train", "toy-ring", *wild, "name=rb", "guard.nonfinite=rollback", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "rolled back to step 0 with learning rates x0.5 (G 50, D 50)" in err
    scale = checkpoint.load(checkpoint.list_checkpoints(tmp_path / "rb" / "checkpoints")[-1])["lr_scale"]
    assert 0 < scale < 0.5
    for r in read_metrics(tmp_path / "rb" / "metrics.jsonl"):
        assert all(torch.isfinite(torch.tensor(float(v))) for k, v in r.items() if k.startswith(("loss", "grad")))


def test_the_guard_changes_no_number_when_nothing_fails(tmp_path):
    short = [o for o in TOY if not o.startswith("steps")] + ["steps=60", "eval.metrics=none"]
    for action in ("off", "skip", "rollback"):
        assert main(["train", "toy-grid", *short, f"guard.nonfinite={action}", f"name={action}", "--out", str(tmp_path)]) == 0
    ref = numbers(tmp_path / "off")
    for action in ("skip", "rollback"):
        assert numbers(tmp_path / action) == ref
        a, b = (torch.load(checkpoint.list_checkpoints(tmp_path / n / "checkpoints")[-1], weights_only=True)
                for n in ("off", action))
        assert_same_tensors(a["G"], b["G"])
        assert_same_tensors(a["opt_d"], b["opt_d"])


# ---------------------------------------------------------------- the disk

def _namespace_ok() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


def _in_namespace(script: str, cwd) -> subprocess.CompletedProcess:
    """Run a shell script as root of a new user and mount namespace, where it may mount a tmpfs."""
    return subprocess.run(["unshare", "-rm", "sh", "-ec", script], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), timeout=300)


def _one_error_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.startswith("ganforge: error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_full_disk_stops_with_one_line_keeps_the_checkpoint_and_resumes(tmp_path):
    """A 1.5 MB filesystem holds one toy checkpoint (0.95 MB) but not two: the second write fails."""
    py = " ".join(ganforge_cmd())
    if _namespace_ok():
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        script = (f"mount -t tmpfs -o size=1500k none {mnt}\n"
                  f"{py} train toy-ring steps=300 log.checkpoint_every=100 log.progress=off --out {mnt} 2>err && exit 9 "
                  f"|| echo rc=$? >> rc\n"
                  f"ls {mnt}/toy-ring/checkpoints > ckpts; ls -a {mnt}/toy-ring/checkpoints > all\n"
                  f"{sys.executable} -c \"from ganforge.runs import checkpoint; print(checkpoint.load('{mnt}/toy-ring/checkpoints/"
                  f"step-0000100.pt')['step'])\" > loaded\n"
                  f"mount -o remount,size=20m {mnt}\n"
                  f"{py} train --resume {mnt}/toy-ring log.progress=off > resumed 2>&1\n")
        r = _in_namespace(script, tmp_path)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "rc").read_text().strip() == "rc=2"
        line = _one_error_line((tmp_path / "err").read_text())
        assert "No space left on device" in line and "step-0000200.pt" in line
        assert "checkpoint step-0000100.pt is intact" in line and "ganforge train --resume" in line
        assert (tmp_path / "ckpts").read_text().split() == ["step-0000100.pt"]
        assert ".tmp-" not in (tmp_path / "all").read_text()           # the partial file was removed
        assert (tmp_path / "loaded").read_text().strip() == "100"
        assert "done:" in (tmp_path / "resumed").read_text()
    else:                       # no namespaces here: a file-size limit (EFBIG) stands in for the full disk
        import resource

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))
        r = subprocess.run(ganforge_cmd("train", "toy-ring", "steps=300", "log.checkpoint_every=100",
                                        "log.progress=off", "--out", tmp_path),
                           capture_output=True, text=True, preexec_fn=limit, timeout=300)
        assert r.returncode == 2
        assert "File too large" in _one_error_line(r.stderr)
        assert not list((tmp_path / "toy-ring" / "checkpoints").glob(".*tmp*"))


def test_a_read_only_run_folder_is_one_line_and_nothing_changes(tmp_path):
    if not _namespace_ok() and os.geteuid() == 0:
        pytest.skip("needs user namespaces (unshare -rm) or a non-root user to make a folder read-only")
    run = tmp_path / "toy-ring"
    assert main(["train", "toy-ring", "steps=20", "log.progress=off", "--out", str(tmp_path)]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    cmd = " ".join(ganforge_cmd("train", "--resume", run, "steps=40", "log.progress=off"))
    if _namespace_ok():
        r = _in_namespace(f"mount --bind {run} {run}\nmount -o remount,bind,ro {run}\n{cmd}", tmp_path)
    else:
        os.chmod(run, 0o555)
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        os.chmod(run, 0o755)
    assert r.returncode == 2, r.stderr
    line = _one_error_line(r.stderr)
    assert ("Read-only file system" in line or "Permission denied" in line) and str(run) in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_failed_write_of_run_json_or_config_keeps_the_old_file_and_stale_temporaries_go(tmp_path, monkeypatch, capsys):
    import errno
    from ganforge.runs import atomic
    args = ["train", "toy-ring", "steps=10", "eval.metrics=none", "log.tb=false", "log.progress=off", "name=r",
            "--out", str(tmp_path)]
    assert main(args) == 0
    run = tmp_path / "r"
    (run / ".run.json.tmp-999").write_bytes(b"{")              # left by a writer killed at its last start
    (run / "samples" / ".step-0000010.png.tmp-999").write_bytes(b"")
    real = atomic.write_through
    for name in ("run.json", "config.yaml", "metrics.jsonl"):
        before = (run / name).read_bytes()
        def full(f, data, path, _name=name):
            if Path(path).name == _name:
                f.write(data[:3])
                raise OSError(errno.ENOSPC, "No space left on device")
            real(f, data, path)
        monkeypatch.setattr(atomic, "write_through", full)
        capsys.readouterr()
        assert main(["train", "--resume", str(run), "steps=12", "log.progress=off"]) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert "No space left on device" in err and str(run / name) in err, (name, err)     # names the file
        assert (run / name).read_bytes() == before, name            # the old file, whole
        monkeypatch.setattr(atomic, "write_through", real)
    assert main(["train", "--resume", str(run), "steps=12", "log.progress=off"]) == 0
    assert not list(run.glob(".*.tmp-*")) and not list((run / "samples").glob(".*.tmp-*"))
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")][-1] == 12


def test_a_new_run_whose_config_cannot_be_written_leaves_no_folder(tmp_path, monkeypatch, capsys):
    import errno
    from ganforge.runs import atomic

    def full(f, data, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(atomic, "write_through", full)
    assert main(["train", "toy-ring", "steps=2", "name=r", "log.progress=off", "--out", str(tmp_path)]) == 2
    assert "No space left on device" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()                        # no half-made run folder
    monkeypatch.undo()
    assert main(["train", "toy-ring", "steps=2", "name=r", "eval.metrics=none", "log.progress=off",
                 "--out", str(tmp_path)]) == 0                  # the same name is free


def test_a_file_system_without_flock_trains_unlocked_with_a_warning(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert main(["train", "toy-ring", "steps=2", "name=r", "eval.metrics=none", "log.progress=off",
                 "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"ganforge: warning: cannot lock {tmp_path / 'r'} (No locks available)" in err, err
    assert main(["train", "--resume", str(tmp_path / "r"), "steps=4", "log.progress=off"]) == 0


def test_two_trainers_never_share_a_run_folder(tmp_path):
    args = ["train", "toy-ring", "steps=100000", "log.progress=off", "name=r", "--out", tmp_path]
    proc = subprocess.Popen(ganforge_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not read_metrics(tmp_path / "r" / "metrics.jsonl"):
            time.sleep(0.05)
        config = (tmp_path / "r" / "config.yaml").read_bytes()
        r = subprocess.run(ganforge_cmd("train", "--resume", tmp_path / "r", "log.progress=off"),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2
        assert "is being trained by another process" in _one_error_line(r.stderr)
        assert (tmp_path / "r" / "config.yaml").read_bytes() == config
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    r = subprocess.run(ganforge_cmd("train", "--resume", tmp_path / "r", "steps=1", "log.progress=off"),
                       capture_output=True, text=True, timeout=120)
    assert "being trained" not in r.stderr          # the lock went with the process


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
