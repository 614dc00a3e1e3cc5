"""The CLIP image tower: equality with open_clip's, the layout of real CLIP files, the readers, weights lookup, preparation.

No real CLIP file is needed. open_clip (the reference, test-only: ``pip install --no-deps open_clip_torch==3.3.0``)
builds small random-weight CLIP models (the code path of ViT-B/32: class token, learned positions, pre-norm blocks,
ln_post, proj) whose state dicts are saved as CLIP files are, and the real geometries on the meta device.
open_clip's package __init__ imports torchvision (never a dependency of ganforge) and ftfy; the fixture imports only
its model modules, with a stand-in ``torchvision.ops.misc`` that is removed again afterwards.
"""
import importlib
import importlib.util
import json
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import UserError
from ganforge.metrics import clip
from ganforge.metrics.features import file_hash, get_extractor

# (width, layers, heads, patch, resolution, mlp width, embedding) of the four OpenAI towers (Radford et al. 2021, table 20)
GEOMETRIES = {"ViT-B-32": (768, 12, 12, 32, 224, 3072, 512), "ViT-B-16": (768, 12, 12, 16, 224, 3072, 512),
              "ViT-L-14": (1024, 24, 16, 14, 224, 4096, 768), "ViT-L-14-336": (1024, 24, 16, 14, 336, 4096, 768)}


@pytest.fixture(scope="module")
def oc():
    """open_clip's ``model`` module (CLIP, VisionTransformer), imported without its package __init__."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("open_clip_torch is not installed (pip install --no-deps open_clip_torch==3.3.0)")
    names = ("open_clip", "torchvision", "torchvision.ops", "torchvision.ops.misc")
    saved = {k: sys.modules[k] for k in names if k in sys.modules}
    before = set(sys.modules)
    pkg = types.ModuleType("open_clip")
    pkg.__path__ = list(spec.submodule_search_locations)
    misc = types.ModuleType("torchvision.ops.misc")
    misc.FrozenBatchNorm2d = type("FrozenBatchNorm2d", (torch.nn.Module,), {})   # only named by open_clip.utils
    sys.modules.update({"open_clip": pkg, "torchvision": types.ModuleType("torchvision"),
                        "torchvision.ops": types.ModuleType("torchvision.ops"), "torchvision.ops.misc": misc})
    try:
        model = importlib.import_module("open_clip.model")
        model.config_dir = Path(spec.submodule_search_locations[0]) / "model_configs"
        yield model
    finally:
        for k in set(sys.modules) - before:
            del sys.modules[k]
        sys.modules.update(saved)


def tiny_clip(oc, quick_gelu: bool, seed: int = 0):
    """A random CLIP: 32 px, patch 8, width 128 (2 heads), 2 layers, 48-d, a one-layer text tower; every visual
    tensor spread (LayerNorm gains and biases not 1 and 0) so that a swapped or skipped tensor shows."""
    torch.manual_seed(seed)
    model = oc.CLIP(embed_dim=48, vision_cfg=dict(image_size=32, patch_size=8, width=128, layers=2),
                    text_cfg=dict(context_length=8, vocab_size=64, width=64, heads=1, layers=1), quick_gelu=quick_gelu)
    with torch.no_grad():
        for p in model.visual.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval().requires_grad_(False)


def reference(model, net, x, normalize=True):
    """open_clip's embedding of ganforge's prepared images (``encode_image``: the visual tower, L2-normalised)."""
    return model.encode_image(net.prepare(x), normalize=normalize)


@pytest.fixture(scope="module")
def files(oc, tmp_path_factory):
    """{act: (open_clip model, its CLIP state-dict file: visual.* and text-tower tensors)}."""
    out = {}
    for act, quick in (("quickgelu", True), ("gelu", False)):
        model = tiny_clip(oc, quick, seed=int(quick))
        path = tmp_path_factory.mktemp("clip") / f"tiny-{act}.bin"
        torch.save(model.state_dict(), path)
        out[act] = (model, path)
    return out


def images(n=5, h=40, w=48, c=3, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("act", ["quickgelu", "gelu"])
def test_matches_open_clip(files, act):
    model, path = files[act]
    net = clip.build_clip(weights=str(path), act=act)
    x = images()
    feats, logits = net(x)
    assert logits is None and feats.dtype == torch.float32 and feats.shape == (5, 48) and net.dim == 48
    torch.testing.assert_close(feats, reference(model, net, x), atol=1e-5, rtol=0)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(5), atol=1e-6, rtol=0)
    raw = clip.build_clip(weights=str(path), act=act, normalize=False)
    torch.testing.assert_close(raw(x)[0], reference(model, raw, x, normalize=False), atol=1e-5, rtol=0)
    assert "L2" in net.protocol and "L2" not in raw.protocol and f"act={act}" in net.protocol
    other = clip.build_clip(weights=str(path), act="gelu" if act == "quickgelu" else "quickgelu")
    assert (other(x)[0] - feats).abs().max() > 1e-3                 # the activation matters: the option is real


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_layout_of_the_real_towers(oc, name):
    """The real geometries on the meta device: the tensors ganforge expects are open_clip's visual.* exactly."""
    cfg = json.loads((oc.config_dir / f"{name}.json").read_text())
    with torch.device("meta"):
        ref = {k: v.shape for k, v in oc.CLIP(**cfg, quick_gelu=True).state_dict().items() if k.startswith("visual.")}
    g = clip.geometry({k[len("visual."):]: s for k, s in ref.items()})
    assert (g.width, g.layers, g.heads, g.patch, g.resolution, g.mlp, g.dim) == GEOMETRIES[name]
    with torch.device("meta"):
        ours = {k: v.shape for k, v in clip.CLIPImageTower(g).state_dict().items()}
    assert ours == ref


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")     # the reference side makes the archive with it
def test_torchscript_archive(oc, tmp_path):
    """A traced CLIP with float16 weights, as OpenAI's ViT-*.pt are: read without running it, same tensors as
    torch.jit.load, same embeddings as open_clip with those weights."""
    model = tiny_clip(oc, True, seed=2)
    traced = torch.jit.trace_module(model, {"encode_image": (torch.ones(2, 3, 32, 32),)}, check_trace=False).half()
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(traced, str(path))
    state = clip.read_visual_state(path)
    loaded = torch.jit.load(str(path)).state_dict()
    assert {"visual." + k for k in state} == {k for k in loaded if k.startswith("visual.")}
    assert all(loaded["visual." + k].dtype == torch.float16 and torch.equal(v, loaded["visual." + k].float())
               for k, v in state.items())
    net = clip.build_clip(weights=str(path))
    x = images(seed=3)
    torch.testing.assert_close(net(x)[0], reference(model.half().float(), net, x), atol=1e-5, rtol=0)


def test_archive_runs_nothing(tmp_path):
    """A TorchScript-looking archive whose data.pkl calls os.system is refused, and the command never runs."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(Evil(), protocol=2))
        z.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(UserError, match="not a TorchScript record") as e:
        clip.build_clip(weights=str(path))
    assert "\n" not in str(e.value) and not marker.exists()


def test_other_file_forms(files, tmp_path):
    """A 'state_dict' wrapper with 'module.' prefixes, and safetensors, give the same features as the plain file."""
    model, path = files["quickgelu"]
    x = images(seed=4)
    want = clip.build_clip(weights=str(path))(x)[0]
    wrapped = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, wrapped)
    assert torch.equal(clip.build_clip(weights=str(wrapped))(x)[0], want)
    st = pytest.importorskip("safetensors.torch")
    sf = tmp_path / "open_clip_model.safetensors"
    st.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(sf))
    assert torch.equal(clip.build_clip(weights=str(sf))(x)[0], want)


def test_safetensors_is_optional(files, tmp_path, monkeypatch):
    sf = tmp_path / "open_clip_model.safetensors"
    sf.write_bytes(b"\x10" + b"\0" * 7 + b'{"__metadata__":{}}')
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(UserError, match="pip install safetensors") as e:
        clip.build_clip(weights=str(sf))
    assert "\n" not in str(e.value)


def test_registry_and_description(files):
    _, path = files["gelu"]
    net = get_extractor("clip", weights=str(path), act="gelu")
    assert isinstance(net, clip.CLIPImageTower) and net.fd_name == "FD_CLIP" and not net.has_logits
    d = net.describe()
    assert d["extractor"] == "clip" and d["dim"] == 48 and d["weights_hash"] == file_hash(path)
    assert "act=gelu" in d["protocol"] and "32 px" in d["protocol"]
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def _one_line(call, *needles):
    with pytest.raises(UserError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    return msg


def test_weights_lookup(files, tmp_path, monkeypatch):
    """Argument, then $GANFORGE_CLIP_WEIGHTS, then ~/.cache/clip and the torch hub checkpoints; else one line."""
    _, path = files["quickgelu"]
    monkeypatch.delenv(clip.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    _one_line(clip.build_clip, clip.ENV_VAR, "ViT-L-14-336px.pt", ".cache/clip", "hub/checkpoints", "never downloads")
    hub = tmp_path / "hub" / "checkpoints" / "ViT-B-32.pt"
    hub.parent.mkdir(parents=True)
    hub.write_bytes(path.read_bytes())
    assert clip.find_weights() == hub
    cache = tmp_path / "home" / ".cache" / "clip" / "ViT-L-14-336px.pt"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(path.read_bytes())
    assert clip.find_weights() == cache                               # OpenAI's clip cache first, L/14@336 first
    monkeypatch.setenv(clip.ENV_VAR, str(path))
    assert clip.find_weights() == path and clip.find_weights(str(hub)) == hub
    monkeypatch.setenv(clip.ENV_VAR, str(tmp_path / "nothing.pt"))
    _one_line(clip.find_weights, clip.ENV_VAR, "no such file")
    _one_line(lambda: clip.build_clip(weights=str(path), act="relu"), "quickgelu, gelu")


def test_files_that_are_not_clip(files, tmp_path):
    model, _ = files["quickgelu"]
    text = tmp_path / "notes.pt"
    text.write_text("not weights\n")
    _one_line(lambda: clip.build_clip(weights=str(text)), "not a CLIP weights file", "cannot read")
    other = tmp_path / "inception.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    _one_line(lambda: clip.build_clip(weights=str(other)), "no visual.* tensors")
    state = model.state_dict()
    resnet = tmp_path / "RN50.pt"
    torch.save({"visual.layer1.0.conv1.weight": torch.zeros(4, 4, 1, 1)}, resnet)
    _one_line(lambda: clip.build_clip(weights=str(resnet)), "not a CLIP ViT image tower", "ResNet")
    scaled = tmp_path / "layer-scale.pt"
    torch.save({**state, "visual.transformer.resblocks.0.ls_1.gamma": torch.ones(128)}, scaled)
    _one_line(lambda: clip.build_clip(weights=str(scaled)), "1 unexpected", "ls_1.gamma")
    short = tmp_path / "short.pt"
    torch.save({k: v for k, v in state.items() if k != "visual.ln_post.bias"}, short)
    _one_line(lambda: clip.build_clip(weights=str(short)), "1 tensors missing", "ln_post.bias")


TOWER = clip.Geometry(width=64, layers=1, heads=1, patch=8, resolution=32, mlp=256, dim=16)
MEAN, STD = torch.tensor(clip.MEAN).view(1, 3, 1, 1), torch.tensor(clip.STD).view(1, 3, 1, 1)


def test_preparation_closed_forms():
    """At the model's size: only [0,1] and CLIP's mean/std; one channel is three; a wide image loses its sides."""
    net = clip.CLIPImageTower(TOWER)
    x = images(2, 32, 32)
    torch.testing.assert_close(net.prepare(x), ((x + 1) / 2 - MEAN) / STD, atol=1e-6, rtol=0)
    gray = images(2, 32, 32, c=1)
    assert torch.equal(net.prepare(gray), net.prepare(gray.expand(-1, 3, -1, -1)))
    wide = images(2, 32, 45)                                     # shorter side already 32: no resize, crop from 6
    torch.testing.assert_close(net.prepare(wide), ((wide[..., 6:38] + 1) / 2 - MEAN) / STD, atol=1e-6, rtol=0)
    assert net.prepare(images(1, 3, 3) * 5).shape == (1, 3, 32, 32)
    assert ((net.prepare(images(1, 8, 8) * 5) * STD + MEAN).aminmax() == (torch.tensor(0.0), torch.tensor(1.0)))
    _one_line(lambda: net.prepare(torch.zeros(1, 4, 32, 32)), "(N, 1 or 3, H, W)")


@pytest.mark.parametrize("h,w", [(12, 12), (80, 64)])
def test_resize_is_clips_pil_bicubic(h, w):
    """CLIP's own preprocessing (PIL bicubic on uint8, shorter side to R, centre crop) on uint8-valued images: ganforge's
    float resize is within PIL's rounding (PIL rounds between its two passes), closer than CMMD's a=-0.75 kernel."""
    Image = pytest.importorskip("PIL.Image")
    g = torch.Generator().manual_seed(h)
    x01 = F.interpolate(torch.rand(3, 3, h // 4, w // 4, generator=g), size=(h, w), mode="bilinear")
    u8 = (x01 * 255).round().to(torch.uint8)
    r = TOWER.resolution
    size = (r, int(r * h / w)) if w <= h else (int(r * w / h), r)            # PIL takes (width, height)
    top, left = int(round((size[1] - r) / 2.0)), int(round((size[0] - r) / 2.0))
    pil = torch.stack([torch.tensor(np.array(Image.fromarray(im.permute(1, 2, 0).numpy()).resize(size, Image.BICUBIC)
                                             .crop((left, top, left + r, top + r))), dtype=torch.float32).permute(2, 0, 1)
                       for im in u8])
    ours = (clip.CLIPImageTower(TOWER).prepare(u8.float() / 127.5 - 1) * STD + MEAN) * 255
    assert (ours - pil).abs().max() < 3.5 and (ours - pil).abs().mean() < 0.5
    if h == w:
        cmmd = F.interpolate(u8.float() / 255, size=(r, r), mode="bicubic").clamp(0, 1) * 255
        assert (cmmd - pil).abs().mean() > 2 * (ours - pil).abs().mean()
