"""The DINOv2 extractor against the reference package (facebookresearch's ``dinov2``, the code behind torch hub's
``dinov2_vit*14`` models): equal features for equal weights, EDM2's preparation, the file layouts, the lookup.

No real weights file is needed: a reference ViT-S/14 built as the hub builds ``dinov2_vits14`` (img_size 518,
patch 14, LayerScale init 1.0, no block chunks), with random weights, is saved and read back through ganforge.
ViT-L/14's layout is checked on the meta device (shapes only, nothing allocated).
"""
import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import UserError
from ganforge.metrics import dinov2 as dv
from ganforge.metrics.features import file_hash, get_extractor

pytest.importorskip("dinov2")
vits = pytest.importorskip("dinov2.models.vision_transformer")

HUB = dict(patch_size=14, img_size=518, init_values=1.0, drop_path_uniform=True)   # uniform: no .item() on meta


def randomize(net, seed=0):
    """Every tensor away from its initial value (norms, LayerScale, biases, tokens), so that each one counts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, p in net.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "norm.weight":
                p.copy_(1 + 0.2 * r)
            elif k.endswith("gamma"):
                p.copy_(0.2 + r.abs())
            elif k in ("pos_embed", "cls_token", "register_tokens") or k.endswith("bias"):
                p.copy_(0.5 * r)
    return net.eval()


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def one_line_error(fn, *words):
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(reference ViT-S/14, ganforge's extractor loaded from the reference's saved state dict, weights path)."""
    ref = randomize(vits.vit_small(block_chunks=0, **HUB))
    path = tmp_path_factory.mktemp("dinov2") / "vits14.pth"
    torch.save(ref.state_dict(), path)
    return ref, get_extractor("dinov2", weights=str(path)), path


def test_features_equal_the_reference_on_prepared_inputs(pair):
    ref, net, path = pair
    assert (net.name, net.dim, net.has_logits, net.fd_name) == ("dinov2", 384, False, "FD_DINOv2")
    assert net.weights_hash == file_hash(path) and "ViT-S/14" in net.protocol
    x = torch.randn(1, 3, 224, 224)                        # 16x16 patches: the 37x37 pos_embed is interpolated
    with torch.no_grad():
        want = ref(x)                                      # the hub model's output: final-norm CLS token
    assert rel_err(net.embed(x), want) < 1e-5


def test_preparation_is_edm2s_recipe(pair):
    ref, net, _ = pair
    g = torch.Generator().manual_seed(1)
    for shape in ((1, 3, 256, 256), (1, 1, 32, 32)):        # down (antialiased) and up, RGB and grey
        x = torch.rand(shape, generator=g) * 2 - 1
        p = (x + 1) * 127.5                                 # EDM2 calculate_metrics.py, DINOv2Detector, resize_mode='torch'
        p = p.repeat(1, 3 // shape[1], 1, 1)
        p = F.interpolate(p, size=(224, 224), mode="bicubic", antialias=True) / 255
        p = (p - torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1)
        with torch.no_grad():
            want = ref(p)
        feats, logits = net(x)
        assert logits is None and feats.dtype == torch.float32 and feats.shape == (1, 384)
        assert rel_err(feats, want) < 1e-5


def test_chunked_blocks_in_a_teacher_checkpoint_load(tmp_path):
    ref = randomize(vits.DinoVisionTransformer(embed_dim=384, depth=4, num_heads=6, block_chunks=2, **HUB), seed=2)
    state = ref.state_dict()
    assert any(k.startswith("blocks.1.2.") for k in state)                # chunked names: blocks.C.N.*
    wrapped = {"teacher": {**{"backbone." + k: v for k, v in state.items()}, "dino_head.mlp.0.weight": torch.zeros(2, 2)}}
    torch.save(wrapped, tmp_path / "teacher.pth")
    net = dv.build_dinov2(tmp_path / "teacher.pth")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert rel_err(net.embed(x), ref(x)) < 1e-5


class RegisterViT(vits.DinoVisionTransformer):
    """The reference with register tokens as facebookresearch/dinov2's main branch adds them (not in the packaged
    0.0.1.dev2): inserted after the class token once positions are added; the hub's ``*_reg`` models interpolate
    the positions with ``interpolate_offset=0.0`` (an exact size) and ``interpolate_antialias=True``."""

    def __init__(self, registers=4, **kw):
        super().__init__(**kw)
        self.register_tokens = torch.nn.Parameter(torch.zeros(1, registers, self.embed_dim))

    def interpolate_pos_encoding(self, x, w, h):
        m, s = 37, self.patch_size
        grid = self.pos_embed[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(w // s, h // s), mode="bicubic", antialias=True)
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).flatten(1, 2)], 1)

    def prepare_tokens_with_masks(self, x, masks=None):
        t = super().prepare_tokens_with_masks(x, masks)
        return torch.cat([t[:, :1], self.register_tokens.expand(len(t), -1, -1), t[:, 1:]], 1)


def test_register_models_load_and_agree(tmp_path):
    ref = randomize(RegisterViT(embed_dim=384, depth=2, num_heads=6, block_chunks=0, **HUB), seed=3)
    torch.save(ref.state_dict(), tmp_path / "reg.pth")
    net = dv.build_dinov2(tmp_path / "reg.pth")
    assert net.shape.registers == 4 and "4 registers" in net.protocol
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert rel_err(net.embed(x), ref(x)) < 1e-5


def test_vit_l14_layout_is_recognised_without_allocating():
    for chunks in (0, 4):
        with torch.device("meta"):
            state = vits.vit_large(block_chunks=chunks, **HUB).state_dict()
        assert dv.check_layout(dv.canonical(state)) == dv.Shape(dim=1024, depth=24, registers=0, grid=37)
    with torch.device("meta"):
        giant = vits.vit_giant2(block_chunks=0, ffn_layer="swiglufused", **HUB).state_dict()
    one_line_error(lambda: dv.infer_shape(giant), "SwiGLU", "ViT-g/14")


def test_missing_weights_say_where_to_get_them(monkeypatch, tmp_path):
    monkeypatch.delenv(dv.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    one_line_error(dv.find_weights, dv.FILE_NAME, dv.URL, dv.ENV_VAR, str(tmp_path / "checkpoints"), "--dinov2-weights")
    monkeypatch.setenv(dv.ENV_VAR, str(tmp_path / "nowhere.pth"))
    one_line_error(lambda: get_extractor("dinov2"), dv.ENV_VAR, "no such file")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / dv.FILE_NAME).write_bytes(b"x")
    monkeypatch.delenv(dv.ENV_VAR)
    assert dv.find_weights() == tmp_path / "checkpoints" / dv.FILE_NAME


def test_a_wrong_file_is_one_line(pair, tmp_path):
    _, _, good = pair
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    one_line_error(lambda: dv.build_dinov2(junk), "not a DINOv2 weights file", "torch.load failed")
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    one_line_error(lambda: dv.build_dinov2(tmp_path / "other.pth"), "not a DINOv2", "patch_embed")
    state = torch.load(good, weights_only=True)
    del state["blocks.11.mlp.fc2.bias"]
    torch.save(state, tmp_path / "cut.pth")
    one_line_error(lambda: dv.build_dinov2(tmp_path / "cut.pth"), "1 tensors missing", "blocks.11.mlp.fc2.bias")
    state = torch.load(good, weights_only=True)
    state["norm.weight"] = torch.zeros(5)
    torch.save(state, tmp_path / "bent.pth")
    one_line_error(lambda: dv.build_dinov2(tmp_path / "bent.pth"), "wrong shape", "norm.weight")
