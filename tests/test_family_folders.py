"""Every convolutional family trains on a user's image folder at 64 px, two of them at 128 px (RGB, labels from sub-folders)."""
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from ganforge.api import load_run


def _folder(root, n=6):
    rng = np.random.default_rng(0)
    for k, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
            a[..., k] = 255 * (i % 2)                     # the two classes differ in one colour channel
            Image.fromarray(a).save(root / name / f"{i}.png")


SMALL_STYLEGAN = ["model.g_width=4", "model.d_width=4", "model.w_dim=8", "model.mapping_layers=2", "model.max_width=16"]


@pytest.mark.parametrize("family,extra,side", [("dcgan", ["model.g_width=4", "model.d_width=4"], 64),
                                               ("sngan", ["model.g_width=4", "model.d_width=4"], 64),
                                               ("biggan", ["model.g_width=4", "model.d_width=4", "model.shared_dim=4",
                                                           "model.conditional=true", "data.labels=true"], 64),
                                               ("stylegan", SMALL_STYLEGAN, 64),
                                               ("sngan", ["model.g_width=4", "model.d_width=4"], 128),
                                               ("stylegan", SMALL_STYLEGAN, 128)])
def test_family_trains_on_an_image_folder(tmp_path, family, extra, side):
    _folder(tmp_path / "photos")
    r = run_cli("train", f"data=folder:{tmp_path / 'photos'}", f"data.resolution={side}", f"model={family}", *extra,
                "model.z_dim=20", "batch_size=4", "steps=2", "log.every=1", "eval.metrics=none", "name=r",
                "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = load_run(tmp_path / "r")
    x = run.sample(3, seed=1, **({"label": "dogs"} if "model.conditional=true" in extra else {}))
    assert x.shape == (3, 3, side, side) and x.abs().max() <= 1
    assert (tmp_path / "r" / "samples" / "step-0000002.png").is_file()
