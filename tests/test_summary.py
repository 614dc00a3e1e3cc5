"""The end of a finished ``ganforge train``: one short summary whose paths exist and whose command works."""
import re
from pathlib import Path

from conftest import run_cli


def test_the_summary_names_files_that_exist_and_a_command_that_samples(tmp_path):
    r = run_cli("train", "toy-ring", "steps=6", "log.checkpoint_every=4", "eval.every=3", "log.progress=off",
                "name=ring", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    run = tmp_path / "ring"
    assert re.fullmatch(rf"done: {re.escape(str(run))} at step 6 \(\d+:\d\d in all, \d+:\d\d training\)", lines[0])
    assert re.fullmatch(r"  evaluation at step 6 \(mode counts\): modes \d+, kl \S+", lines[1]), lines[1]
    paths = dict(re.fullmatch(r"  (report|samples|checkpoint): +(\S+)", line).groups() for line in lines[2:5])
    assert paths == {"report": str(run / "report.html"), "samples": str(run / "samples" / "step-0000006.png"),
                     "checkpoint": str(run / "checkpoints" / "step-0000006.pt")}
    assert all(Path(p).is_file() for p in paths.values())
    command = re.fullmatch(r"  sample from it: ganforge (.+)", lines[5]).group(1).split()
    out = tmp_path / "grid.png"
    command[command.index("--out") + 1] = str(out)
    s = run_cli(*command)
    assert s.returncode == 0, s.stderr
    assert out.is_file() and len(lines) == 6
