"""precision=auto on a CPU (train.precision_auto): the choice is measured on the run's own nets, cached per machine
and nets, kept by a resume, recorded in config.yaml and run.json, and the measurement leaves the run untouched
(a run whose auto chose bf16 is bit-identical to one given precision=bf16)."""
import json

import pytest

import ganforge
from ganforge.train import precision_auto
from conftest import assert_same_tensors, final_state, run_cli

TINY = dict(model={"g_width": 8, "d_width": 8, "z_dim": 16}, batch_size=16, steps=3, progress="off",
            eval={"metrics": "none"}, log={"every": 1, "checkpoint_every": 3, "samples_every": 100}, threads=1)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFORGE_PRECISION_AUTO")          # the suite's conftest sets fp32: measure here


def _train(tmp_path, name, **kw):
    return ganforge.train("mnist-dcgan", out=tmp_path, name=name, **{**TINY, **kw})


@pytest.mark.parametrize("forced", ["bf16", "fp32"])
def test_a_measured_choice_trains_bit_identical_to_the_same_precision_given(tmp_path, monkeypatch, forced):
    # the real measurement runs (copies of G and D, forward and backward in both precisions); the margin forces
    # its verdict, so the run must equal one given that precision: the measurement touched no weight, no batch
    # norm statistic and no random stream
    monkeypatch.setattr(precision_auto, "MARGIN", 0.0 if forced == "bf16" else 1e9)
    monkeypatch.setattr(precision_auto, "BUSY", 1.0)          # the other test worker may share the cores
    monkeypatch.setattr(precision_auto, "NOISY", float("inf"))
    auto = _train(tmp_path, "auto")
    given = _train(tmp_path, "given", precision=forced)
    assert auto.config.precision == forced
    assert f"precision: {forced}" in (auto.path / "config.yaml").read_text()
    record = json.loads((auto.path / "run.json").read_text())["precision_auto"]
    assert record["precision"] == forced and record["fp32_ms"] > 0 and record["bf16_ms"] > 0 and record["rounds"] >= 1
    assert_same_tensors(final_state(auto.path)["G"], final_state(given.path)["G"])
    assert_same_tensors(final_state(auto.path)["D"], final_state(given.path)["D"])


def test_the_choice_is_cached_per_machine_and_nets_and_kept_by_a_resume(tmp_path, monkeypatch):
    calls = []

    def fake_measure(cfg, data, rows, device):
        calls.append(rows)
        return {"fp32_ms": 10.0, "bf16_ms": 10.0 / ratio, "ratio": ratio, "rounds": 3}
    monkeypatch.setattr(precision_auto, "measure", fake_measure)
    ratio = 1.12                                # past the margin (1.10): bf16
    first = _train(tmp_path, "first")
    assert first.config.precision == "bf16" and calls == [16]
    ratio = 1.05                                # the machine "changed its mind": the cached choice holds
    again = _train(tmp_path, "again")
    assert again.config.precision == "bf16" and calls == [16]
    other = _train(tmp_path, "other", batch_size=8)     # other nets' work: measured, below the margin
    assert other.config.precision == "fp32" and calls == [16, 8]
    threads = _train(tmp_path, "threads", threads=2)    # other threads: another entry
    assert threads.config.precision == "fp32" and calls == [16, 8, 16]
    entries = json.loads((tmp_path / "cache" / "precision.json").read_text())["entries"]
    assert sorted(e["precision"] for e in entries.values()) == ["bf16", "fp32", "fp32"]
    # a resume keeps the run's choice, even asked for precision=auto again where auto would now say fp32
    ratio = 0.5
    (tmp_path / "cache" / "precision.json").unlink()
    resumed = ganforge.train(None, out=tmp_path, resume=first.path, steps=5, precision="auto", progress="off")
    assert resumed.config.precision == "bf16" and resumed.step == 5
    assert json.loads((first.path / "run.json").read_text())["precision_auto"]["ratio"] == 1.12


def test_a_damaged_cache_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_auto, "BUSY", 1.0)          # cached even while the other test worker runs
    monkeypatch.setattr(precision_auto, "NOISY", float("inf"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "precision.json").write_text('{"entries": [1, 2')
    run = _train(tmp_path, "run")
    assert run.config.precision in ("fp32", "bf16")
    assert json.loads((tmp_path / "cache" / "precision.json").read_text())["entries"]


def test_the_first_line_says_what_auto_chose_and_why(tmp_path):
    args = ["train", "toy-ring", "steps=2", "eval.metrics=none", "log.progress=lines", "--out", tmp_path]
    first = run_cli(*args, "name=a")
    assert first.returncode == 0, first.stderr
    line = first.stderr.splitlines()[0]       # the run's first line (stderr: progress)
    assert "(auto: a step of these nets took" in line and "measured now" in line
    chosen = "bf16" if " cpu bf16 " in line else "fp32"
    assert f"cpu {chosen} (auto" in line
    second = run_cli(*args, "name=b").stderr.splitlines()[0].rstrip()
    if "measured again" in line:        # a busy machine (the other test worker shares the cores): not cached
        assert "measured now" in second
    else:
        assert second.endswith(", cached)")


def test_the_environment_can_say_what_auto_means(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_auto, "measure", None)        # never called
    monkeypatch.setenv("GANFORGE_PRECISION_AUTO", "bf16")
    run = _train(tmp_path, "told")
    assert run.config.precision == "bf16"
    assert json.loads((run.path / "run.json").read_text())["precision_auto"] == {"precision": "bf16",
                                                                                 "set_by": "GANFORGE_PRECISION_AUTO"}
    assert not (tmp_path / "cache" / "precision.json").exists()
    monkeypatch.setenv("GANFORGE_PRECISION_AUTO", "fp64")
    r = run_cli("train", "toy-ring", "steps=1", "--out", tmp_path)
    assert r.returncode == 2 and r.stderr.strip().endswith("give fp32 or bf16 (what precision=auto means on this "
                                                           "machine), or unset it")


@pytest.mark.parametrize("spread, others", [(2.5, 0.0), (1.1, 0.4)])
def test_a_busy_machine_gets_fp32_for_the_run_and_no_cache_entry(tmp_path, monkeypatch, spread, others):
    # bf16 "3x faster", but the rounds disagreed, or other processes used 40% of the CPUs while it was timed
    monkeypatch.setattr(precision_auto, "measure", lambda *a: {"fp32_ms": 9.0, "bf16_ms": 3.0, "ratio": 3.0,
                                                               "rounds": 3, "spread": spread, "others_cpu": others})
    run = _train(tmp_path, "busy")
    assert run.config.precision == "fp32"
    assert not (tmp_path / "cache" / "precision.json").exists()
    record = json.loads((run.path / "run.json").read_text())["precision_auto"]
    assert "fp32 for this run, measured again at the next start" in precision_auto.why(record)


def test_other_processes_share_of_the_cpus_is_read_from_proc():
    # busy ticks 200 of 400 in the window, 100 of them this process's own: the others used a quarter
    assert precision_auto.others_share((100, 1000, 10), (300, 1400, 110)) == pytest.approx(0.25)
    assert precision_auto.others_share((0, 0, 0), (0, 0, 0)) == 0.0               # no /proc: nothing known
    before = precision_auto._cpu_ticks()
    _spin(0.3)
    after = precision_auto._cpu_ticks()
    assert after[2] - before[2] >= 15           # this process's own 0.3 s of CPU (100 ticks a second)
    assert after[0] - before[0] >= after[2] - before[2] and after[1] > before[1]


def _spin(seconds):
    import time
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
