"""``minutes=M`` (train.minutes): the steps that fill a wall-clock budget, decided before step 0 by timing the run's
own steps, then the run as if those steps had been given; mistakes as one line; the rule between steps and minutes."""
import json
import time

import yaml

from conftest import assert_same_tensors, final_state, numbers, run_cli
from ganforge.config import load_config

# the main job (conditional DCGAN, batch norm, lazy R1, EMA, a learning-rate decay over the last quarter of the
# steps), narrowed so that a 9-second budget buys a few hundred steps
SMALL = ["model.g_width=8", "model.d_width=8", "eval.metrics=none", "log.samples_every=100", "log.checkpoint_every=100",
         "log.every=20", "log.progress=off", "log.tb=false"]


def test_a_timed_run_is_the_run_of_its_steps_bit_for_bit(tmp_path, monkeypatch):
    from ganforge.train import minutes
    monkeypatch.setattr(minutes, "WARMUP", 2)             # a shorter timing, for a shorter test: the same path
    monkeypatch.setattr(minutes, "MIN_SECONDS", 0.5)
    t0 = time.time()
    r = run_cli("train", "--out", tmp_path, "name=timed", "minutes=0.2", *SMALL)
    wall = time.time() - t0
    assert r.returncode == 0, r.stderr
    run = tmp_path / "timed"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    steps = saved["steps"]
    assert saved["minutes"] is None and steps > 10             # config.yaml says what ran: a re-run trains the same
    info = json.loads((run / "run.json").read_text())["minutes"]
    assert info["steps"] == steps and info["minutes"] == 0.2 and info["probe_steps"] >= 16
    # sized again at 40% of the first plan: config.yaml has the steps that ran, run.json both
    r0 = info["resized"][0]
    first = r0.get("from", r0.get("kept"))
    assert r0["at"] == int(minutes.RESIZE_AT[0] * first) and len(info["resized"]) <= len(minutes.RESIZE_AT)
    # the first plan fills the budget: one step more would not fit (the wall time itself drifts with a shared machine)
    per_step = minutes.SLACK * info["s_per_step"] + info["grid_s"] / 100 + info["checkpoint_s"] / 100
    planned = info["start_s"] + info["end_s"] + first * per_step
    assert planned <= 12.02 and 12.0 < planned + per_step + 0.02 and wall < 12.0 * 2
    # the timing trained steps and evaluated, then put everything back: the same run with steps= given is identical
    r = run_cli("train", "--out", tmp_path, "name=fixed", f"steps={steps}", *SMALL)
    assert r.returncode == 0, r.stderr
    assert numbers(run) == numbers(tmp_path / "fixed")
    a, b = final_state(run), final_state(tmp_path / "fixed")
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "z", "aux", "batches", "game", "torch_rng"):
        assert_same_tensors(a[key], b[key], key)
    # resumed with the preset's minutes (resume=true), the run keeps the steps it was sized to
    r = run_cli("train", "--out", tmp_path, "name=timed", "resume=true", "minutes=0.2", *SMALL)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["steps"] == steps


def test_the_timing_evaluates_and_puts_the_trainer_back(tmp_path, monkeypatch):
    from ganforge.train import minutes
    from ganforge.train.start import start
    monkeypatch.setattr(minutes, "MIN_SECONDS", 0.5)
    trainer, _ = start("mnist-main", (*SMALL[:2], "steps=5", "eval.n=100", "log.progress=off"), tmp_path)
    before = minutes.to_cpu_copy(trainer.state_dict())
    m = minutes.measure(trainer, 60.0)
    assert m["probe_steps"] >= minutes.MIN_STEPS and m["probe_steps"] % 4 == 0      # whole intervals of the lazy R1
    assert m["s_per_step"] > 0 and m["eval_s"] > 0 and m["grid_s"] > 0 and m["checkpoint_s"] > 0
    assert trainer.step == 0
    assert_same_tensors(minutes.to_cpu_copy(trainer.state_dict()), before)
    trainer.release_lock()


def test_sized_again_from_the_run_s_own_pace_where_no_schedule_has_used_the_steps(tmp_path, monkeypatch):
    from ganforge.train import minutes
    monkeypatch.setattr(minutes, "RESIZE_SLACK", 1.0)        # round figures below (each half a step from the edge)
    from ganforge.train.start import start
    trainer, _ = start("mnist-main", (*SMALL[:2], "steps=100", "log.progress=off"), tmp_path)   # lr decays from 75%
    trainer.sized = {"minutes": 1.0, "steps": 100}

    def at_step_40(pace: float, budget: float) -> dict:
        trainer.cfg.steps, trainer.step, trainer.train_time = 100, 40, 40 * pace
        trainer.resize_plan = {"at": 40, "started": time.time(), "budget": budget, "end": 0.0, "periodic": 0.0,
                               "shares": (), "since": (0, 0.0)}
        minutes.resize(trainer)
        assert trainer.resize_plan is None                       # no share left to size at
        return json.loads((trainer.run_dir / "run.json").read_text())["minutes"]["resized"][-1]

    # 0.1 s a step so far and 9.65 s left: 96 steps more, the decay not begun before step 102
    got = at_step_40(0.1, 9.65)
    assert got == {"at": 40, "s_per_step": 0.1, "from": 100} and trainer.cfg.steps == 40 + 96
    assert yaml.safe_load((trainer.run_dir / "config.yaml").read_text())["steps"] == 136
    assert trainer.progress.total == 136
    # a slower pace, 12 steps more: the decay starts at step 39, and steps 0-39 ran undecayed under both plans
    got = at_step_40(0.1, 1.25)
    assert got == {"at": 40, "s_per_step": 0.1, "from": 100} and trainer.cfg.steps == 52
    # 11 steps more would have decayed step 39 (0.75 x 51 = 38.25): the plan stands, config.yaml is not touched
    got = at_step_40(0.1, 1.15)
    assert got == {"at": 40, "s_per_step": 0.1, "kept": 100, "would_be": 51} and trainer.cfg.steps == 100
    assert yaml.safe_load((trainer.run_dir / "config.yaml").read_text())["steps"] == 52
    # the slower of two paces counts: since the last sizing (0.2 s a step over steps 20-39, after 0.1 before) ...
    trainer.cfg.steps, trainer.train_time = 100, 20 * 0.1 + 20 * 0.2
    trainer.resize_plan = {"at": 40, "started": time.time(), "budget": 12.1, "end": 0.0, "periodic": 0.0,
                           "shares": (0.6,), "since": (20, 2.0)}
    minutes.resize(trainer)
    assert trainer.cfg.steps == 40 + 60 and trainer.resize_plan["at"] == 60 and trainer.resize_plan["since"] == (40, 6.0)
    # ... or since step 0 (0.15 s a step on average, 0.1 over steps 20-39 after 0.2 before)
    trainer.cfg.steps, trainer.train_time = 100, 20 * 0.2 + 20 * 0.1
    trainer.resize_plan = {"at": 40, "started": time.time(), "budget": 9.1, "end": 0.0, "periodic": 0.0,
                           "shares": (), "since": (20, 4.0)}
    minutes.resize(trainer)
    assert trainer.cfg.steps == 40 + 60
    trainer.release_lock()


def test_too_few_minutes_are_one_line_and_leave_no_folder(tmp_path):
    r = run_cli("train", "--out", tmp_path, "name=short", "minutes=0.01", *SMALL)
    assert r.returncode == 2
    assert r.stderr.startswith("ganforge: error: minutes=0.01 leaves no time to train: the start took ")
    assert r.stderr.count("\n") == 1 and not (tmp_path / "short").exists()


def test_of_steps_and_minutes_the_later_one_sizes_the_run():
    main = load_config("mnist-main")                           # the main job's preset sets minutes
    assert main.minutes == 5.0
    assert load_config("mnist-main", ("steps=20",)).minutes is None and load_config("mnist-main", ("steps=20",)).steps == 20
    cfg = load_config("mnist-dcgan", ("minutes=2",))
    assert cfg.minutes == 2.0
    assert load_config("mnist-dcgan", ("minutes=2", "steps=7")).minutes is None
    # minutes=null turns the timing off and keeps the preset's steps (it used to drop them for the default 3,000)
    for null in ("null", "None", "~"):
        cfg = load_config("mnist-cgan", (f"minutes={null}",))
        assert cfg.minutes is None and cfg.steps == 6000
