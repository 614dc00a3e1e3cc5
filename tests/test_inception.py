"""The FID Inception-v3 extractor: layout, equality with torch-fidelity, weights lookup, protocols.

The real weights file is never needed: a random file with the same tensor names and shapes stands in.
The real ``pt_inception-2015-12-05-6726825d.pth`` (and torch-fidelity's ``weights-inception-...``, converted from
the same TF graph with the same names) holds 472 tensors with 23,885,392 numbers: 94 conv weights, 94 x 4 batch-norm
tensors (weight, bias, running_mean, running_var) and fc.weight (1008, 2048) / fc.bias (1008). That count is taken
from the architecture and torch-fidelity's conversion script (utils/util_convert_inception_weights.py), not from the
file itself (no download here); the loader also accepts the 94 extra ``num_batches_tracked`` counters a module's
state_dict carries.
"""
import math
from unittest import mock

import pytest
import torch

from ganforge.errors import UserError
from ganforge.metrics import inception as inc
from ganforge.metrics.features import file_hash, get_extractor
from ganforge.metrics.reference import torch_fidelity_inception

N_TENSORS, N_NUMBERS = 472, 23_885_392


def _layout(state):
    """Tensor names and shapes as in the weights file (no BatchNorm num_batches_tracked counters)."""
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def fidelity():
    """torch-fidelity's feature_extractor_inceptionv3 module (imported without its torchvision-needing __init__),
    or None when torch-fidelity is not installed."""
    return torch_fidelity_inception()


@pytest.fixture(scope="module")
def layout(fidelity):
    """The weights-file layout, from torch-fidelity's own module (built without loading or downloading weights).

    Without torch-fidelity, ganforge's own layout stands in (then pinned only by the counts in test_layout_is_the_weights_files).
    """
    if fidelity is None:
        return _layout(inc.InceptionV3().state_dict())
    cls = fidelity.FeatureExtractorInceptionV3
    with mock.patch.object(fidelity, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(cls, "load_state_dict", lambda self, *a, **k: None):
        net = cls("inception-v3-compat", ["2048"])
    return _layout(net.state_dict())


def random_weights(path, layout, seed=0):
    """A stand-in weights file: He-scaled convs, BN near the identity (running_var in [0.5, 1.5]), small fc."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in layout.items():
        r = torch.randn(shape, generator=g)
        if k.endswith("conv.weight"):
            state[k] = r * math.sqrt(2.0 / math.prod(shape[1:]))
        elif k.endswith("bn.weight"):
            state[k] = 1.0 + 0.1 * r
        elif k.endswith("bn.running_var"):
            state[k] = 0.5 + torch.rand(shape, generator=g)
        elif k == "fc.weight":
            state[k] = r / math.sqrt(shape[1])
        else:                                   # bn.bias, bn.running_mean, fc.bias
            state[k] = 0.1 * r
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def weights(layout, tmp_path_factory):
    return random_weights(tmp_path_factory.mktemp("inception") / "random-inception.pth", layout)


@pytest.fixture(scope="module")
def legacy(weights):
    return inc.build_inception(weights=str(weights))


def _rel(a, b):
    """Largest difference relative to the largest magnitude of the reference."""
    return ((a - b).abs().max() / b.abs().max()).item()


def test_layout_is_the_weights_files(layout):
    assert len(layout) == N_TENSORS and sum(math.prod(s) for s in layout.values()) == N_NUMBERS
    ours = inc.InceptionV3().state_dict()
    assert list(_layout(ours).items()) == list(layout.items())
    assert layout["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3) and layout["fc.weight"] == (1008, 2048)
    assert layout["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)


def test_matches_torch_fidelity(fidelity, weights, legacy):
    if fidelity is None:
        pytest.skip("torch-fidelity is not installed (pip install --no-deps torch-fidelity==0.4.0) to compare against")
    theirs = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                  feature_extractor_weights_path=str(weights))
    g = torch.Generator().manual_seed(1)
    u = torch.randint(0, 256, (2, 3, 53, 71), dtype=torch.uint8, generator=g)       # up-scaled, non-square
    with torch.no_grad():
        f_ref, l_ref = theirs(u)                                                       # torch-fidelity takes uint8
        f, logits = legacy(u.float() / 127.5 - 1.0)                                    # ganforge takes [-1, 1]
    # Relative to the largest magnitude (|features| reach ~12 here). Measured: 2.3e-7 (features), 2.5e-7 (logits);
    # the networks agree bit for bit on equal inputs, the rest is float rounding in u/127.5-1 -> (x+1)*127.5.
    assert f.shape == (2, 2048) and logits.shape == (2, 1008) and f.dtype == logits.dtype == torch.float32
    assert torch.isfinite(f).all() and f.std() > 0.1 * f.abs().mean() > 0 and logits.std() > 0  # non-trivial
    assert _rel(f, f_ref) < 1e-5 and _rel(logits, l_ref) < 1e-5, (_rel(f, f_ref), _rel(logits, l_ref))
    # the resize alone is bit-exact against torch-fidelity's port
    x = u.float()
    assert torch.equal(inc.resize_tf1_bilinear(x, 299),
                       fidelity.interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False))
    assert legacy.weights_hash == file_hash(weights)
    assert legacy.describe()["protocol"].startswith("legacy-tf") and legacy.dim == 2048 and legacy.has_logits


def test_clean_protocol_and_gray_images(weights, legacy):
    clean = get_extractor("inception", weights=str(weights), protocol="clean")
    assert clean.protocol.startswith("clean") and clean.weights_hash == legacy.weights_hash
    g = torch.Generator().manual_seed(2)
    gray = (torch.rand(1, 1, 96, 96, generator=g) * 2 - 1).repeat_interleave(4, 2).repeat_interleave(4, 3)  # 384x384
    rgb = gray.repeat(1, 3, 1, 1)
    with torch.no_grad():
        f_gray, l_gray = legacy(gray)
        f_rgb, l_rgb = legacy(rgb)
        f_clean, _ = clean(rgb)
    assert torch.equal(f_gray, f_rgb) and torch.equal(l_gray, l_rgb)
    assert _rel(f_clean, f_rgb) > 1e-3                      # down-scaling: antialiased bicubic != TF1 bilinear


def test_clean_protocol_is_clean_fids_resize():
    """--protocol clean gives the network clean-fid's clean-mode input (PIL bicubic per channel on floats, clipped
    to [0, 255]) within 1e-4; without the clip, bicubic overshoot moved it by up to 0.4 on random 28x28 images."""
    resize = pytest.importorskip("cleanfid.resize")
    import numpy as np
    pil = resize.make_resizer("PIL", False, "bicubic", (299, 299))
    clean = inc.InceptionV3("clean")
    rng = np.random.default_rng(0)
    for side in (28, 64, 300):                               # up-scaling, and a 300 -> 299 down-scale
        u8 = rng.integers(0, 256, (2, side, side, 3), dtype=np.uint8)
        want = torch.from_numpy(np.stack([pil(im) for im in u8])).permute(0, 3, 1, 2)
        want = (want - 128.0) / 128.0                        # the graph's own normalisation, as clean-fid feeds it
        got = clean.prepare(torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 127.5 - 1.0)
        assert (got - want).abs().max() < 1e-4, side
        assert got.min() >= -1.0 and got.max() <= 127.0 / 128.0


def test_bad_inputs(legacy):
    with pytest.raises(UserError, match="protocol"):
        inc.build_inception(weights="unused", protocol="bicubic")
    with pytest.raises(UserError, match="1 or 3"):
        legacy(torch.zeros(1, 4, 8, 8))


def test_weights_lookup_order(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    explicit, env = tmp_path / "explicit.pth", tmp_path / "env.pth"
    explicit.write_bytes(b"x")
    env.write_bytes(b"x")
    fidelity_name = hub / "checkpoints" / inc.FIDELITY_FILE_NAME
    pt_name = hub / "checkpoints" / inc.FILE_NAME

    with pytest.raises(UserError) as e:
        inc.find_weights()
    msg = str(e.value)
    assert "\n" not in msg and inc.FILE_NAME in msg and inc.URL in msg
    assert "--inception-weights" in msg and inc.ENV_VAR in msg and str(hub / "checkpoints") in msg

    fidelity_name.write_bytes(b"x")
    assert inc.find_weights() == fidelity_name
    pt_name.write_bytes(b"x")
    assert inc.find_weights() == pt_name                     # pytorch-fid's name first
    monkeypatch.setenv(inc.ENV_VAR, str(env))
    assert inc.find_weights() == env
    assert inc.find_weights(str(explicit)) == explicit
    with pytest.raises(UserError, match="no such file"):
        inc.find_weights(str(tmp_path / "nope.pth"))         # a given path that is missing is an error, not skipped
    monkeypatch.setenv(inc.ENV_VAR, str(tmp_path / "nope.pth"))
    with pytest.raises(UserError, match=inc.ENV_VAR):
        inc.find_weights()


def test_unfit_weights_files(tmp_path, monkeypatch):
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file\n" * 10)
    wrong_keys = tmp_path / "keys.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong_keys)
    net = inc.InceptionV3()
    state = {k: v for k, v in net.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 2048)
    wrong_shape = tmp_path / "shape.pth"
    torch.save(state, wrong_shape)
    for path, what in ((garbage, "torch.load failed"), (wrong_keys, "missing"), (wrong_shape, "wrong shape")):
        with pytest.raises(UserError, match=what) as e:
            inc.build_inception(weights=str(path))
        assert "\n" not in str(e.value) and inc.FILE_NAME in str(e.value)
    # a module's own state_dict (with num_batches_tracked, wrapped in "state_dict", "module." prefixes) loads
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, tmp_path / "ok.pth")
    assert inc.build_inception(weights=str(tmp_path / "ok.pth")).weights_hash == file_hash(tmp_path / "ok.pth")


def _fidelity_isc():
    """torch-fidelity's isc_features_to_metric, read from its metric_isc.py (whose module imports torchvision)."""
    import ast
    from importlib import metadata

    import numpy as np
    try:           # located through the distribution: the tests' shim replaces the torch_fidelity package
        src = metadata.distribution("torch-fidelity").locate_file("torch_fidelity/metric_isc.py").read_text()
    except (metadata.PackageNotFoundError, OSError):
        pytest.skip("torch-fidelity is not installed (pip install --no-deps torch-fidelity==0.4.0) to compare against")
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "isc_features_to_metric")
    names = {"np": np, "torch": torch, "KEY_METRIC_ISC_MEAN": "mean", "KEY_METRIC_ISC_STD": "std"}
    exec(compile(ast.Module([fn], []), "torch_fidelity/metric_isc.py", "exec"), names)
    return names["isc_features_to_metric"]


def test_inception_score_equals_torch_fidelitys_on_the_unbiased_logits(weights, legacy):
    """Issue 24, item 3: IS reads pool3 · Wᵀ without fc's bias, as torch-fidelity does (its 'logits_unbiased')."""
    from ganforge.metrics import inception_score
    isc = _fidelity_isc()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 3, 40, 40, generator=g) * 2 - 1
    with torch.no_grad():
        feats, logits = legacy(x)
    fc = torch.load(weights, weights_only=True)
    assert torch.allclose(logits, feats @ fc["fc.weight"].T, rtol=0, atol=1e-5)       # no bias
    assert not torch.allclose(logits, feats @ fc["fc.weight"].T + fc["fc.bias"], atol=1e-3)
    many = torch.randn(600, 1008, generator=g, dtype=torch.float64) * 3                # IS itself, same logits
    theirs, ours = isc(many, splits=10, shuffle=False), inception_score(many, splits=10)
    assert ours["mean"] == pytest.approx(theirs["mean"], rel=1e-6) and ours["std"] == pytest.approx(theirs["std"], rel=1e-6)
