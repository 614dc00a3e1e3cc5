"""Run folders written by an earlier release still load, sample, evaluate and resume, with the same numbers.

tests/fixtures/old-runs/runs holds a toy and a tiny DCGAN run made by ganforge 0.1.0 before the package was
restructured (the commit in commit.txt); expected.json holds what that release gave on them (expect.py): samples
from the EMA generator, an evaluation, and the metrics of a resume from step 40 to step 60.
"""
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from conftest import numbers, run_cli

import ganforge

HERE = Path(__file__).parent / "fixtures" / "old-runs"
EXPECTED = json.loads((HERE / "expected.json").read_text())


def _close(a, b, rel, path="") -> None:
    """Every number in ``a`` within ``rel`` of the one in ``b`` (strings and ints equal), recursively."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            _close(a[k], b[k], rel, f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, rel, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=rel, abs_tol=rel), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("name", ["toy", "digits"])
def test_an_old_run_loads_samples_evaluates_and_resumes_as_it_did(name, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")    # the threads that made expected.json (conftest sets 1 per worker),
    # in processes of their own (run_cli's in-process runs keep this worker's one thread)
    run = tmp_path / name
    shutil.copytree(HERE / "runs" / name, run)
    want = EXPECTED[name]
    x = ganforge.load_run(run).sample(8, seed=3)
    assert torch.allclose(x.flatten()[:64], torch.tensor(want["samples"]), atol=1e-5)

    r = run_cli("eval", run, "-n", 300, "--out", tmp_path / "eval.json", process=True)
    assert r.returncode == 0, r.stderr
    got = json.loads((tmp_path / "eval.json").read_text())["evaluations"][-1]["metrics"]
    _close(got, want["eval"], 1e-4)

    r = run_cli("train", "--resume", run, "steps=60", process=True)
    assert r.returncode == 0, r.stderr
    assert f"resuming {run} from step 40" in r.stderr
    new = {"rt"}                                 # logged since (ADA's r_t, issue 25): absent from the old rows
    _close([{k: v for k, v in r.items() if k not in new} for r in numbers(run)], want["resumed_metrics"], 1e-3)
    resumed = ganforge.load_run(run)
    assert resumed.step == want["resumed_step"] == 60
    g_sum = float(sum(p.double().sum() for p in resumed.generator.state_dict().values() if p.is_floating_point()))
    assert math.isclose(g_sum, want["resumed_g_sum"], rel_tol=1e-4)
