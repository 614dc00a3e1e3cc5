"""ganforge data pack: every source kind packed into stylegan2-ada's zip layout and read back as it loads directly."""
import gzip
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import load_dataset
from ganforge.data.options import DataConfig
from ganforge.data.pack import detect, pack
from ganforge.errors import UserError
from conftest import run_cli


def load(name, **kw):
    return load_dataset(DataConfig(name=name, **kw))


def same(a, b):
    assert torch.equal(a.x, b.x)
    assert (a.y is None) == (b.y is None) and (a.y is None or torch.equal(a.y, b.y))
    assert a.classes == b.classes


def read_like_stylegan(path):
    """What stylegan2-ada-pytorch's ImageFolderDataset does with a zip: image names sorted, one shape for all,
    labels looked up by name in dataset.json; with zipfile, json and PIL only."""
    Image.init()
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if os.path.splitext(n)[1].lower() in Image.EXTENSION)
        images = [np.array(Image.open(z.open(n))) for n in names]
        meta = json.loads(z.read("dataset.json"))
    assert len({im.shape for im in images}) == 1
    labels = None if meta["labels"] is None else [dict(meta["labels"])[n] for n in names]
    return names, np.stack(images), labels, meta


def photo_folder(root):
    """Two classes: RGB PNGs of mixed sizes (one with alpha), gray JPEGs, one corrupt file, a text file, a hidden one."""
    rng = np.random.default_rng(0)
    (root / "cat").mkdir(parents=True)
    (root / "dog" / "deep").mkdir(parents=True)
    for i, (h, w) in enumerate([(20, 24), (30, 22), (24, 24)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "cat" / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (26, 26, 4), dtype=np.uint8)).save(root / "cat" / "alpha.png")
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (28, 21), dtype=np.uint8)).save(root / "dog" / f"{i}.jpg", quality=80)
    Image.fromarray(rng.integers(0, 256, (22, 22), dtype=np.uint8)).save(root / "dog" / "deep" / "d.jpg")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "notes.txt").write_text("x")
    (root / ".DS_Store").write_bytes(b"x")


@pytest.mark.parametrize("resolution,channels", [(None, None), (16, 1)])
def test_folder_round_trip(tmp_path, resolution, channels):
    src = tmp_path / "photos"
    photo_folder(src)
    seen = []
    r = pack(str(src), tmp_path / "ds.zip", resolution, channels, progress=lambda d, t: seen.append((d, t)))
    assert (r.images, r.channels, r.resolution) == (8, channels or 3, resolution or 20)   # cat/0.png is 24x20
    assert r.classes == ["cat", "dog"] and r.skipped == 3 and seen[0] == (0, 9) and seen[-1] == (9, 9)
    assert "dog/broken.png" in r.skipped_line and "1 not images" in r.skipped_line and "1 hidden" in r.skipped_line
    assert resolution or "cat/0.png (24x20)" in r.line()
    packed = load(f"zip:{tmp_path / 'ds.zip'}")
    direct = load(f"folder:{src}", resolution=r.resolution, channels=r.channels, labels=True)
    same(packed, direct)
    names, images, labels, meta = read_like_stylegan(tmp_path / "ds.zip")
    assert names == [f"00000/img{i:08d}.png" for i in range(8)]
    assert labels == direct.y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert meta["classes"] == ["cat", "dog"] and (meta["resolution"], meta["channels"]) == (r.resolution, r.channels)
    stored = images[..., None] if images.ndim == 3 else images
    assert torch.equal(torch.from_numpy(stored).permute(0, 3, 1, 2), ((direct.x + 1) * 127.5).round().to(torch.uint8))


def test_labels_rules(tmp_path):
    src = tmp_path / "one"
    (src / "only").mkdir(parents=True)
    Image.new("L", (8, 8), 50).save(src / "only" / "a.png")
    Image.new("L", (8, 8), 90).save(src / "loose.png")
    r = pack(str(src), tmp_path / "a.zip")                   # auto: a loose image, so no labels
    assert r.classes is None and read_like_stylegan(tmp_path / "a.zip")[2] is None
    assert "classes" not in read_like_stylegan(tmp_path / "a.zip")[3]
    with pytest.raises(UserError, match="1 images lie directly"):
        pack(str(src), tmp_path / "b.zip", labels=True)
    (src / "loose.png").unlink()
    assert pack(str(src), tmp_path / "c.zip").classes is None          # one sub-folder is no classes
    assert pack(str(src), tmp_path / "d.zip", labels=True).classes == ["only"]


def test_many_images_in_workers(tmp_path):
    """Past 1,000 images the encoding runs in forked workers; names go on to the next folder at 1,000."""
    src = tmp_path / "many"
    src.mkdir()
    x = np.random.default_rng(3).integers(0, 256, (1010, 6, 6), dtype=np.uint8)
    for i, a in enumerate(x):
        Image.fromarray(a).save(src / f"{i:04d}.png", compress_level=0)
    r = pack(f"folder:{src}", tmp_path / "ds.zip")
    assert (r.images, r.channels, r.resolution, r.classes) == (1010, 1, 6, None)
    names, images, labels, _ = read_like_stylegan(tmp_path / "ds.zip")
    assert names[1000] == "00001/img00001000.png" and labels is None
    assert np.array_equal(images, x)
    same(load(f"zip:{tmp_path / 'ds.zip'}"), load(f"folder:{src}", resolution=6))


def _idx(path, arr, gz=False):
    raw = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    raw += arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _cifar(folder, n=6):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(1, 3):
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [(i * 3 + k) % 10 for k in range(n)]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(d))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"class{i}".encode() for i in range(10)]}))


def test_array_sources_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "rgba.npz", x=rng.integers(0, 256, (7, 12, 12, 4), dtype=np.uint8), y=np.arange(7) % 3)
    _idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (9, 10, 10)))
    _idx(tmp_path / "train-labels-idx1-ubyte", np.arange(9) % 10)
    _idx(tmp_path / "t10k.gz", rng.integers(0, 256, (4, 8, 8)), gz=True)
    _cifar(tmp_path / "c" / "cifar-10-batches-py")
    for source, kind, path in [("rgba.npz", "npz", "rgba.npz"), (".", "idx", "."), ("t10k.gz", "idx", "t10k.gz"),
                               ("c", "cifar10", "c")]:
        assert detect(str(tmp_path / source)) == (kind, tmp_path / path)
        out = tmp_path / f"{kind}-{len(path)}.zip"
        r = pack(str(tmp_path / source), out)
        packed, direct = load(f"zip:{out}"), load(f"{kind}:{tmp_path / path}")
        same(packed, direct)
        assert r.channels == direct.shape[0] and r.images == len(direct)
    assert load(f"zip:{tmp_path / 'cifar10-1.zip'}").classes[4] == "class4"


def test_npz_range_and_same_bytes(tmp_path):
    k = np.random.default_rng(4).integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "f.npz", x=(k / 127.5 - 1).astype(np.float32))
    r = pack(f"npz:{tmp_path / 'f.npz'}", tmp_path / "a.zip", value_range="-1,1")
    assert (r.images, r.channels, r.resolution) == (5, 3, 8)
    assert np.array_equal(read_like_stylegan(tmp_path / "a.zip")[1], k.transpose(0, 2, 3, 1))
    pack(f"npz:{tmp_path / 'f.npz'}", tmp_path / "b.zip", value_range="-1,1")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with pytest.raises(UserError, match="--range"):
        pack(f"npz:{tmp_path / 'f.npz'}", tmp_path / "c.zip", value_range="1")
    with pytest.raises(UserError, match="holds vectors"):
        np.savez(tmp_path / "v.npz", x=np.zeros((4, 3), np.float32))
        pack(str(tmp_path / "v.npz"), tmp_path / "d.zip")


def test_failed_pack_leaves_nothing(tmp_path):
    src = tmp_path / "photos"
    photo_folder(src)

    def stop(done, total):
        if done == 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        pack(str(src), tmp_path / "ds.zip", progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    (tmp_path / "ds.zip").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"):
        pack(str(src), tmp_path / "ds.zip", force=True, progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.zip", "photos"]
    assert (tmp_path / "ds.zip").read_bytes() == b"old"
    empty = tmp_path / "bad"
    empty.mkdir()
    (empty / "a.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="none of the 1 image files"):
        pack(str(empty), tmp_path / "e.zip")
    assert not (tmp_path / "e.zip").exists()


def test_cli_mistakes_exit_2(tmp_path):
    """Three mistakes, each one line on stderr and exit code 2."""
    (tmp_path / "ds.zip").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("not data")
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    cases = [[str(tmp_path), "--out", str(tmp_path / "ds.zip")], [str(tmp_path / "notes.txt"), "--out",
             str(tmp_path / "n.zip")], []]
    for c, needle in zip(cases, ["exists; choose another --out or add --force", "is not data ganforge can pack",
                                 "needs a SOURCE"]):
        r = run_cli("data", "pack", *c)
        assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert (tmp_path / "ds.zip").read_bytes() == b"old" and not (tmp_path / "n.zip").exists()
