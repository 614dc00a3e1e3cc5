import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganforge.metrics.reference import install_torch_fidelity_shim
from ganforge.runs.metrics_log import WALL_CLOCK_KEYS, read_metrics

install_torch_fidelity_shim()      # before anything imports torchmetrics (its FID module imports torch-fidelity)

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per pytest-xdist worker and per process a test starts (they inherit OMP_NUM_THREADS): two workers
    # of torch's default two threads each, plus their children, oversubscribed the 2 cores of CI
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True, scope="session")
def _precision_auto_fp32():
    """precision=auto means fp32 in the tests, unmeasured: their figures must not depend on whether bf16 is fast on
    the CPU that runs them (tests/test_precision_auto.py unsets it to test the measurement)."""
    old = os.environ.get("GANFORGE_PRECISION_AUTO")
    os.environ["GANFORGE_PRECISION_AUTO"] = "fp32"
    yield
    if old is None:
        os.environ.pop("GANFORGE_PRECISION_AUTO", None)
    else:
        os.environ["GANFORGE_PRECISION_AUTO"] = old


@pytest.fixture(autouse=True, scope="session")
def _stats_cache(tmp_path_factory):
    """Keep the tests' reference statistics out of ~/.cache (child processes inherit the variable)."""
    old = os.environ.get("GANFORGE_CACHE")
    os.environ["GANFORGE_CACHE"] = str(tmp_path_factory.mktemp("stats-cache"))
    yield
    if old is None:
        os.environ.pop("GANFORGE_CACHE", None)
    else:
        os.environ["GANFORGE_CACHE"] = old


def ganforge_cmd(*args):
    return [sys.executable, "-m", "ganforge", *map(str, args)]


def run_cli(*args, cwd=None, timeout=300, process=None):
    """``ganforge ARGS...``: its exit code, stdout and stderr (a subprocess.CompletedProcess).

    It runs in this process through ganforge.cli.main, as ``python -m ganforge`` does, which saves the 6-9 s that
    a new process spends importing torch (and torch._dynamo, on its first optimizer) on a 2-core CI machine.
    ``process=True`` (implied by ``--nproc``) starts a real process: for what only a process shows (signals, a
    hang cut by ``timeout``, output of child processes). An exception that escapes main is what a process would
    print: a traceback on stderr and exit code 1."""
    argv = [str(a) for a in args]
    if process or (process is None and any(a == "--nproc" or a.startswith("--nproc=") for a in argv)):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.run(ganforge_cmd(*argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return _in_process(argv, cwd)


def _in_process(argv, cwd):
    import contextlib
    import io
    import signal
    import traceback

    from ganforge.cli import main
    out, err = io.StringIO(), io.StringIO()
    env, here, threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:           # what the interpreter prints when an exception ends a process
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(env)
        torch.set_num_threads(threads)
        for sig, h in handlers.items():
            signal.signal(sig, h)
    return subprocess.CompletedProcess(["ganforge", *argv], code, out.getvalue(), err.getvalue())


def numbers(run_dir):
    """metrics.jsonl without the wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_KEYS} for r in read_metrics(Path(run_dir) / "metrics.jsonl")]


def final_state(run_dir):
    ckpts = sorted((Path(run_dir) / "checkpoints").glob("step-*.pt"))
    return torch.load(ckpts[-1], weights_only=True)


def assert_same_tensors(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            assert_same_tensors(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture
def tiny_dcgan():
    """Overrides for a DCGAN small enough to train in seconds on the CPU."""
    return ["model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "log.progress=off", "eval.n=500"]


def train_run(out, name, base, *extra, nproc=1):
    """``ganforge train BASE... name=NAME EXTRA... --out OUT`` (``--nproc`` when above 1), which must succeed; the
    run folder."""
    args = ["train", *base, f"name={name}", *extra, "--out", out] + (["--nproc", str(nproc)] if nproc > 1 else [])
    r = run_cli(*args, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(out) / name


def run_nets(path, nets=("G", "D", "G_ema")):
    """The state dicts of a run folder's ``nets``, as api.load_run gives them."""
    from ganforge.api import load_run
    r = load_run(path)
    return {n: getattr(r, n).state_dict() for n in nets}


def assert_same_nets(a, b, nets=("G", "D", "G_ema")):
    """Two loaded runs (api.Run) hold bit-identical weights and buffers in each of ``nets``."""
    assert_same_tensors({n: getattr(a, n).state_dict() for n in nets}, {n: getattr(b, n).state_dict() for n in nets})


def one_line(capsys, code, *words):
    """The command exited 2 with exactly one line, ``ganforge: error: ...``, naming each of ``words``."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ganforge: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert str(w) in err, (w, err)
    return err


def rewrite_generator(src, dst, meta_edit=None, tensor_edit=None, header_edit=None):
    """A copy of an exported generator file with its ganforge metadata, tensors or header changed."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(src))
    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata())
    meta = json.loads(header["ganforge"])
    if meta_edit:
        meta_edit(meta)
    if tensor_edit:
        tensor_edit(tensors)
    header["ganforge"] = json.dumps(meta)
    if header_edit:
        header_edit(header)
    save_file(tensors, str(dst), metadata=header)
    return dst
