"""Paired image folders (pix2pix's A|B files, or A/ and B/ folders of matching names): exact round trips, mistakes."""
import numpy as np
import pytest
from PIL import Image

from ganforge.data.embedded import load_mnist
from ganforge.data.paired import load_pairs
from ganforge.errors import UserError


def _digits(n=6):
    x = load_mnist()[0][:n]                               # (n, 1, 28, 28) in [0, 1]
    a = (x[:, 0].numpy() * 255).round().astype(np.uint8)
    rgb = np.stack([255 - a, a, np.full_like(a, 40)], -1)  # a known RGB target for each gray input
    return a, rgb


def test_side_by_side_files_split_into_exact_halves(tmp_path):
    a, rgb = _digits()
    for i in range(len(a)):
        both = np.concatenate([np.repeat(a[i][..., None], 3, -1), rgb[i]], axis=1)   # 28 x 56, A | B
        Image.fromarray(both).save(tmp_path / f"{i}.png")
    A, B, names = load_pairs(str(tmp_path), resolution=28, channels_a=1, channels_b=3)
    assert A.shape == (6, 1, 28, 28) and B.shape == (6, 3, 28, 28) and names == [str(i) for i in range(6)]
    np.testing.assert_array_equal((A[:, 0].numpy() * 255).round(), a)
    np.testing.assert_array_equal((B.permute(0, 2, 3, 1).numpy() * 255).round(), rgb)


def test_two_folders_pair_by_name_across_suffixes(tmp_path):
    a, rgb = _digits()
    (tmp_path / "A" / "sub").mkdir(parents=True), (tmp_path / "B" / "sub").mkdir(parents=True)
    for i in range(len(a)):
        Image.fromarray(a[i]).save(tmp_path / "A" / "sub" / f"d{i}.png")
        Image.fromarray(rgb[i]).save(tmp_path / "B" / "sub" / f"d{i}.bmp")
    A, B, names = load_pairs(str(tmp_path), resolution=28)             # channels found per side: 1 and 3
    assert A.shape == (6, 1, 28, 28) and B.shape == (6, 3, 28, 28)
    order = [int(n.split("d")[-1]) for n in names]
    np.testing.assert_array_equal((A[:, 0].numpy() * 255).round(), a[order])
    np.testing.assert_array_equal((B.permute(0, 2, 3, 1).numpy() * 255).round(), rgb[order])
    Image.fromarray(a[0]).save(tmp_path / "A" / "lonely.png")
    with pytest.raises(UserError, match=r"1 images in .*A and 0 in .*B have no partner .*A/lonely"):
        load_pairs(str(tmp_path), resolution=28)


def test_mistakes_and_unreadable_pairs(tmp_path, capsys):
    with pytest.raises(UserError, match="does not exist"):
        load_pairs(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        load_pairs(str(tmp_path / "empty"))
    a, _ = _digits(2)
    Image.fromarray(np.concatenate([a[0], a[1]], axis=1)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("pairs")
    (tmp_path / ".DS_Store").write_bytes(b"")
    A, B, names = load_pairs(str(tmp_path), resolution=28)
    err = capsys.readouterr().err
    assert names == ["ok"], names
    assert err == f"ganforge: skipped 3 files in {tmp_path} (1 unreadable: broken.png; 1 not images; 1 hidden); using 1 pair\n"
