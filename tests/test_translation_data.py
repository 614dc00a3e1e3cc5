"""Image-to-image data: the embedded tasks' closed forms, splits that keep pairs and domains apart, batches."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import load_config
from ganforge.data import load_dataset
from ganforge.data.batches import PairBatches
from ganforge.data.tasks import dilate, holes, low_resolution, luma, photo_tiles, sobel_edges, thin2thick
from ganforge.errors import UserError


def _data(name, *extra):
    return load_dataset(load_config(None, (f"data={name}", *extra)).data)


def test_sobel_edges_of_a_square_lie_on_its_border():
    x = torch.zeros(1, 1, 12, 12)
    x[..., 3:9, 3:9] = 1.0
    e = sobel_edges(x, threshold=2.0)[0, 0]
    # inside and far outside the gradient is 0; across the border it is 4 (an edge) or 3 (a corner's diagonal)
    assert e[5:7, 5:7].sum() == 0 and e[0].sum() == 0 and e[:, 0].sum() == 0
    assert e[2:10, 2:10].sum() == e.sum() and e[5, 2] == e[5, 3] == e[5, 8] == e[5, 9] == 1


def test_holes_are_8x8_gray_squares_in_the_centre_and_nothing_else_changes():
    x = torch.rand(50, 1, 28, 28)
    y, m = holes(x)
    assert torch.equal(m.sum((1, 2, 3)), torch.full((50,), 64.0))
    rows, cols = m[:, 0].amax(2), m[:, 0].amax(1)
    assert rows[:, :4].sum() == 0 and rows[:, 24:].sum() == 0 and cols[:, :4].sum() == 0 and cols[:, 24:].sum() == 0
    assert torch.equal(y[m == 1], torch.full((50 * 64,), 0.5)) and torch.equal(y[m == 0], x[m == 0])
    assert torch.equal(holes(x)[0], y)                                       # seeded: the same every time


def test_low_resolution_keeps_block_means_and_constants():
    c = torch.full((2, 1, 28, 28), 0.3)
    torch.testing.assert_close(low_resolution(c, 4), c)
    x = torch.rand(3, 1, 28, 28)
    # bicubic enlarging of the 7x7 block means, averaged back over the blocks, is close to the means
    means = torch.nn.functional.avg_pool2d(x, 4)
    assert (torch.nn.functional.avg_pool2d(low_resolution(x, 4), 4) - means).abs().mean() < 0.05


def test_colorize_is_luma_of_disjoint_photo_tiles():
    pytest.importorskip("skimage")
    d = _data("colorize", "data.holdout=0")
    assert d.a.shape[1:] == (1, 32, 32) and d.x.shape[1:] == (3, 32, 32) and len(set(d.y.tolist())) == 8
    torch.testing.assert_close((d.a + 1) / 2, luma((d.x + 1) / 2))
    tiles, ys = photo_tiles(("astronaut",))
    from skimage import data
    whole = torch.nn.functional.interpolate(torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255,
                                            size=(320, 320), mode="area")[0]
    torch.testing.assert_close(tiles[11], whole[:, 32:64, 32:64])          # row 1, column 1 of a 10x10 tiling
    assert len(tiles) == 100 and ys.unique().tolist() == [0]


def test_unpaired_domains_share_no_digit_and_know_their_true_mappings():
    t = thin2thick()
    a, b = (t.a.flatten(1) * 255).round(), (t.b_true.flatten(1) * 255).round()     # both undilated digits
    assert len(a) + len(b) == 5000
    assert not (torch.cdist(a[:500], b) == 0).any()                         # no digit of A among B's originals
    assert torch.equal(t.a_true, dilate(t.a)) and torch.equal(t.b, dilate(t.b_true))
    inv = _data("invert-digits", "data.holdout=0")
    torch.testing.assert_close(inv.a_true, -inv.a) and torch.testing.assert_close(inv.b_true, -inv.x)


@pytest.mark.parametrize("name", ["edges2digits", "inpaint-digits", "sr-digits", "sr14-digits"])
def test_paired_splits_are_disjoint_and_keep_each_pair(name):
    tr, ho = _data(name, "data.holdout=0.1"), _data(name, "data.holdout=0.1", "data.split=holdout")
    assert len(tr) == 4500 and len(ho) == 500 and tr.paired and ho.y.bincount().tolist() == [50] * 10
    both = torch.cat([tr.x, ho.x]).flatten(1)
    assert len(torch.unique(both, dim=0)) == len(torch.unique(_data("mnist").x.flatten(1), dim=0))
    if name == "edges2digits":
        assert torch.equal((tr.a + 1) / 2, sobel_edges((tr.x + 1) / 2)) and torch.equal((ho.a + 1) / 2,
                                                                                       sobel_edges((ho.x + 1) / 2))


def test_pair_batches_keep_pairs_resume_and_draw_domains_independently():
    d = _data("edges2digits", "data.holdout=0")
    b = PairBatches(d, 32, seed=3)
    for _ in range(3):
        a, x, y = b.next()
        assert torch.equal((a + 1) / 2, sobel_edges((x + 1) / 2)) and y is not None
    state = b.state_dict()
    want = b.next()
    again = PairBatches(d, 32, seed=3)
    again.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(want, again.next()))
    u = _data("thin2thick", "data.holdout=0")
    ub = PairBatches(u, 32, seed=3)
    a, x, _ = ub.next()
    assert not torch.equal(dilate((a + 1) / 2), (x + 1) / 2)                # B is not A's own dilation
    state = ub.state_dict()
    want = ub.next()
    again = PairBatches(u, 32, seed=3)
    again.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(want[:2], again.next()[:2]))


def _folder(root, n, value):
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((16, 16), value + i, np.uint8)).save(root / f"{i}.png")


def test_unpaired_folders_with_and_without_their_own_test_split(tmp_path):
    _folder(tmp_path / "trainA", 10, 0), _folder(tmp_path / "trainB", 12, 100)
    d = _data(f"unpaired:{tmp_path}", "data.resolution=16", "data.holdout=0.2")
    assert not d.paired and len(d.a) == 8 and len(d) == 10 and d.a_true is None
    _folder(tmp_path / "testA", 3, 50), _folder(tmp_path / "testB", 4, 200)
    tr = _data(f"unpaired:{tmp_path}", "data.resolution=16", "data.holdout=0.2")
    ho = _data(f"unpaired:{tmp_path}", "data.resolution=16", "data.split=holdout")
    assert (len(tr.a), len(tr), len(ho.a), len(ho)) == (10, 12, 3, 4)
    assert sorted(((ho.a[:, 0, 0, 0] + 1) * 127.5).round().tolist()) == [50, 51, 52]
    (tmp_path / "trainB").rename(tmp_path / "other")
    with pytest.raises(UserError, match="trainA and trainB"):
        _data(f"unpaired:{tmp_path}")


def test_channels_a_applies_to_image_to_image_data_only():
    assert _data("edges2digits", "data.channels_a=3", "data.channels=3").a.shape[1] == 3
    with pytest.raises(UserError, match="channels_a"):
        _data("mnist", "data.channels_a=3")
