"""Run folders in every state a kill, a careless user or a damaged disk leaves them (issue 23).

A start SIGKILLed inside its config.yaml write, checkpoints/ deleted under a run, a resume on another
thread count, a metrics.jsonl with damaged lines, FIFOs and folders where ganforge keeps its files, run
names that break the folder or its config.yaml, a lock file or subfolder that is not what ganforge made.
Each ends in a run that continues, or in one line (``ganforge: error: ...``, exit 2) that leaves every file
as it was; nothing ganforge did not write is ever removed.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import ganforge  # noqa: E402
from ganforge.cli import main  # noqa: E402
from ganforge.errors import UserError  # noqa: E402
from ganforge.runs import folder  # noqa: E402
from ganforge.train.start import plan_run  # noqa: E402
from ganforge.runs.atomic import ENV, ENV_S  # noqa: E402
from ganforge.runs.metrics_log import MetricsLog, read_metrics  # noqa: E402

from conftest import ganforge_cmd, run_cli  # noqa: E402

TOY = ["steps=40", "log.every=10", "log.checkpoint_every=10", "log.samples_every=20", "eval.metrics=none",
       "log.tb=false", "log.progress=off"]


def one_error_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.startswith("ganforge: error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def snapshot(root: Path) -> dict:
    return {p: (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A toy run of 40 steps: metrics at 10, 20, 30, 40, a checkpoint at each."""
    out = tmp_path_factory.mktemp("base")
    assert main(["train", "toy-grid", *TOY, "name=base", "--out", str(out)]) == 0
    return out / "base"


@pytest.fixture
def run(base, tmp_path) -> Path:
    shutil.copytree(base, tmp_path / "r")
    return tmp_path / "r"


# ---------------------------------------------------------------- a start killed inside config.yaml

def kill_inside_config(out: Path, name: str) -> Path:
    """Start a run and SIGKILL it halfway through writing its config.yaml (the first file of its folder)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{ENV: f"{name}:1", ENV_S: "60"})
    proc = subprocess.Popen(ganforge_cmd("train", "toy-grid", *TOY, f"name={name}", "--out", out), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("ganforge-fault-pause:"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert seen and seen[-1].split() == ["ganforge-fault-pause:", name, "config.yaml"], seen
    run = out / name
    assert sorted(p.name for p in run.iterdir()) == [f".config.yaml.tmp-{proc.pid}", ".lock"]
    return run


def test_a_start_killed_inside_its_config_yaml_starts_again_by_name_or_with_resume(tmp_path):
    run = kill_inside_config(tmp_path, "k")
    for twin in ("k2", "k3"):                      # the same killed state under other names (one kill is enough)
        shutil.copytree(run, tmp_path / twin)
    r = run_cli("train", "toy-grid", *TOY, "name=k", "--out", tmp_path)          # the same command again
    assert r.returncode == 0, r.stderr
    assert f"ganforge: warning: {run} was left by a start stopped before its config.yaml was written; " \
           "starting it again" in r.stderr
    assert (run / "config.yaml").is_file() and not list(run.glob(".*.tmp-*"))
    assert [row["step"] for row in read_metrics(run / "metrics.jsonl")] == [10, 20, 30, 40]

    run = tmp_path / "k2"
    r = run_cli("train", "--resume", run)                   # nothing says which config: one line, nothing touched
    assert r.returncode == 2
    before = snapshot(run)
    assert one_error_line(r.stderr) == (
        f"ganforge: error: {run} was left by a start stopped before its config.yaml was written: there is nothing "
        f"to resume; start it again with its config, e.g. ganforge train CONFIG [key=value ...] --resume {run}")
    assert snapshot(run) == before
    r = run_cli("train", "toy-grid", *TOY, "--resume", run)
    assert r.returncode == 0, r.stderr
    assert (run / "config.yaml").is_file() and folder.read_config(run)["name"] == "k2"
    assert [row["step"] for row in read_metrics(run / "metrics.jsonl")] == [10, 20, 30, 40]

    r = run_cli("train", "toy-grid", *TOY, "name=k3", "resume=true", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "k3" / "checkpoints" / "step-0000040.pt").is_file()


def test_an_unfinished_looking_folder_with_a_user_file_is_refused_and_kept(tmp_path, capsys):
    run = tmp_path / "k"
    run.mkdir()
    (run / ".lock").write_text("123\n")
    (run / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert main(["train", "toy-grid", *TOY, "name=k", "--out", str(tmp_path)]) == 2
    assert "run folder" in one_error_line(capsys.readouterr().err)
    assert main(["train", "toy-grid", *TOY, "--resume", str(run)]) == 2
    assert "no config.yaml" in one_error_line(capsys.readouterr().err)
    assert snapshot(tmp_path) == before


def test_an_unfinished_start_that_another_process_holds_is_refused(tmp_path, capsys):
    run = tmp_path / "k"
    run.mkdir()
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)                  # a start that is writing its config.yaml right now
    try:
        assert main(["train", "toy-grid", *TOY, "name=k", "--out", str(tmp_path)]) == 2
        assert "is being trained by another process" in one_error_line(capsys.readouterr().err)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
    finally:
        os.close(fd)


def test_an_unnamed_start_takes_over_an_unlocked_unfinished_default_folder(tmp_path, capsys):
    (tmp_path / "toy-grid").mkdir()
    (tmp_path / "toy-grid" / ".config.yaml.tmp-99999").write_text("name: toy-grid\nse")
    assert main(["train", "toy-grid", *TOY, "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy-grid"]
    assert "was left by a start stopped before its config.yaml was written" in capsys.readouterr().err


# ---------------------------------------------------------------- resuming without checkpoints

def test_resume_after_checkpoints_were_deleted_is_refused_and_metrics_kept(run, capsys):
    metrics = (run / "metrics.jsonl").read_bytes()
    shutil.rmtree(run / "checkpoints")
    for attempt in ("deleted", "emptied"):
        assert main(["train", "--resume", str(run), "steps=60"]) == 2, attempt
        assert one_error_line(capsys.readouterr().err) == (
            f"ganforge: error: cannot resume {run}: it has no checkpoint, but its metrics.jsonl logs steps up to 40, "
            "past the first checkpoint (step 10): checkpoints/ was deleted or emptied, and starting again from step "
            "0 would erase those lines; train a new run instead (another name=), or put the checkpoints back")
        assert (run / "metrics.jsonl").read_bytes() == metrics
        (run / "checkpoints").mkdir(exist_ok=True)


def test_resume_when_no_checkpoint_loads_is_refused_and_metrics_kept(run, capsys):
    metrics = (run / "metrics.jsonl").read_bytes()
    for p in (run / "checkpoints").glob("step-*.pt"):
        p.write_bytes(b"not a checkpoint")
    assert main(["train", "--resume", str(run), "steps=60"]) == 2
    assert "no checkpoint in" in one_error_line(capsys.readouterr().err)
    assert (run / "metrics.jsonl").read_bytes() == metrics


def test_a_run_killed_before_its_first_checkpoint_still_starts_again(tmp_path, capsys):
    """Steps logged up to the first checkpoint are what a kill before it loses: no refusal there."""
    assert main(["train", "toy-grid", *TOY, "log.checkpoint_every=40", "name=r", "--out", str(tmp_path)]) == 0
    run = tmp_path / "r"
    shutil.rmtree(run / "checkpoints")
    assert main(["train", "--resume", str(run)]) == 0
    assert [row["step"] for row in read_metrics(run / "metrics.jsonl")] == [10, 20, 30, 40]


# ---------------------------------------------------------------- threads and exactness

def test_a_resume_on_another_thread_count_says_it_will_not_be_exact(tmp_path):
    r = run_cli("train", "toy-grid", *TOY, "steps=20", "threads=1", "name=r", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "r"
    assert json.loads((run / "run.json").read_text())["threads"] == 1
    r = run_cli("train", "--resume", run, "steps=30", "threads=2")
    assert r.returncode == 0, r.stderr
    warnings = [x for x in r.stderr.splitlines() if "threads" in x]
    assert warnings == [f"ganforge: warning: {run} trained on 1 CPU thread until step 20 and now uses 2: the "
                        "resumed run will not match a run that never stopped to the bit (resume with threads=1 "
                        "to keep it exact)"], r.stderr
    assert json.loads((run / "run.json").read_text())["threads"] == 2
    r = run_cli("train", "--resume", run, "steps=40", "threads=2")
    assert r.returncode == 0 and "threads" not in r.stderr, r.stderr


def test_a_resume_on_another_device_type_warns_and_threads_on_a_gpu_do_not(capsys):
    from ganforge.train.start import warn_inexact
    warn_inexact(Path("runs/r"), {"device": "cuda", "threads": 8}, {"device": "cpu", "threads": 8}, 300)
    assert capsys.readouterr().err == ("ganforge: warning: runs/r trained on cuda until step 300 and now on cpu: the "
                                       "resumed run will not match a run that never stopped to the bit (resume with "
                                       "device=cuda to keep it exact)\n")
    for before in ({"device": "cuda", "threads": 8}, {}, {"threads": "8"}, {"device": "cpu", "threads": True}):
        warn_inexact(Path("runs/r"), before, {"device": "cuda" if "cuda" in before.values() else "cpu",
                                              "threads": 2}, 300)
    assert capsys.readouterr().err == ""      # GPU math does not split by CPU thread; old or odd run.json: quiet


# ---------------------------------------------------------------- a damaged metrics.jsonl

BAD_LINES = {
    "invalid UTF-8": b'{"step": 25, "note": "\xff"}',
    "a 5,000-digit integer": b'{"step": 25, "loss_g": ' + b"7" * 5000 + b"}",
    "an integer no float holds": b'{"step": 25, "loss_g": 1' + b"0" * 400 + b"}",
    "a string step": b'{"step": "25", "loss_g": 1.0}',
    "a JSON list": b"[25, 1.0]",
    "a NaN literal": b"NaN",
    "a NaN step": b'{"step": NaN, "loss_g": 1.0}',
    "a boolean step": b'{"step": true, "loss_g": 1.0}',
    "a negative step": b'{"step": -5, "loss_g": 1.0}',
    "no step": b'{"loss_g": 1.0}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
}


def damage(run: Path, *lines: bytes) -> None:
    path = run / "metrics.jsonl"
    rows = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(rows[:2] + list(lines) + rows[2:]))


@pytest.mark.parametrize("kind", BAD_LINES)
def test_a_damaged_metrics_line_is_skipped_with_a_count(run, kind, capsys):
    damage(run, BAD_LINES[kind])
    assert [row["step"] for row in read_metrics(run / "metrics.jsonl")] == [10, 20, 30, 40]
    assert capsys.readouterr().err == (f"ganforge: warning: {run / 'metrics.jsonl'}: 1 damaged line skipped (not a "
                                       "JSON object with a whole step >= 0, as ganforge writes)\n")
    assert main(["report", str(run)]) == 0
    err = capsys.readouterr().err
    assert err.count("1 damaged line skipped") == 1 and "Traceback" not in err, err


def test_empty_lines_and_a_torn_last_line_are_skipped_without_a_word(run, capsys):
    damage(run, b"", b"   ")
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 50, "loss_')                   # a kill in the middle of an append
    assert [row["step"] for row in read_metrics(run / "metrics.jsonl")] == [10, 20, 30, 40]
    assert capsys.readouterr().err == ""


def test_resume_and_compare_read_a_damaged_metrics_jsonl(run, tmp_path, capsys):
    damage(run, *BAD_LINES.values(), b"")
    other = tmp_path / "other"
    shutil.copytree(run, other)
    assert main(["compare", str(run), str(other), "--out", str(tmp_path / "c.html")]) == 0
    assert capsys.readouterr().err.count(f"{len(BAD_LINES)} damaged lines skipped") == 2
    assert main(["train", "--resume", str(run), "steps=60"]) == 0
    err = capsys.readouterr().err
    assert f"ganforge: warning: {run / 'metrics.jsonl'}: {len(BAD_LINES)} damaged lines dropped (not a JSON " \
           "object with a whole step >= 0, as ganforge writes); the 4 good lines up to step 40 kept" in err, err
    assert [row["step"] for row in read_metrics(run / "metrics.jsonl")] == [10, 20, 30, 40, 50, 60]
    assert capsys.readouterr().err == ""                  # what the resume rewrote reads clean


def test_metrics_log_truncation_keeps_only_good_lines(run, capsys):
    damage(run, BAD_LINES["a string step"])
    MetricsLog(run / "metrics.jsonl").truncate_after(20)
    assert [row["step"] for row in read_metrics(run / "metrics.jsonl")] == [10, 20]
    assert "1 damaged line dropped" in capsys.readouterr().err


# ---------------------------------------------------------------- FIFOs and folders where files belong

SPECIAL = [(name, kind) for name in ("metrics.jsonl", "config.yaml", "run.json", "report.html")
           for kind in ("a FIFO", "a folder")]


def make_special(path: Path, kind: str) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    os.mkfifo(path) if kind == "a FIFO" else path.mkdir()


@pytest.mark.parametrize("name,kind", SPECIAL)
def test_a_fifo_or_folder_in_place_of_a_run_file_is_one_line_never_a_hang(run, name, kind):
    make_special(run / name, kind)
    r = run_cli("report", run, timeout=60, process=kind == "a FIFO")
    if name == "run.json":                  # a page shows what there is: run.json is optional for it
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    else:
        assert r.returncode == 2
        assert one_error_line(r.stderr).startswith(f"ganforge: error: {run / name} is {kind}, not a regular file")
    before = snapshot(run)
    r = run_cli("train", "--resume", run, "steps=50", timeout=120, process=kind == "a FIFO")
    if name == "report.html":               # the run trains; its page is a convenience and says why it is missing
        assert r.returncode == 0, r.stderr
        assert f"ganforge: warning: {run}/report.html not written: {run / name} is {kind}, not a regular file" \
               in r.stderr
    else:
        assert r.returncode == 2
        assert one_error_line(r.stderr).startswith(f"ganforge: error: {run / name} is {kind}, not a regular file")
        assert snapshot(run) == before


def test_a_fifo_symlink_or_folder_among_the_samples_is_left_out_of_the_report(run, tmp_path, capsys):
    os.mkfifo(run / "samples" / "step-0000060.png")
    (run / "samples" / "step-0000070.png").mkdir()
    (tmp_path / "secret.txt").write_text("not for the report")
    os.symlink(tmp_path / "secret.txt", run / "samples" / "step-0000080.png")
    (run / "samples" / "step-0000030.png").write_bytes(b"not a png")
    assert [s for s, _ in folder.sample_files(run)] == [0, 20, 30, 40]
    assert main(["report", str(run)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert base64.b64encode(b"not for the report") not in (run / "report.html").read_bytes()
    assert folder.prune_samples(run, 1) == 5              # .png 0, 20, 30, .npz 0, 20; the special files stay
    assert {p.name for p in (run / "samples").iterdir()} >= {"step-0000060.png", "step-0000070.png",
                                                            "step-0000080.png"}


# ---------------------------------------------------------------- run names

NAMES = {"a newline": "a\nb", "a NUL": "a\x00b", "a slash": "a/b", "300 characters": "x" * 300,
         "a parent": "..", "a hidden name": ".hidden", "a leading dash": "-rf", "a space": "my run"}


@pytest.mark.parametrize("kind", NAMES)
def test_a_run_name_outside_the_rule_is_one_line_and_makes_no_folder(tmp_path, kind, capsys):
    name = NAMES[kind]
    out = tmp_path / "runs"
    assert main(["train", "toy-grid", *TOY, f"name={name}", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith("is not a run name: use letters, digits, '.', '_' and '-', beginning with a letter, a "
                         "digit or '_', at most 100 characters"), line
    assert len(line) < 250 and not out.exists()
    with pytest.raises(UserError):
        ganforge.train("toy-grid", out=out, progress="off", name=name, steps=2)
    assert not out.exists()


def test_a_run_name_in_a_yaml_config_is_checked_too(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text('data: grid\nmodel: mlp\nname: "two\\nlines"\n')
    assert main(["train", str(tmp_path / "c.yaml"), "steps=2", "--out", str(tmp_path / "runs")]) == 2
    assert "'two\\nlines' is not a run name" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("preset, overrides, name", [
    (None, (), "mnist-main"),                                   # ganforge train: the main job's preset
    ("mnist-cgan", ("steps=3", "model.g_width=8"), "mnist-cgan"),   # a preset names its run (not mnist-dcgan)
    ("mnist-dcgan", (), "mnist-dcgan"),
    (None, ("data=folder:/photos/my300",), "my300-dcgan"),      # the command line picks the data: data-family
    ("mnist-dcgan", ("model=stylegan",), "mnist-stylegan"),     # ... or the family
    ("toy-ring", ("data.name=grid",), "grid-mlp"),
])
def test_an_unnamed_run_is_named_after_its_preset_unless_the_command_line_picks_data_or_family(tmp_path, preset,
                                                                                                overrides, name):
    _, run_dir, resuming = plan_run(preset, overrides, tmp_path)
    assert run_dir == tmp_path / name and not resuming
    (tmp_path / name).mkdir()
    (tmp_path / name / "config.yaml").write_text("seed: 0\n")                # a run is there: the next free name
    assert plan_run(preset, overrides, tmp_path)[1] == tmp_path / f"{name}-1"


def test_a_yaml_file_names_its_run_by_its_stem(tmp_path):
    (tmp_path / "my ring.yaml").write_text("data: ring\nmodel: mlp\n")
    assert plan_run(str(tmp_path / "my ring.yaml"), (), tmp_path / "runs")[1] == tmp_path / "runs" / "my-ring"


def test_a_long_data_name_gives_a_default_name_within_the_rule():
    name = folder.default_name("folder:/data/" + "x" * 300, "dcgan")
    assert len(name) <= 100 and folder.NAME_RULE.fullmatch(name)


def test_an_old_run_whose_folder_name_breaks_the_rule_still_resumes_and_keeps_its_header_one_line(run, tmp_path):
    odd = tmp_path / "old\nrun"
    run.rename(odd)
    assert main(["train", "--resume", str(odd), "steps=50"]) == 0
    assert (odd / "config.yaml").read_text().splitlines()[0].endswith("of run 'old\\nrun'")
    assert folder.read_config(odd)["steps"] == 50


# ---------------------------------------------------------------- other run folder states

def test_a_stale_lock_file_naming_a_live_pid_does_not_block_a_resume(run, capsys):
    (run / ".lock").write_text(f"{os.getpid()}\n")      # a pid reused by a live process: flock ignores it
    assert main(["train", "--resume", str(run), "steps=50"]) == 0


LOCKS = {"a folder": lambda lock, target: lock.mkdir(), "a FIFO": lambda lock, target: os.mkfifo(lock),
         "a symbolic link": lambda lock, target: lock.symlink_to(target),
         "a hard link to another file": lambda lock, target: os.link(target, lock)}


@pytest.mark.parametrize("what", LOCKS)
def test_a_lock_that_is_not_a_regular_file_is_one_line_and_the_target_untouched(run, tmp_path, what, capsys):
    lock = run / ".lock"
    lock.unlink()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    LOCKS[what](lock, target)
    before = snapshot(tmp_path)
    assert main(["train", "--resume", str(run), "steps=50"]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"ganforge: error: {lock} is {what}, not the lock file ganforge makes: move it away and try again")
    assert snapshot(tmp_path) == before


def _namespace_ok() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _namespace_ok(), reason="needs user namespaces (unshare -rm) to mount a full tmpfs")
def test_a_new_run_on_a_full_disk_names_the_lock_file_and_leaves_no_folder(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o size=64k none {mnt}\n"
              f"head -c 1000000 /dev/zero > {mnt}/fill || true\n"
              f"{' '.join(ganforge_cmd('train', 'toy-grid', *TOY, 'name=x', '--out', mnt))} 2>err || echo $? > rc\n"
              f"ls -a {mnt} > listing\n")
    r = subprocess.run(["unshare", "-rm", "sh", "-ec", script], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rc").read_text().strip() == "2"
    assert one_error_line((tmp_path / "err").read_text()) == (
        f"ganforge: error: No space left on device writing {mnt / 'x' / '.lock'}; nothing earlier was overwritten")
    assert (tmp_path / "listing").read_text().split() == [".", "..", "fill"]


@pytest.mark.parametrize("sub", ["checkpoints", "samples", "tb"])
def test_a_file_where_a_run_subfolder_belongs_is_one_line(run, sub, capsys):
    shutil.rmtree(run / sub, ignore_errors=True)
    (run / sub).write_text("mine")
    assert main(["train", "--resume", str(run), "steps=50", "log.tb=true"]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"ganforge: error: {run / sub} is a file, not a folder: ganforge keeps the run's checkpoints/, samples/ "
        "and tb/ there; move it away and try again")
    assert (run / sub).read_text() == "mine"


def test_config_yaml_deleted_with_checkpoints_left_says_where_the_config_is(run, capsys):
    (run / "config.yaml").unlink()
    assert main(["train", "--resume", str(run)]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"ganforge: error: {run} has checkpoints but no config.yaml: put back the run's config.yaml (every "
        "checkpoint keeps a copy under its key 'config'), or train a new run")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just words\n"])
def test_a_config_yaml_that_is_no_mapping_is_one_line_for_report(run, text, capsys):
    (run / "config.yaml").write_text(text)
    assert main(["report", str(run)]) == 2
    assert "is not the config ganforge train wrote" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("text", ["[1, 2]\n", '{"shape": "ab"}\n', "\xff"])
def test_a_damaged_run_json_does_not_stop_report_or_resume(run, text, capsys):
    (run / "run.json").write_bytes(text.encode("latin-1"))
    assert main(["report", str(run)]) == 0
    assert main(["train", "--resume", str(run), "steps=50"]) == 0
    assert json.loads((run / "run.json").read_text())["shape"] == [2]
