"""The pixel range of an array is never guessed from its values (issue 24, item 1).

It comes from the user (``--range``, ``data.range``), the file's own ``range`` entry (``ganforge sample``
writes one) or the dtype (floats: [0, 1]); values outside are clipped and counted, more than 1% outside is
refused, and eval.json records what was read. Before, one pixel at -0.001 turned a [0, 1] file into a
[-1, 1] one without a word: FID 14.76 became 1862 on 1,000 digits.
"""
import json

import numpy as np
import pytest
import torch

from conftest import one_line
from ganforge.cli import main
from ganforge.data.embedded import load_mnist


@pytest.fixture(scope="module")
def digits():
    """Real MNIST digits as floats in [0, 1]: 300 'real', 300 others of the same classes as 'generated'."""
    x = load_mnist()[0][::8, 0].numpy().astype(np.float32)             # the loader gives [0, 1], sorted by class
    assert x.min() == 0.0 and x.max() == 1.0 and len(x) == 625
    return x[0:600:2], x[1:600:2]


def _eval(tmp_path, real, fake, *extra, out="eval.json"):
    np.savez(tmp_path / "real.npz", x=real)
    np.savez(tmp_path / "fake.npz", x=fake)
    code = main(["eval", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "fake.npz"),
                 "--metrics", "fid", "--features", "mnist", "--out", str(tmp_path / out), *extra])
    return code, (json.loads((tmp_path / out).read_text())["evaluations"][-1] if code == 0 else None)


def test_one_overshooting_pixel_changes_fid_no_more_than_clipping_it(tmp_path, digits, capsys):
    real, fake = digits
    _, clean = _eval(tmp_path, real, fake, out="clean.json")
    bent = fake.copy()
    bent[0, 0, 0] = -0.001                                # bicubic overshoot, an unclamped G
    _, got = _eval(tmp_path, real, bent, out="bent.json")
    assert got["metrics"]["fid"]["value"] == clean["metrics"]["fid"]["value"]
    assert got["values"]["fake"] == {"dtype": "float32", "range": [0.0, 1.0], "from": "floats' default",
                                     "clipped": 1, "of": bent.size}
    assert got["values"]["real"]["clipped"] == 0
    err = capsys.readouterr().err
    assert "fake.npz: float32 read as [0, 1] (floats' default), 1 of 235,200 values clipped" in err


def test_a_signed_array_is_refused_until_its_range_is_said(tmp_path, digits, capsys):
    real, fake = digits
    code, _ = _eval(tmp_path, real, fake * 2 - 1)
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[0].endswith("real.npz: float32 read as [0, 1] (floats' default)"), err
    assert len(err) == 2 and err[1].startswith("ganforge: error: ") and "Traceback" not in err[1]
    for words in ("fake.npz 'x'", "% of the values lie outside [0, 1]", "found -1 to 1", "--range=LO,HI"):
        assert words in err[1]
    _, u8 = _eval(tmp_path, np.round(real * 255).astype(np.uint8), np.round(fake * 255).astype(np.uint8),
                  out="u8.json")
    _, signed = _eval(tmp_path, np.round(real * 255) / 127.5 - 1, np.round(fake * 255) / 127.5 - 1,
                      "--range=-1,1", out="signed.json")
    assert signed["metrics"]["fid"]["value"] == pytest.approx(u8["metrics"]["fid"]["value"], rel=1e-5)
    assert signed["values"]["fake"]["range"] == [-1.0, 1.0] and signed["values"]["fake"]["from"] == "--range / data.range"
    assert u8["values"]["fake"]["range"] == [0.0, 255.0] and u8["values"]["fake"]["from"].startswith("uint8")


@pytest.mark.parametrize("bad", ["1,0", "0", "a,b", "0,inf"])
def test_a_malformed_range_is_one_line(tmp_path, digits, capsys, bad):
    with pytest.raises(SystemExit) as e:
        _eval(tmp_path, *digits, f"--range={bad}")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--range" in err and "Traceback" not in err


def test_a_range_for_image_files_is_refused(tmp_path, capsys):
    code = main(["eval", "--real", "mnist", "--fake", "mnist", "--range=0,1"])
    one_line(capsys, code, "--range applies to npz arrays")


def test_samples_carry_their_range(tmp_path, digits):
    """An npz that says its range (as ``ganforge sample`` writes [-1, 1]) is read by it, not by its dtype."""
    from ganforge.data import load_dataset
    from ganforge.data.options import DataConfig
    signed = digits[0] * 2 - 1
    np.savez(tmp_path / "s.npz", x=signed, range=np.array([-1.0, 1.0]))
    ds = load_dataset(DataConfig(name=f"npz:{tmp_path / 's.npz'}"))
    assert torch.allclose(ds.x[:, 0], torch.from_numpy(signed), atol=1e-6)
    assert ds.values["from"] == "the file's 'range' [-1.0, 1.0]" and ds.values["clipped"] == 0
    ds = load_dataset(DataConfig(name=f"npz:{tmp_path / 's.npz'}", range="-1,1"))   # the user's word first
    assert ds.values["from"] == "--range / data.range"


def test_data_range_applies_to_arrays_only(capsys):
    from ganforge.data import load_dataset
    from ganforge.data.options import DataConfig
    from ganforge.errors import UserError
    with pytest.raises(UserError, match="data.range .* npz or IDX array"):
        load_dataset(DataConfig(name="mnist", range="0,1"))
