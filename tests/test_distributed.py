"""Data-parallel training: 2 gloo processes on the CPU against 1 process with the same global batch
(device=cpu, threads=1 and precision=fp32 for both, so that any machine compares like with like: on an H100
host a rank took the GPU or 8 threads, and its CPU has AMX, where precision=auto is bf16)."""
import json

import pytest
import torch

from conftest import run_cli
from ganforge.api import load_run

COMMON = ["toy-ring", "device=cpu", "threads=1", "precision=fp32", "batch_size=64", "log.every=3", "log.samples_every=100", "log.checkpoint_every=3",
          "optim.schedule=constant"]


@pytest.mark.parametrize("spec, gpus, n, expect", [
    ("auto", 0, 2, False), ("auto", 1, 2, False), ("auto", 2, 2, True), ("cuda", 2, 2, True), ("cpu", 2, 2, False),
    ("cuda", 1, 2, "needs 2 GPUs, one per process; this machine has 1"),
    ("cuda:0", 2, 2, "names one GPU, but 2 processes take one each"),
    ("cuda", 0, 2, "no CUDA GPU is available here"),
])
def test_processes_take_a_gpu_each_or_the_cpu(monkeypatch, spec, gpus, n, expect):
    """NCCL puts one process on each GPU: with fewer GPUs than processes, auto trains them all on the CPU
    (on an H100 machine, --nproc 2 used to die with 'invalid device ordinal') and cuda is a user error."""
    from ganforge.errors import UserError
    from ganforge.train.distributed import gpus_for
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.delenv("GANFORGE_BACKEND", raising=False)
    if isinstance(expect, bool):
        assert gpus_for(spec, n) is expect
    else:
        with pytest.raises(UserError, match=expect):
            gpus_for(spec, n)
    monkeypatch.setenv("GANFORGE_BACKEND", "gloo")
    if spec == "auto":
        assert gpus_for(spec, n) is False


def _weights(path):
    r = load_run(path)
    return {f"{n}.{k}": v for n, net in (("G", r.G), ("D", r.D)) for k, v in net.state_dict().items()}


def _train(out, name, *extra, nproc=1):
    args = ["train", *COMMON, f"name={name}", *extra, "--out", out] + (["--nproc", str(nproc)] if nproc > 1 else [])
    r = run_cli(*args, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return out / name


# Adam's first steps are lr * sign(g): a gradient that is 0 up to the order of a sum moves by +-lr either way,
# so the gradient-penalty case (whose interpolation noise is drawn globally and sliced per rank) uses SGD,
# where the weights differ by no more than the gradients do.
SGD = ["optim.g.name=sgd", "optim.d.name=sgd", "optim.g.lr=0.01", "optim.d.lr=0.01"]
# RaGAN's batch means must be global: with per-rank means these weights differed from one process by 6e-4
# (with the global mean by 3e-8).
SGD_FAST = [*SGD[:2], "optim.g.lr=0.1", "optim.d.lr=0.1"]
# StyleGAN2's noise, style mixing and path-length batch are drawn for the global batch and sliced per rank, its
# running means (w, path length) are global; minibatch std groups (1 here) are the one part that stays per rank.
STYLEGAN = ["steps=4", "data=mnist", "model=stylegan", "model.g_width=4", "model.d_width=4", "model.w_dim=8",
            "model.mapping_layers=2", "model.max_width=16", "model.mbstd_group=1", "model.pl_every=2",
            "penalty.every=2", "eval.metrics=none", *SGD]


@pytest.mark.parametrize("extra", [["steps=6", "penalty.every=2"], ["steps=4", "loss=wgan-gp", "penalty=gp", *SGD],
                                   ["steps=6", "loss=relativistic-average", *SGD_FAST], STYLEGAN])
def test_two_processes_equal_one_with_the_whole_batch(tmp_path, extra):
    two = _train(tmp_path, "two", *extra, nproc=2)
    one = _train(tmp_path, "one", *extra, "threads=1")
    a, b = _weights(two), _weights(one)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    rows2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    rows1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows2] == [r["step"] for r in rows1]          # rank 0 alone writes: no duplicates
    for r2, r1 in zip(rows2, rows1):
        assert r2["loss_d"] == pytest.approx(r1["loss_d"], abs=1e-5)       # statistics averaged over the ranks
        assert r2["kimg"] == r1["kimg"]


def test_resume_under_two_processes_is_exact(tmp_path):
    whole = _train(tmp_path, "whole", "steps=6", nproc=2)
    part = _train(tmp_path, "part", "steps=3", nproc=2)
    r = run_cli("train", "steps=6", "--resume", part, "--nproc", "2", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _weights(whole), _weights(part)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_nproc_mistakes_are_one_line_before_launching(tmp_path):
    r = run_cli("train", *COMMON, "batch_size=63", "name=x", "--out", tmp_path, "--nproc", "2")
    assert r.returncode == 2 and "divide over the 2 processes" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("train", *COMMON, "model.pack=4", "batch_size=36", "name=x", "--out", tmp_path, "--nproc", "2")
    assert r.returncode == 2 and "model.pack=4" in r.stderr
    assert not (tmp_path / "x").exists()


def test_batch_norm_is_synchronized_over_processes(tmp_path):
    """DCGAN's G has batch norm: with sync_bn (the default) 2 processes match 1; per-process statistics do not."""
    dcgan = ["mnist-dcgan", "device=cpu", "threads=1", "precision=fp32", "model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "steps=4",
             "log.every=2", "log.samples_every=100", "log.checkpoint_every=4", "eval.metrics=none", *SGD,
             "optim.schedule=constant"]

    def train(name, *extra, nproc=1):
        r = run_cli("train", *dcgan, f"name={name}", *extra, "--out", tmp_path,
                    *(["--nproc", str(nproc)] if nproc > 1 else []), timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return _weights(tmp_path / name)

    one, two, per_rank = train("one", "threads=1"), train("two", nproc=2), train("apart", "sync_bn=false", nproc=2)
    for k in one:
        torch.testing.assert_close(two[k].float(), one[k].float(), rtol=1e-5, atol=1e-6, msg=k)
    assert max(float((per_rank[k].float() - one[k].float()).abs().max()) for k in one) > 1e-4


def test_precision_auto_is_decided_once_for_every_process(tmp_path, monkeypatch):
    """Rank 0 times the nets (plain batch norm: the synchronised one would wait for the other ranks) and tells the
    others; the choice is written once, in config.yaml and run.json."""
    args = ["mnist-dcgan", "device=cpu", "precision=auto", "model.g_width=8", "model.d_width=8", "model.z_dim=16",
            "batch_size=16", "steps=2", "log.every=2", "log.samples_every=100", "log.checkpoint_every=2",
            "eval.metrics=none", "name=auto", "--out", tmp_path, "--nproc", "2"]
    monkeypatch.delenv("GANFORGE_PRECISION_AUTO")          # measured, not the suite's fp32
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    r = run_cli("train", *args, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    chosen = json.loads((tmp_path / "auto" / "run.json").read_text())["precision_auto"]["precision"]
    assert f"precision: {chosen}" in (tmp_path / "auto" / "config.yaml").read_text()
    assert r.stderr.count("(auto: a step of these nets took") == 1


def test_evaluation_is_shared_by_the_processes_and_equals_one_process(tmp_path):
    args = ["mnist-dcgan", "device=cpu", "threads=1", "precision=fp32", "model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "steps=2",
            "log.every=2", "log.samples_every=100", "log.checkpoint_every=2", "eval.n=301",
            "eval.metrics=fid,kid,is,pr,dc,modes", "optim.schedule=constant"]
    rows = {}
    for name, extra in (("one", ["threads=1"]), ("two", ["--nproc", "2"])):
        r = run_cli("train", *args, f"name={name}", "--out", tmp_path, *extra, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        rows[name] = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("fid", "kid", "is", "precision", "recall", "density", "coverage", "modes", "kl"):
        assert rows["two"][key] == pytest.approx(rows["one"][key], rel=1e-5, abs=1e-6), key


def test_ctrl_c_stops_every_process_at_one_step_quietly(tmp_path):
    """Ctrl-C reaches the launcher's process group: a checkpoint, exit 130, and no traceback from torchrun."""
    import os
    import signal
    import subprocess
    import sys
    import time
    cmd = [sys.executable, "-m", "ganforge", "train", "toy-ring", "steps=1000000", "name=s", "log.every=50",
           "log.progress=lines", "--out", str(tmp_path), "--nproc", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    metrics = tmp_path / "s" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "--nproc 2" in err
    ckpt = sorted((tmp_path / "s" / "checkpoints").glob("step-*.pt"))
    assert len(ckpt) == 1
    r = run_cli("train", "--resume", tmp_path / "s", "--nproc", "2", f"steps={int(ckpt[0].stem[5:]) + 3}", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_two_nodes_through_torchrun_rendezvous_equal_one_process(tmp_path):
    """Multi-node as torchrun does it: two agents (node_rank 0 and 1, one process each) meet at a c10d
    rendezvous endpoint (here on the loopback) and train as one group of 2."""
    import os
    import socket
    import subprocess
    import sys
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["train", *COMMON, "steps=4", "threads=1", "name=nodes", "--out", str(tmp_path)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", GLOO_SOCKET_IFNAME="lo")
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={i}",
                                "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}",
                                "--rdzv_id=ganforge-test", "-m", "ganforge", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in (0, 1)]
    outs = [a.communicate(timeout=300) for a in agents]
    assert [a.returncode for a in agents] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    one = _train(tmp_path, "one", "steps=4", "threads=1")
    a, b = _weights(tmp_path / "nodes"), _weights(one)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def _rank_asked_late(rank, port, out, results):
    """One of two gloo ranks; rank 0 gets its stop request while it writes step 6's log line, after that
    step's agreement (as a signal can arrive at any bytecode)."""
    import os
    import signal
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from ganforge.train.start import start
    trainer, _ = start("toy-ring", ("steps=40", "name=late", "log.every=3", "log.progress=off"), out)
    if rank == 0:
        write = trainer.metrics.write

        def write_then_ask(rec):
            write(rec)
            if rec["step"] == 6:
                trainer._on_signal(signal.SIGTERM, None)
        trainer.metrics.write = write_then_ask
    result = trainer.run()
    results.put((rank, result["step"], result["stopped"]))


def test_a_stop_request_after_the_steps_agreement_stops_every_rank_at_the_next_step(tmp_path):
    import multiprocessing
    import socket
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank_asked_late, args=(r, port, tmp_path, results)) for r in (0, 1)]
    for p in procs:
        p.start()
    deadline = time.time() + 120
    for p in procs:
        p.join(timeout=max(1.0, deadline - time.time()))
    hung = [p.pid for p in procs if p.is_alive()]
    for p in procs:
        p.kill()
    assert not hung, "a rank hung: the ranks left the loop at different steps"
    assert sorted(results.get(timeout=5) for _ in procs) == [(0, 7, True), (1, 7, True)]
