"""Datasets larger than memory: zip archives (stylegan2-ada's layout), the uint8 store, batches streamed by
worker processes, per-rank rows, and resumes that stay exact while streaming."""
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_same_tensors, final_state, numbers, run_cli, run_nets, train_run
from ganforge.data import Dataset, load_dataset
from ganforge.data.batches import Batches
from ganforge.data.embedded import load_mnist
from ganforge.data.options import DataConfig
from ganforge.data.store import Images, TensorSource, images_of
from ganforge.data.transform import from_unit, resize, to_channels
from ganforge.errors import UserError


def _png(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="png")
    return b.getvalue()


def write_stylegan_zip(path, images, labels=None, extra=()):
    """A zip as stylegan2-ada's dataset_tool.py writes one: img%08d.png in folders of 1,000, dataset.json."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        names = []
        for i, a in enumerate(images):
            names.append(f"{i // 1000:05d}/img{i:08d}.png")
            z.writestr(names[-1], _png(a))
        for name, data in extra:
            z.writestr(name, data)
        meta = {"labels": None if labels is None else [[n, int(c)] for n, c in zip(names, labels)]}
        z.writestr("dataset.json", json.dumps(meta))
    return names


def _digits_u8(n=64):
    x, y, _ = load_mnist()
    return (x[:n, 0] * 255).round().to(torch.uint8).numpy(), y[:n].numpy()


def test_a_zip_written_the_stylegan2_ada_way_reads_with_its_pixels_and_labels(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (30, 12, 12, 3), dtype=np.uint8)
    labels = np.arange(30) % 4
    write_stylegan_zip(tmp_path / "ds.zip", rgb, labels)
    for cache in ("ram", "none"):
        ds = load_dataset(DataConfig(name=f"zip:{tmp_path / 'ds.zip'}", cache=cache))
        assert isinstance(ds.samples, Images) and ds.samples.in_memory == (cache == "ram")
        assert ds.shape == (3, 12, 12) and ds.classes == ["0", "1", "2", "3"]
        assert torch.equal(ds.y, torch.from_numpy(labels))
        want = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255 * 2 - 1
        assert torch.equal(ds.x, want)
    gray = load_dataset(DataConfig(name=f"zip:{tmp_path / 'ds.zip'}", channels=1, resolution=6, cache="none"))
    assert gray.shape == (1, 6, 6) and gray.samples[3].shape == (1, 6, 6)


def test_deflated_and_bzip2_members_read_as_stored_ones_and_a_flipped_byte_is_caught(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (9, 10, 10, 3), dtype=np.uint8)
    write_stylegan_zip(tmp_path / "stored.zip", rgb)
    with zipfile.ZipFile(tmp_path / "stored.zip") as src, zipfile.ZipFile(tmp_path / "mixed.zip", "w") as z:
        for k, name in enumerate(src.namelist()):              # deflate, bzip2 and stored members side by side
            kind = (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_STORED)[k % 3]
            z.writestr(name, src.read(name), compress_type=kind)
    want = load_dataset(DataConfig(name=f"zip:{tmp_path / 'stored.zip'}", cache="none")).x
    assert torch.equal(load_dataset(DataConfig(name=f"zip:{tmp_path / 'mixed.zip'}", cache="none")).x, want)
    whole = bytearray((tmp_path / "stored.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "stored.zip") as z:
        info = z.getinfo("00000/img00000004.png")
    at = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    whole[at] ^= 0x10                                           # one bit of a stored PNG's pixel data flipped
    (tmp_path / "flipped.zip").write_bytes(bytes(whole))
    ds = load_dataset(DataConfig(name=f"zip:{tmp_path / 'flipped.zip'}", cache="none"))
    assert torch.equal(ds.samples.take(torch.tensor([3, 5])), want[[3, 5]])
    with pytest.raises(UserError, match="member 00000/img00000004.png: bad CRC-32"):
        ds.samples.take(torch.tensor([4]))


def test_an_unpacked_archive_folder_reads_as_the_zip_does(tmp_path):
    u8, y = _digits_u8(20)
    names = write_stylegan_zip(tmp_path / "ds.zip", u8, y)
    with zipfile.ZipFile(tmp_path / "ds.zip") as z:
        z.extractall(tmp_path / "unpacked")
    a = load_dataset(DataConfig(name=f"zip:{tmp_path / 'ds.zip'}"))
    b = load_dataset(DataConfig(name=f"zip:{tmp_path / 'unpacked'}", cache="none"))
    assert len(names) == len(b) == 20 and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


@pytest.mark.parametrize("name, opts", [("mnist", {}), ("digits", {"resolution": 20, "channels": 3}),
                                        ("stacked-mnist", {"channels": 1, "resolution": 16}),
                                        ("mnist", {"holdout": 0.1})])
def test_the_uint8_store_gives_the_floats_of_the_whole_dataset_conversion(name, opts):
    """Stored as uint8 (digits: 16 levels), converted per batch: bit-equal to converting the float dataset whole,
    as ganforge did before (to_channels, [-1, 1], centre crop and bicubic resize)."""
    ds = load_dataset(DataConfig(name=name, **opts))
    assert ds.samples.source.dtype == torch.uint8
    from ganforge.data.embedded import EMBEDDED
    x01, y, _ = EMBEDDED[name][0]()
    whole = resize(from_unit(to_channels(x01, opts.get("channels"))), opts.get("resolution"))
    if "holdout" in opts:
        from ganforge.data import holdout_mask
        whole = whole[~holdout_mask(len(x01), y, opts["holdout"])]
    assert torch.equal(ds.x, whole)
    rows = torch.tensor([5, 0, 17, 5])
    assert torch.equal(ds.samples.take(rows), whole[rows])         # a batch alone: the same values
    if not opts:                              # a quarter of the floats' memory
        assert ds.samples.stored_bytes * 4 == whole.numel() * whole.element_size()


def test_float_pixels_that_are_not_8_bit_stay_float():
    x = torch.rand(5, 1, 4, 4)
    im = images_of(x)
    assert im.source.dtype == torch.float32 and torch.equal(im.all(), x * 2 - 1)
    u = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    assert images_of(u.float() / 255).source.dtype == torch.uint8


@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_ranks_rows_cover_the_global_batch_exactly_once(world):
    ds = Dataset("ids", Images(TensorSource(torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1)), white=1.0))
    one = Batches(ds, 12, seed=3, mirror=True)
    ranks = [Batches(ds, 12, seed=3, rows=slice(r * 12 // world, (r + 1) * 12 // world), mirror=True)
             for r in range(world)]
    for _ in range(20):                       # past the end of epochs (100 mirrored items, 8 batches each)
        whole = one.next_indices()
        parts = [b.next_indices() for b in ranks]
        assert torch.equal(torch.cat(parts), whole) and len(set(whole.tolist())) == 12


def test_the_order_is_a_function_of_seed_epoch_and_position_only():
    ds = Dataset("ids", torch.arange(40.0).view(40, 1))
    a = Batches(ds, 8, seed=5)
    seq = [a.next_indices() for _ in range(17)]
    b = Batches(ds, 8, seed=5)
    for k in (16, 3, 9, 0, 12):               # any batch, in any order, from a fresh stream
        assert torch.equal(b.indices(k), seq[k])
    assert not torch.equal(Batches(ds, 8, seed=6).indices(0), seq[0])
    assert sorted(torch.cat(seq[5:10]).tolist()) == list(range(40))      # epoch 1: every row once


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_equal_batches_from_memory(tmp_path, workers):
    u8, y = _digits_u8(40)
    write_stylegan_zip(tmp_path / "ds.zip", u8, y)
    ram = load_dataset(DataConfig(name=f"zip:{tmp_path / 'ds.zip'}", cache="ram", holdout=0.2))
    streamed = load_dataset(DataConfig(name=f"zip:{tmp_path / 'ds.zip'}", cache="none", holdout=0.2))
    a = Batches(ram, 8, seed=1, mirror=True)
    b = Batches(streamed, 8, seed=1, mirror=True, workers=workers)
    for _ in range(9):
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    b.load_state_dict({"drawn": 2})           # a resume moves the count: a new read-ahead from there
    a.load_state_dict({"drawn": 2})
    assert torch.equal(a.next()[0], b.next()[0])
    b.close()


TINY = ["model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16", "log.progress=off",
        "eval.metrics=none", "log.every=2", "log.samples_every=100", "device=cpu", "threads=1", "precision=fp32",
        "data.resolution=28"]


def _train(tmp_path, name, *extra, nproc=1):
    return train_run(tmp_path, name, TINY, *extra, nproc=nproc)


_nets = run_nets


def test_a_streamed_run_resumes_bit_exact_and_equals_the_cached_one(tmp_path):
    u8, y = _digits_u8(100)
    write_stylegan_zip(tmp_path / "ds.zip", u8, y)
    data = [f"data=zip:{tmp_path / 'ds.zip'}", "data.mirror=true", "log.checkpoint_every=4"]
    whole = _train(tmp_path, "whole", "steps=8", "data.cache=none", "data.workers=2", *data)
    part = _train(tmp_path, "part", "steps=4", "data.cache=none", "data.workers=1", *data)
    r = run_cli("train", "steps=8", "--resume", part, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_tensors(_nets(whole), _nets(part))
    assert numbers(whole) == numbers(part)
    assert torch.equal(final_state(whole)["torch_rng"], final_state(part)["torch_rng"])   # no draw by the loader
    ram = _train(tmp_path, "ram", "steps=8", "data.cache=ram", *data)
    assert_same_tensors(_nets(whole), _nets(ram))
    from ganforge.runs.metrics_log import read_metrics
    waits = [r["data_wait"] for r in read_metrics(whole / "metrics.jsonl")]     # streamed: the share spent waiting
    assert len(waits) == 4 and all(0 <= w < 1 for w in waits)
    assert all("data_wait" not in r for r in read_metrics(ram / "metrics.jsonl"))


def test_two_processes_streaming_equal_one(tmp_path):
    """Each rank decodes only its rows of the global batch; the weights equal one process's."""
    u8, y = _digits_u8(64)
    write_stylegan_zip(tmp_path / "ds.zip", u8, y)
    sgd = ["optim.g.name=sgd", "optim.d.name=sgd", "optim.g.lr=0.01", "optim.d.lr=0.01", "steps=4"]
    data = [f"data=zip:{tmp_path / 'ds.zip'}", "data.cache=none", "data.workers=1"]
    two = _train(tmp_path, "two", *data, *sgd, nproc=2)
    one = _train(tmp_path, "one", *data, *sgd)
    a, b = _nets(two), _nets(one)
    for net in a:
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-4, atol=1e-5, msg=f"{net}.{k}")


def _err(tmp_path, name, *extra):
    r = run_cli("train", *TINY, "steps=2", f"data=zip:{name}", f"name=bad-{abs(hash(name)) % 1000}", *extra,
                "--out", tmp_path, timeout=120)
    return r


def test_bad_archives_are_one_line(tmp_path):
    u8, y = _digits_u8(20)
    write_stylegan_zip(tmp_path / "ds.zip", u8, y)
    whole = (tmp_path / "ds.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])                 # a truncated copy
    with zipfile.ZipFile(tmp_path / "json.zip", "w") as z:
        z.writestr("a.png", _png(u8[0]))
        z.writestr("dataset.json", '{"labels": [["a.png", 0],,]}')
    cases = {"cut.zip": "not a readable zip archive", "json.zip": "dataset.json is not valid JSON",
             "none.zip": "does not exist"}
    for name, words in cases.items():
        with pytest.raises(UserError, match=words):
            load_dataset(DataConfig(name=f"zip:{tmp_path / name}"))
    with zipfile.ZipFile(tmp_path / "vec.zip", "w") as z:
        z.writestr("a.png", _png(u8[0]))
        z.writestr("dataset.json", json.dumps({"labels": [["a.png", [0, 1]]]}))
    with pytest.raises(UserError, match="label vector"):
        load_dataset(DataConfig(name=f"zip:{tmp_path / 'vec.zip'}"))
    with pytest.raises(UserError, match="streams an image archive"):
        load_dataset(DataConfig(name="mnist", cache="none"))
    r = _err(tmp_path, tmp_path / "cut.zip")                                    # through the CLI: exit 2, one line
    assert r.returncode == 2 and "not a readable zip archive" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_labels_that_do_not_match_the_files_and_damaged_members_are_counted(tmp_path, capsys):
    u8, y = _digits_u8(12)
    names = write_stylegan_zip(tmp_path / "ds.zip", u8[:10], y[:10], extra=[("notes.txt", b"hi"), ("zz.png", b"torn")])
    with zipfile.ZipFile(tmp_path / "ds.zip") as z:
        meta = json.loads(z.read("dataset.json"))
    meta["labels"] = meta["labels"][1:] + [["gone.png", 3]]                     # one image unlabelled, one extra
    meta["labels"].append(["zz.png", 1])
    with zipfile.ZipFile(tmp_path / "ds2.zip", "w") as z, zipfile.ZipFile(tmp_path / "ds.zip") as src:
        for n in src.namelist():
            z.writestr(n, json.dumps(meta) if n == "dataset.json" else src.read(n))
    ds = load_dataset(DataConfig(name=f"zip:{tmp_path / 'ds2.zip'}", cache="ram"))
    err = capsys.readouterr().err
    assert len(ds) == 9 and torch.equal(ds.y, torch.from_numpy(y[1:10]))
    for words in ("1 images without a label", "1 not images", "1 labels in dataset.json for files not in it",
                  "1 unreadable: zz.png", "using 9 images"):
        assert words in err, err
    assert err.count("\n") == 1
    streamed = load_dataset(DataConfig(name=f"zip:{tmp_path / 'ds2.zip'}", cache="none"))
    assert len(streamed) == 10 and names[1] == streamed.samples.source.names[0]
    with pytest.raises(UserError, match="member zz.png: .*pack the dataset again"):
        streamed.samples.take(torch.tensor([9]))


def test_a_damaged_member_met_while_streaming_stops_with_one_line(tmp_path):
    u8, y = _digits_u8(20)
    write_stylegan_zip(tmp_path / "ok.zip", u8[:16], None, extra=[("00000/img99999999.png", b"torn")])
    r = _err(tmp_path, tmp_path / "ok.zip", "data.cache=none", "data.workers=1", "batch_size=17")
    assert r.returncode == 2 and "member 00000/img99999999.png" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_eval_and_data_show_read_an_archive_without_decoding_it_whole(tmp_path):
    from ganforge.cli import main
    from ganforge.metrics.sources import from_path
    u8, y = _digits_u8(30)
    write_stylegan_zip(tmp_path / "ds.zip", u8, y)
    with zipfile.ZipFile(tmp_path / "ds.zip") as z:
        z.extractall(tmp_path / "unpacked")
    for spec in (str(tmp_path / "ds.zip"), f"zip:{tmp_path / 'ds.zip'}", str(tmp_path / "unpacked")):
        real = from_path(spec)
        assert isinstance(real.x, Images) and real.x.shape == (30, 1, 28, 28) and real.key["files"]["bytes"] > 0
        assert torch.equal(real.x[:4], torch.from_numpy(u8[:4]).float().unsqueeze(1) / 255 * 2 - 1)
    assert main(["data", "show", f"zip:{tmp_path / 'ds.zip'}", "cache=none", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
