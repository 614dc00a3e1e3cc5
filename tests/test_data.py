"""Every dataset: shape, range, labels; files made here in each format."""
import gzip
import math
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import load_config
from ganforge.data import holdout_mask, load_dataset
from ganforge.data.batches import Batches
from ganforge.data.toy import TOYS
from ganforge.errors import UserError


def data(name, *opts):
    return load_dataset(load_config(None, [f"data={name}"] + [f"data.{o}" for o in opts]).data)


def test_mnist_embedded():
    ds = data("mnist")
    assert ds.x.shape == (5000, 1, 28, 28) and ds.x.dtype == torch.float32
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0
    assert torch.bincount(ds.y).tolist() == [500] * 10
    # a real digit: background at -1, ink in the middle
    assert (ds.x[:, :, 0, :] == -1).float().mean() > 0.99
    assert ds.x[:, :, 10:18, 10:18].mean() > ds.x.mean()


def test_mnist_holdout_is_stratified_and_fixed():
    train, hold = data("mnist", "holdout=0.1"), data("mnist", "holdout=0.1", "split=holdout")
    assert len(train) == 4500 and len(hold) == 500
    assert torch.bincount(hold.y).tolist() == [50] * 10
    again = data("mnist", "holdout=0.1", "split=holdout")
    assert torch.equal(hold.x, again.x)
    # no held-out image is in the training part
    tr = {bytes(r) for r in ((train.x + 1) * 127.5).round().to(torch.uint8).flatten(1).numpy()}
    assert not any(bytes(r) in tr for r in ((hold.x + 1) * 127.5).round().to(torch.uint8).flatten(1).numpy())


def test_digits_and_resize():
    ds = data("digits")
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.min() >= -1 and ds.x.max() <= 1
    up = data("digits", "resolution=32", "channels=3")
    assert up.x.shape == (1797, 3, 32, 32)
    assert torch.equal(up.y, ds.y)


@pytest.mark.parametrize("name", list(TOYS))
def test_toys_sample_and_log_prob(name):
    ds = data(name)
    dens = ds.density
    assert ds.x.shape[1] == dens.dim and ds.y is None
    # log_prob integrates to 1: a Riemann sum on a lattice finer than the narrowest component
    h = dens.std.min().item() / 4
    lo = (dens.means.min(0).values - 6 * dens.std.max()).tolist()
    hi = (dens.means.max(0).values + 6 * dens.std.max()).tolist()
    axes = [torch.arange(a, b, h, dtype=torch.float64) for a, b in zip(lo, hi)]
    pts = torch.cartesian_prod(*axes).reshape(-1, dens.dim)
    mass = sum(dens.log_prob(c).exp().sum() for c in pts.split(500_000)) * h ** dens.dim
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


def test_toy_log_prob_matches_closed_form():
    ring = TOYS["ring"][0]()
    assert ring.means.shape == (8, 2)
    assert torch.unique(ring.means.round(decimals=6), dim=0).shape[0] == 8   # 8 distinct modes
    # at a mode, density = (1/8) * N(0; 0, 0.01^2 I) (other modes are far)
    at = ring.log_prob(ring.means[:1]).item()
    assert at == pytest.approx(math.log(1 / 8) - math.log(2 * math.pi * 0.01 ** 2), abs=1e-6)
    grid = TOYS["grid"][0]()
    assert sorted(set(grid.means[:, 0].tolist())) == [-4, -2, 0, 2, 4]


def _png(path, mode, size=(40, 30)):
    """A small image in ``mode`` (CMYK is saved as JPEG, PNG cannot hold it)."""
    color = {"L": 128, "RGB": (128, 64, 32), "RGBA": (128, 64, 32, 200), "LA": (128, 255), "P": 5,
             "CMYK": (10, 20, 30, 40), "I;16": 40000}[mode]
    im = Image.new(mode, size, color)
    im.save(path.with_suffix(".jpg") if mode == "CMYK" else path)


def test_folder_mixed_modes_and_labels(tmp_path):
    for cls, modes in (("cat", ["L", "RGB", "RGBA"]), ("dog", ["P", "LA", "I;16", "CMYK"])):
        (tmp_path / cls).mkdir()
        for i, m in enumerate(modes):
            _png(tmp_path / cls / f"{i}.png", m)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ds = data(f"folder:{tmp_path}", "resolution=16", "channels=3", "labels=true")
    assert ds.x.shape == (7, 3, 16, 16) and ds.classes == ["cat", "dog"]
    assert torch.bincount(ds.y).tolist() == [3, 4]
    assert ds.x.min() >= -1 and ds.x.max() <= 1
    gray = data(f"folder:{tmp_path}", "resolution=8", "channels=1")
    assert gray.x.shape == (7, 1, 8, 8) and gray.y is None


def test_folder_crops_to_center(tmp_path):
    a = np.zeros((20, 60), np.uint8)
    a[:, 20:40] = 255                              # a bright square in the middle of a wide image
    Image.fromarray(a).save(tmp_path / "wide.png")
    ds = data(f"folder:{tmp_path}", "resolution=20")
    assert ds.x.shape == (1, 1, 20, 20) and ds.x.mean() > 0.95


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="no images"):
        data(f"folder:{tmp_path}")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(UserError, match="the one image file under .* could not be read"):
        data(f"folder:{tmp_path}")
    with pytest.raises(UserError, match="does not exist"):
        data(f"folder:{tmp_path}/nope")


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "nhw_u8": (rng.integers(0, 256, (10, 12, 12), dtype=np.uint8), (10, 1, 12, 12)),
        "nhwc_u8": (rng.integers(0, 256, (10, 12, 12, 3), dtype=np.uint8), (10, 3, 12, 12)),
        "nchw_f01": (rng.random((10, 3, 12, 12)).astype(np.float32), (10, 3, 12, 12)),
        "vec": (rng.normal(size=(50, 2)).astype(np.float32), (50, 2)),
    }
    for name, (x, shape) in cases.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, x=x, y=np.arange(len(x)) % 3)
        ds = data(f"npz:{p}")
        assert tuple(ds.x.shape) == shape, name
        assert torch.equal(ds.y, torch.arange(len(x)) % 3)
        if name != "vec":
            assert ds.x.min() >= -1 and ds.x.max() <= 1
    u8 = cases["nhw_u8"][0]
    ds = data(f"npz:{tmp_path / 'nhw_u8.npz'}")
    assert torch.allclose(ds.x[:, 0], torch.from_numpy(u8 / 127.5 - 1).float(), atol=1e-6)


@pytest.mark.parametrize("arrays,needle", [
    ({"images": np.zeros((3, 4, 4))}, "no array 'x'"),
    ({"x": np.full((3, 4, 4), np.nan)}, "NaN"),
    ({"x": np.zeros((3,))}, r"2 \(vectors\), 3 or 4"),
    ({"x": np.zeros((3, 4, 4)), "y": np.zeros(2, int)}, "'y' must be 3 integer labels"),
    ({"x": np.full((3, 4, 4), 300.0)}, r"100% of the values lie outside \[0, 1\] \(floats. default; found 300 to 300\)"),
])
def test_npz_errors(tmp_path, arrays, needle):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(UserError, match=needle):
        data(f"npz:{p}")


def _idx(path, arr, gz):
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    raw = head + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files(tmp_path, gz):
    x = np.random.default_rng(1).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y = np.arange(20) % 10
    sfx = ".gz" if gz else ""
    _idx(tmp_path / f"train-images-idx3-ubyte{sfx}", x, gz)
    _idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", y, gz)
    ds = data(f"idx:{tmp_path}")
    assert ds.x.shape == (20, 1, 28, 28) and torch.equal(ds.y, torch.from_numpy(y))
    assert torch.allclose(ds.x[3, 0], torch.from_numpy(x[3] / 127.5 - 1).float(), atol=1e-6)
    one = data(f"idx:{tmp_path / ('train-images-idx3-ubyte' + sfx)}")
    assert torch.equal(one.x, ds.x)


def test_idx_bad_headers(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(UserError, match="bad magic"):
        data(f"idx:{p}")
    _idx(p, np.zeros((2, 4, 4)), False)
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(UserError, match="header says"):
        data(f"idx:{p}")


def _cifar(folder, n=10):
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(1, 3):
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(d))
    names = [f"class{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))


def test_cifar10_batches(tmp_path):
    _cifar(tmp_path / "cifar-10-batches-py")
    ds = data(f"cifar10:{tmp_path}")
    assert ds.x.shape == (20, 3, 32, 32) and ds.classes[3] == "class3"
    assert torch.equal(ds.y[:10], torch.arange(10))


def test_cifar10_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(UserError, match="refused global"):
        data(f"cifar10:{folder}")
    assert not marker.exists()


def test_unknown_dataset_and_misplaced_options():
    with pytest.raises(UserError, match="did you mean 'mnist'"):
        data("mnsit")
    with pytest.raises(UserError, match="apply to images"):
        data("ring", "resolution=32")
    with pytest.raises(UserError, match="folder:PATH only"):
        data("mnist", "labels=true")


def test_holdout_mask_fraction_per_class():
    y = torch.arange(100) % 4
    m = holdout_mask(100, y, 0.2)
    assert m.sum() == 20 and torch.bincount(y[m]).tolist() == [5] * 4


def test_batches_are_a_function_of_the_counter():
    ds = data("digits")
    a = Batches(ds, 32, seed=3)
    seq = [a.next()[1] for _ in range(120)]          # crosses epoch boundaries (56 batches per epoch)
    b = Batches(ds, 32, seed=3)
    b.load_state_dict({"drawn": 70})
    assert torch.equal(b.next()[1], seq[70])
    # within an epoch every sample appears once at most; the next epoch is another order
    from ganforge.data import Dataset
    ids = Dataset("ids", torch.arange(100, dtype=torch.float32).unsqueeze(1))
    c = Batches(ids, 32, seed=3)
    e0 = torch.cat([c.next()[0] for _ in range(3)]).flatten()
    e1 = torch.cat([c.next()[0] for _ in range(3)]).flatten()
    assert len(torch.unique(e0)) == 96 and len(torch.unique(e1)) == 96
    assert not torch.equal(e0, e1)
    toy = Batches(data("ring"), 64, seed=1)
    t1 = [toy.next()[0] for _ in range(3)]
    toy.load_state_dict({"drawn": 1})
    assert torch.equal(toy.next()[0], t1[1])


def test_large_folders_decode_in_worker_processes_in_order(tmp_path):
    from ganforge.data import folder as F
    rng = np.random.default_rng(0)
    for i in range(F.PARALLEL_FROM + 50):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / f"{i:05d}.png")
    (tmp_path / "00007x.png").write_bytes(b"not an image")
    paths = sorted(tmp_path.glob("*.png"))
    one, many = F.decode_all(paths, 3, 16, workers=1), F.decode_all(paths, 3, 16, workers=2)
    assert len(one) == len(many) == len(paths) and sum(a is None for a in many) == 1
    assert all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(one, many))
