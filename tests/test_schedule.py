"""Schedules of scalar hyperparameters (ganforge.schedule, train.schedules): each shape at chosen steps against its
closed form, the old optim.schedule as one use of it, mistakes as one line, and the curves across a resume."""
import math

import pytest

import ganforge
from conftest import assert_same_tensors, final_state, numbers
from ganforge.errors import UserError
from ganforge.schedule import lr_schedule, parse


@pytest.mark.parametrize("spec, base, steps, want", [
    ("", 0.5, 100, {0: 0.5, 50: 0.5, 99: 0.5}),
    ("linear:0.1", 1.0, 100, {0: 1.0, 25: 0.775, 50: 0.55, 100: 0.1, 150: 0.1}),
    ("cosine:0.005", 0.05, 100, {0: 0.05, 50: 0.0275, 100: 0.005}),
    ("cosine:0.99,start=0.5", 0.9, 100, {0: 0.9, 49: 0.9, 50: 0.9, 75: 0.945, 100: 0.99}),
    ("linear:0,start=0.2,stop=0.6", 2.0, 10, {1: 2.0, 2: 2.0, 4: 1.0, 6: 0.0, 9: 0.0}),
    ("warmup:0.1", 3.0, 100, {0: 0.0, 5: 1.5, 10: 3.0, 99: 3.0}),
    ("cosine:0.5,warmup=0.5", 1.0, 4, {0: 0.0, 1: 0.5 * (0.5 + 0.25 * (1 + math.cos(math.pi / 4))), 2: 0.75,
                                         4: 0.5}),
    ("piecewise:0.5=0.1;0.75=0.01", 1.0, 100, {0: 1.0, 49: 1.0, 50: 0.1, 74: 0.1, 75: 0.01, 99: 0.01}),
])
def test_each_shape_at_chosen_steps(spec, base, steps, want):
    s = parse(spec)
    for step, value in want.items():
        assert s.value(base, step, steps) == pytest.approx(value, abs=1e-12), (spec, step)


def test_the_old_learning_rate_decay_is_one_use_of_it():
    # optim.schedule=linear, decay_start=0.5, final_lr=0.1 over 100 steps, as the loop computed it before
    old = lr_schedule("", "linear", 0.5, 0.1)
    assert [old.value(1.0, t, 100) for t in (0, 49, 50, 75, 100)] == pytest.approx([1.0, 1.0, 1.0, 0.55, 0.1])
    assert old.value(1.0, 10, 100) == 1.0              # exactly, before the decay starts
    cos = lr_schedule("", "cosine", 0.0, 0.0)
    assert cos.value(1.0, 50, 100) == pytest.approx(0.5)
    assert lr_schedule("linear:0.5", "constant").value(1.0, 100, 100) == 0.5
    assert lr_schedule("linear:0.5", "cosine", 0.2, 0.0).value(1.0, 100, 100) == 0.5     # schedule.lr replaces it


@pytest.mark.parametrize("spec, words", [
    ("cosine", "cosine needs a value"), ("exp:0.1", "unknown shape 'exp'"), ("linear:x", "end 'x' is not a number"),
    ("linear:0.1,start=2", "start '2' must be a fraction"), ("linear:0.1,stop=0.2,start=0.4", "stop must come after"),
    ("piecewise:0.5=1;0.2=2", "the fractions must increase"), ("linear:0.1,when=0.3", "unknown option"),
    ("warmup:inf", "must be a fraction"),
])
def test_mistakes_are_one_line(spec, words):
    with pytest.raises(UserError, match=words) as e:
        parse(spec, "schedule.gamma")
    assert str(e.value).startswith(f"schedule.gamma={spec}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides, words", [
    ({"schedule": {"gamma": "cosine:0.1"}, "penalty": "none"}, "schedule.gamma=cosine:0.1 has nothing to schedule"),
    ({"schedule": {"ema": "linear:1"}, "ema": {"enabled": False}}, "ema.enabled=false"),
    ({"schedule": {"augment_target": "linear:0.8"}}, "no adaptive ADA"),
])
def test_a_schedule_with_nothing_to_schedule_is_refused(tmp_path, overrides, words):
    with pytest.raises(UserError, match=words):
        ganforge.train("toy-ring", out=tmp_path, steps=1, progress="off", **overrides)


def test_the_curves_continue_across_a_resume_and_are_logged(tmp_path):
    from ganforge.train.start import start
    sched = {"lr": "cosine:0.25,warmup=0.25", "gamma": "linear:0.5", "beta2": "cosine:0.999", "ema": "piecewise:0.5=2"}
    items = ("steps=8", "log.progress=off", "penalty=r1+r2", "penalty.every=1", "loss=relativistic", "log.every=2",
             "log.checkpoint_every=4", "log.samples_every=100", "eval.metrics=none",
             *(f"schedule.{k}={v}" for k, v in sched.items()))
    start("toy-ring", (*items, "name=whole"), tmp_path)[0].run()
    cut, _ = start("toy-ring", (*items, "name=cut"), tmp_path)     # the same 8-step run, stopped after step 4
    one = cut.iteration

    def stop_at_4():
        one()
        cut._asked = cut._asked or cut.step == 3        # the loop stops at the next step boundary
    cut.iteration = stop_at_4
    assert cut.run()["stopped"] and cut.step == 4
    start(None, (), tmp_path, resume=tmp_path / "cut")[0].run()
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "cut")
    assert a["step"] == b["step"] == 8
    assert_same_tensors({k: a[k] for k in ("G", "D", "G_ema", "opt_g", "opt_d")},
                        {k: b[k] for k in ("G", "D", "G_ema", "opt_g", "opt_d")})     # betas in the param groups too
    assert numbers(tmp_path / "whole") == numbers(tmp_path / "cut")
    cfg = ganforge.load_run(tmp_path / "whole").config
    for row in numbers(tmp_path / "whole"):
        t = row["step"] - 1                           # the values of the last update of the interval
        assert row["lr_g"] == pytest.approx(cfg.optim.g.lr * parse(sched["lr"]).value(1.0, t, 8))
        assert row["gamma"] == pytest.approx(parse(sched["gamma"]).value(cfg.penalty.weight, t, 8))
        assert row["beta2_d"] == pytest.approx(parse(sched["beta2"]).value(cfg.optim.d.beta2, t, 8))
        assert row["ema_half_life_kimg"] == pytest.approx(2.0 if t >= 4 else cfg.ema.half_life_kimg)


def test_a_resume_that_changes_the_length_says_when_a_schedule_drawn_over_it_moved(tmp_path, capsys):
    kw = {"progress": "off", "eval.metrics": "none", "log.tb": "false", "log.samples_every": 100}
    ganforge.train("toy-ring", out=tmp_path, name="a", steps=4, **{"schedule.lr": "linear:0"}, **kw)
    capsys.readouterr()
    ganforge.train(out=tmp_path, resume=tmp_path / "a", steps=8, **kw)
    err = capsys.readouterr().err
    assert "ran its first 4 steps on the schedule.lr of a run of 4 steps and goes on with those of a run of 8 steps" in err
    assert "steps=4" in err and len(err.strip().splitlines()) == 1
    # a decay that starts at half the run: its first 2 steps of 2 took the values they take in a run of 4
    lr = parse("linear:0,start=0.5")
    assert [lr.value(1.0, t, 2) for t in range(2)] == [lr.value(1.0, t, 4) for t in range(2)] == [1.0, 1.0]
    ganforge.train("toy-ring", out=tmp_path, name="b", steps=2, **{"schedule.lr": "linear:0,start=0.5"}, **kw)
    capsys.readouterr()
    ganforge.train(out=tmp_path, resume=tmp_path / "b", steps=4, **kw)
    assert "warning" not in capsys.readouterr().err
