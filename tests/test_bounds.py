"""Issue 23, sizes without bounds and special files: every size a user types or a file declares is checked
against the memory the machine has before it is allocated; YAML aliases are refused; a FIFO or a device is
never opened as data; counts on the command line are checked as argparse reads them."""
import gzip
import io
import os
import struct
import time
import zipfile

import numpy as np
import pytest
import torch

from ganforge import memory
from ganforge.cli import main

from conftest import one_line, run_cli

GB = 1e9


@pytest.fixture
def free(monkeypatch):
    """The machine's free memory, as the checks see it (they read /proc/meminfo unless told)."""
    def set_free(n):
        monkeypatch.setattr(memory, "available", lambda device=None: int(n))
    set_free(8 * GB)
    monkeypatch.delenv(memory.INSIST_ENV, raising=False)
    return set_free


# ---------------------------------------------------------------- training sizes

@pytest.mark.parametrize("override, words", [
    ("batch_size=1000000000", ["lower batch_size (now 1000000000)", "mostly activations"]),
    ("data.resolution=100000", ["data.resolution=100000", "2.56 TB"]),         # 64 images converted at a time
    ("data.resolution=1024", ["data.resolution", "mostly activations"]),      # 28 px digits blown up to 1024
    ("log.n_samples=100000000", ["lower log.n_samples", "mostly samples"]),
    ("eval.n=1000000000", ["lower eval.n", "mostly evaluation"]),
])
def test_a_run_too_large_for_the_machine_is_refused_before_anything_is_allocated(tmp_path, free, capsys, override,
                                                                                 words):
    preset = "toy-ring" if override.startswith("batch") else "mnist-dcgan"
    code = main(["train", preset, override, "steps=1", "log.progress=off", "--out", str(tmp_path)])
    one_line(capsys, code, "of memory and this machine has 8 GB free", "--insist", *words)
    assert not any(tmp_path.iterdir())                    # no half-made run folder


def test_the_estimate_lets_ordinary_runs_through_and_insist_turns_a_refusal_into_a_warning(tmp_path, free, capsys):
    free(150e6)                                            # the toy run's estimate: about 107 MB
    assert main(["train", "toy-ring", "steps=2", "eval.metrics=none", "log.progress=off", "--out", str(tmp_path)]) == 0
    free(1e6)
    code = main(["train", "toy-ring", "steps=2", "name=b", "eval.metrics=none", "log.progress=off",
                 "--out", str(tmp_path)])
    one_line(capsys, code, "this run", "1 MB free")
    assert main(["train", "toy-ring", "steps=2", "name=b", "eval.metrics=none", "log.progress=off", "--insist",
                 "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "ganforge: warning: this run" in err and "going on as asked (--insist)" in err
    assert (tmp_path / "b" / "checkpoints").is_dir()


def test_the_estimate_follows_the_batch_and_the_network(tmp_path):
    from ganforge.config import build, raw_from
    from ganforge.data import load_dataset
    from ganforge.train import budget
    from ganforge.train.start import finish_config

    def parts(*ov):
        cfg = finish_config(build(raw_from("mnist-dcgan", list(ov))))
        return budget.estimate(cfg, load_dataset(cfg.data))
    base, big = parts("batch_size=64"), parts("batch_size=128")
    assert big["activations"] == pytest.approx(2 * base["activations"])             # linear in the batch
    assert big["weights and optimizer"] == base["weights and optimizer"]
    wide = parts("model.g_width=128")
    assert wide["weights and optimizer"] > 2 * base["weights and optimizer"]
    cfg = finish_config(build(raw_from("mnist-dcgan", [])))
    from ganforge.nets import build_nets
    G, D = build_nets(cfg.model, (1, 28, 28))
    n = sum(p.numel() for p in G.parameters()) * 4 + sum(p.numel() for p in D.parameters()) * 4
    assert base["weights and optimizer"] == pytest.approx(4 * n + n - sum(p.numel() for p in D.parameters()) * 4)


def test_the_estimate_of_a_spectral_norm_family_skips_only_the_power_iterations(monkeypatch):
    """The meta build skips spectral norm's power iterations (seconds per start): the estimate stays what the full
    build gives, within the few vectors the iterations update, and real nets still iterate afterwards."""
    import contextlib

    from torch.nn.utils.parametrizations import _SpectralNorm

    from ganforge.config import build, raw_from
    from ganforge.data import load_dataset
    from ganforge.nets import build_nets
    from ganforge.nets.layers import no_power_iterations_on_meta
    from ganforge.train import budget
    from ganforge.train.start import finish_config
    cfg = finish_config(build(raw_from("mnist-sngan", ["model.g_width=16", "model.d_width=16"])))
    data = load_dataset(cfg.data)
    method = _SpectralNorm._power_method
    fast = budget.estimate(cfg, data)
    assert _SpectralNorm._power_method is method
    monkeypatch.setattr(budget, "no_power_iterations_on_meta", contextlib.nullcontext)
    full = budget.estimate(cfg, data)
    assert fast.keys() == full.keys() and fast["weights and optimizer"] == full["weights and optimizer"]
    assert fast["activations"] == pytest.approx(full["activations"], rel=0.02) and fast["activations"] <= full["activations"]
    G, D = build_nets(cfg.model, data.shape)
    sn = [m for m in D.modules() if isinstance(m, _SpectralNorm)][0]
    u = sn._u.clone()
    D(torch.zeros(2, *data.shape))
    assert not torch.equal(u, sn._u)
    with no_power_iterations_on_meta():           # meanwhile, a real net (another thread's run) still iterates
        u = sn._u.clone()
        D(torch.zeros(2, *data.shape))
        assert not torch.equal(u, sn._u)


def test_sample_n_beyond_memory_is_refused_and_no_file_written(tmp_path, free, capsys):
    import ganforge
    run = ganforge.train("toy-ring", out=tmp_path, steps=2, progress="off", **{"eval.metrics": "none"})
    out = tmp_path / "x.npz"
    one_line(capsys, main(["sample", str(run.path), "-n", str(10**9), "--out", str(out)]), "-n 1000000000 samples",
             "ask for fewer")
    assert not out.exists()


@pytest.mark.parametrize("argv, words", [
    (["sample", "RUN", "--nrow", "-3", "--out", "x.png"], "argument --nrow: must be at least 1, got -3"),
    (["sample", "RUN", "-n", "0", "--out", "x.png"], "argument -n: must be at least 1, got 0"),
    (["data", "show", "mnist", "-n", "-5"], "argument -n: must be from 1 to 10000, got -5"),
    (["data", "show", "mnist", "-n", "0"], "argument -n: must be from 1 to 10000, got 0"),
    (["interpolate", "RUN", "--fps", "nan", "--out", "x.gif"], "must be a finite number above 0"),
    (["serve", "--port", "70000"], "must be from 0 to 65535"),
    (["train", "--nproc", "abc"], "must be a whole number, got 'abc'"),
])
def test_counts_on_the_command_line_are_checked_with_ganforges_prefix(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = one_line(capsys, e.value.code, words)
    assert "ganforge train:" not in err and "ganforge sample:" not in err    # one prefix, not argparse's


# ---------------------------------------------------------------- YAML

LAUGHS = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n" for p, k in zip("abcdefgh", "bcdefghi")) + "name: *i\n"


def test_a_billion_laughs_config_is_refused_at_once(tmp_path, capsys):
    f = tmp_path / "laughs.yaml"
    f.write_text(LAUGHS)
    assert len(LAUGHS) < 400
    t = time.monotonic()
    one_line(capsys, main(["train", str(f), "--out", str(tmp_path)]), "an alias (*a)", "do not accept YAML aliases")
    assert time.monotonic() - t < 5


def test_values_echoed_in_errors_are_cut_short(tmp_path, capsys):
    f = tmp_path / "wide.yaml"
    f.write_text("name: [" + ", ".join(["[1, 2, 3, 4, 5, 6, 7, 8, 9]"] * 2000) + "]\n")     # 60 KB, no alias
    err = one_line(capsys, main(["train", str(f), "--out", str(tmp_path)]), "name must be a string")
    assert len(err) < 300, len(err)
    err = one_line(capsys, main(["train", "toy-ring", "loss=" + "x" * 100000, "--out", str(tmp_path)]), "loss must be")
    assert len(err) < 700, len(err)


def test_progress_off_in_yaml_is_the_word_not_false(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 2\nlog:\n  progress: off\neval:\n  metrics: none\n")
    r = run_cli("train", f, "data=ring", "model=mlp", "--out", tmp_path / "runs")
    assert r.returncode == 0, r.stderr
    assert "progress: 'off'" in next((tmp_path / "runs").iterdir()).joinpath("config.yaml").read_text()


# ---------------------------------------------------------------- files that declare their size

def _npz_declaring(path, shape, body=b"\0" * 64, compress=zipfile.ZIP_STORED):
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compress) as z:
        z.writestr("x.npy", head.getvalue() + body)


def test_an_npz_whose_header_claims_more_than_it_holds_is_refused(tmp_path, capsys):
    f = tmp_path / "lie.npz"
    _npz_declaring(f, (100000, 1000, 1000))
    one_line(capsys, main(["data", "show", f"npz:{f}", "--out", str(tmp_path / "s.png")]),
             "declares shape (100000, 1000, 1000)", "the file is damaged")


def test_a_compressed_npz_of_zeros_is_measured_before_it_is_inflated(tmp_path, free, capsys):
    f = tmp_path / "zeros.npz"
    np.savez_compressed(f, x=np.zeros((1000, 1, 100, 100), np.uint8))      # 10 MB of zeros in ~10 KB
    assert f.stat().st_size < 100_000
    free(20e6)
    one_line(capsys, main(["data", "show", f"npz:{f}", "--out", str(tmp_path / "s.png")]),
             "'x' of shape (1000, 1, 100, 100)", "30 MB", "20 MB free")
    free(8 * GB)
    assert main(["data", "show", f"npz:{f}", "--out", str(tmp_path / "s.png")]) == 0


def test_a_gzipped_idx_bomb_is_refused_from_its_header(tmp_path, free, capsys):
    f = tmp_path / "train-images-idx3-ubyte.gz"
    n, side = 10000, 100                       # 100 MB declared, a few hundred KB on disk
    with gzip.open(f, "wb") as g:
        g.write(bytes([0, 0, 8, 3]) + struct.pack(">III", n, side, side))
        for _ in range(n // 1000):
            g.write(b"\0" * 1000 * side * side)
    free(100e6)
    one_line(capsys, main(["data", "show", f"idx:{f}", "--out", str(tmp_path / "s.png")]),
             "IDX images of shape (10000, 100, 100)", "500 MB")


# ---------------------------------------------------------------- special files

def test_a_device_given_as_data_is_named_for_what_it_is(tmp_path, capsys):
    for spec in ("npz:/dev/zero", "idx:/dev/zero"):
        one_line(capsys, main(["data", "show", spec, "--out", str(tmp_path / "s.png")]),
                 "/dev/zero is not a regular file (a device, FIFO or socket)")


def test_a_fifo_in_an_image_folder_is_skipped_not_opened(tmp_path):
    from PIL import Image
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(imgs / f"{i}.png")
    os.mkfifo(imgs / "fifo.png")
    os.symlink(tmp_path / "nowhere.png", imgs / "dangling.png")
    r = run_cli("data", "show", f"folder:{imgs}", "--out", tmp_path / "s.png", timeout=60, process=True)
    assert r.returncode == 0, r.stderr
    assert "skipped 2 files" in r.stderr and "2 not images" in r.stderr and "3 samples" in r.stdout
    r = run_cli("train", f"data=folder:{imgs}", "steps=1", "batch_size=3", "data.resolution=8", "model.g_width=8",
                "model.d_width=8", "eval.metrics=none", "log.progress=off", "--out", tmp_path / "runs", timeout=120, process=True)
    assert r.returncode == 0, r.stderr


def test_an_image_too_large_to_decode_safely_is_skipped_without_pils_warning(tmp_path):
    from PIL import Image
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16), 90 * i, np.uint8)).save(imgs / f"{i}.png")
    Image.new("L", (10000, 9000)).save(imgs / "huge.png")                     # 90 million pixels
    r = run_cli("data", "show", f"folder:{imgs}", "--out", tmp_path / "s.png", timeout=60, process=True)
    assert r.returncode == 0, r.stderr
    assert "DecompressionBomb" not in r.stderr and "1 unreadable: huge.png" in r.stderr


def test_lab_docs_follow_the_out_rule_and_never_delete_user_files(tmp_path, capsys):
    docs = tmp_path / "docs"
    (docs / "figures" / "saturation").mkdir(parents=True)
    (docs / "saturation.md").write_text("my notes")
    (docs / "figures" / "saturation" / "mine.txt").write_text("keep me")
    one_line(capsys, main(["lab", "saturation", "--docs", str(docs), "--out", str(tmp_path / "lab")]),
             "saturation.md exists", "--force")
    assert (docs / "saturation.md").read_text() == "my notes"
    from ganforge.lab import get
    from ganforge.lab.docs import write_page
    run = tmp_path / "lab" / "saturation"
    run.mkdir(parents=True)
    (run / "fig.png").write_bytes(b"png")
    (run / "result.json").write_text("{}")
    result = {"name": "saturation", "claim": "c", "size": "default", "seed": 0, "seconds": 1.0, "held": True,
              "headline": "h", "figures": ["fig.png"], "numbers": {"a": 1.0},
              "machine": {"cores": 2, "torch": "x"}}
    write_page(result, get("saturation"), run, docs)                       # what --force does once the run ends
    assert (docs / "figures" / "saturation" / "mine.txt").read_text() == "keep me"
    assert (docs / "figures" / "saturation" / "fig.png").read_bytes() == b"png"


def test_ctrl_c_while_sample_force_replaces_a_file_keeps_the_old_one_whole(tmp_path):
    import signal
    import subprocess
    import ganforge
    from conftest import ganforge_cmd
    run = ganforge.train("toy-ring", out=tmp_path / "runs", steps=2, progress="off", **{"eval.metrics": "none"})
    out_dir = tmp_path / "grids"
    out_dir.mkdir()
    out = out_dir / "x.npz"
    assert main(["sample", str(run.path), "-n", "100", "--out", str(out)]) == 0
    before = out.read_bytes()
    env = dict(os.environ, GANFORGE_FAULT_PAUSE="grids:1", GANFORGE_FAULT_PAUSE_S="60")     # stop halfway through

    def as_from_a_shell():      # SIGINT caught and unblocked, whatever an earlier test left in this worker
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    p = subprocess.Popen(ganforge_cmd("sample", run.path, "-n", "5000", "--seed", "1", "--out", out, "--force"),
                         stderr=subprocess.PIPE, text=True, env=env, preexec_fn=as_from_a_shell)
    assert "ganforge-fault-pause: grids x.npz" in p.stderr.readline()
    p.send_signal(signal.SIGINT)
    try:
        code = p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError(f"no exit 30 s after SIGINT; stderr: {p.communicate()[1][-2000:]!r}") from None
    assert code == 130 and "interrupted" in p.stderr.read()
    assert out.read_bytes() == before and list(out_dir.iterdir()) == [out]        # no torn file, no temporary


def test_eval_checks_n_and_small_point_sets_before_working(tmp_path, free, capsys):
    import ganforge
    run = ganforge.train("toy-ring", out=tmp_path / "runs", steps=2, progress="off", **{"eval.metrics": "none"})
    one_line(capsys, main(["eval", str(run.path), "-n", str(10**10)]), "-n 10000000000 samples", "ask for fewer")
    few = tmp_path / "few.npz"
    np.savez(few, x=np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32))
    code = main(["eval", "--real", "ring", "--fake", str(few), "--out", str(tmp_path / "e.json")])
    err = capsys.readouterr().err                     # after the progress lines of the features: one error line
    assert code == 2 and "Traceback" not in err and err.splitlines()[-1].startswith("ganforge: error: the divergences "
                                                                                    "need more than 41 samples"), err


def test_running_out_of_memory_anyway_is_one_line(tmp_path, free, monkeypatch, capsys):
    import ganforge
    from ganforge import api
    run = ganforge.train("toy-ring", out=tmp_path / "runs", steps=2, progress="off", **{"eval.metrics": "none"})

    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried "
                           "to allocate 80000000000 bytes")
    monkeypatch.setattr(api.Run, "sample", oom)
    one_line(capsys, main(["sample", str(run.path), "-n", "10", "--out", str(tmp_path / "x.npz"), "--insist"]),
             "out of memory", "ask for less")


def test_a_video_too_long_for_memory_is_refused_before_any_frame(tmp_path, free, capsys):
    import ganforge
    run = ganforge.train("mnist-dcgan", out=tmp_path / "runs", steps=1, progress="off",
                         **{"eval.metrics": "none", "model.g_width": 8, "model.d_width": 8, "batch_size": 8})
    out = tmp_path / "v.gif"
    one_line(capsys, main(["interpolate", str(run.path), "--frames", "1000000", "--walks", "100", "--out", str(out)]),
             "4000000 frames of 100 images of 1x28x28", "ask for fewer --keys, --frames or --walks")
    assert not out.exists()
