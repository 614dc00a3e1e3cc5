"""compile=true: torch.compile'd G and D train like the eager ones, and checkpoints hold the plain modules."""
import torch

import ganforge


def test_compiled_run_matches_eager_and_saves_plain_weights(tmp_path):
    # SGD, not Adam: Adam's first steps are lr * sign(g), so a gradient that is 0 up to the order of a sum
    # (which compiled kernels change) moves a weight by +-lr either way; under SGD weights differ as gradients do
    sgd = {"name": "sgd", "lr": 0.01}
    common = dict(out=tmp_path, steps=3, batch_size=32, penalty="none", progress="off", threads=1,
                  optim={"g": sgd, "d": sgd}, log={"every": 3, "samples_every": 100, "checkpoint_every": 3})
    eager = ganforge.train("toy-ring", name="eager", **common)
    comp = ganforge.train("toy-ring", name="comp", compile=True, **common)
    a, b = eager.G.state_dict(), comp.G.state_dict()
    assert a.keys() == b.keys() and not any("_orig_mod" in k for k in b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_compile_with_r1_keeps_d_eager_and_trains(tmp_path, capfd):
    run = ganforge.train("toy-ring", out=tmp_path, name="r1", steps=2, batch_size=32, compile=True, progress="off",
                         penalty={"name": "r1", "every": 1}, log={"every": 2, "samples_every": 100, "checkpoint_every": 2})
    assert run.step == 2
    assert "D stays eager" in capfd.readouterr().err
