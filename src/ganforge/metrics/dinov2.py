"""The DINOv2 ViT-L/14 as a feature extractor: the feature space of FD_DINOv2.

DINOv2 (Oquab et al., "DINOv2: Learning Robust Visual Features without
Supervision", TMLR 2024) is a self-supervised vision transformer (Dosovitskiy
et al., ICLR 2021). Stein et al. ("Exposing flaws of generative model
evaluation metrics and their unfair treatment of diffusion models", NeurIPS
2023; code: layer6ai-labs/dgm-eval) found that the Fréchet distance in its
feature space ranks generative models closer to human judgement than
Inception's, and EDM2 (Karras et al., "Analyzing and Improving the Training
Dynamics of Diffusion Models", CVPR 2024) reports that distance as FD_DINOv2.
Both use the ViT-L/14 of torch hub's ``dinov2_vitl14`` (1,024-d).

The network here has the tensor layout of the hub's weights files
(``dinov2_vit{s,b,l}14[_reg4]_pretrain.pth``): ``cls_token``, ``pos_embed``
(for 518x518 inputs: 37x37 patches), ``mask_token`` (unused here),
``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma,
norm2, mlp.fc1, mlp.fc2, ls2.gamma}``, ``norm``, and ``register_tokens`` in the
"with registers" models (Darcet et al., ICLR 2024). Width, depth and register
count are read from the shapes (heads = width / 64, patch 14, MLP ratio 4), so
ViT-S/14, B/14 and L/14 files load; ViT-g/14 (a SwiGLU feed-forward) is refused.
Chunked names (``blocks.C.N.``, the reference's ``block_chunks`` for FSDP) and
a training checkpoint's ``teacher``/``model`` dict with ``backbone.`` names
load too. ganforge never downloads the file: :func:`find_weights` says where it
is looked for.

The positional embedding is resized to the input's patch grid as the
reference's ``interpolate_pos_encoding``: bicubic with ``scale_factor =
(patches + 0.1) / 37`` (its "+0.1" kludge, which makes PyTorch sample with that
scale rather than 16/37), not antialiased; the register models are built by the
hub with an exact ``size`` and antialiasing instead, and so are they here. The
feature is the final LayerNorm's class token: what the hub model returns
(``model(x)``, its head is the identity) and what dgm-eval and EDM2 read.

Preparation (``protocol``), for ganforge's float images in [-1, 1]: one channel
is repeated to three; pixels go to 0..255 as ``(x + 1) * 127.5`` (not
quantised); resized to 224x224 with antialiased bicubic interpolation,
``F.interpolate(x, size=(224, 224), mode='bicubic', antialias=True)``, as
EDM2's ``calculate_metrics.py`` does by default (its "torch" mode; dgm-eval
resizes uint8 PIL images with PIL's bicubic, which EDM2 keeps as a slower
"pil" mode that "yields almost the same results"); then divided by 255 and
normalised with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224,
0.225).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import memory
from ..errors import UserError
from .extractor import Extractor, file_hash, find_file, hub_checkpoints
from .extractor import check_layout as check_names_and_shapes

SIZE, PATCH, HEAD_DIM = 224, 14, 64
FILE_NAME = "dinov2_vitl14_pretrain.pth"
URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/" + FILE_NAME
ENV_VAR = "GANFORGE_DINOV2_WEIGHTS"
VARIANTS = {384: "ViT-S/14", 768: "ViT-B/14", 1024: "ViT-L/14"}     # width -> name; ViT-g/14 (1536) is not here
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PROTOCOL = ("{variant} final-norm CLS token: [0,255], bicubic antialiased to 224x224 (EDM2's F.interpolate), "
            "/255, ImageNet mean/std")


@dataclass(frozen=True)
class Shape:
    """What a weights file holds: width, number of blocks, register tokens, side of the pos_embed patch grid."""
    dim: int
    depth: int
    registers: int
    grid: int

    @property
    def variant(self) -> str:
        return VARIANTS[self.dim] + (f" with {self.registers} registers" if self.registers else "")


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (heads of 64 channels)."""

    def __init__(self, dim: int):
        super().__init__()
        self.heads = dim // HEAD_DIM
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, c))


class LayerScale(nn.Module):
    """A learned per-channel factor on a residual branch (Touvron et al. 2021, CaiT)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))) with a GELU MLP of 4x width."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), Attention(dim), LayerScale(dim)
        self.norm2, self.ls2 = nn.LayerNorm(dim, eps=1e-6), LayerScale(dim)
        self.mlp = nn.ModuleDict({"fc1": nn.Linear(dim, 4 * dim), "fc2": nn.Linear(4 * dim, dim)})

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp["fc2"](F.gelu(self.mlp["fc1"](self.norm2(x)))))


def pos_embedding(pos_embed: Tensor, rows: int, cols: int, registers: int = 0) -> Tensor:
    """``pos_embed`` (1, 1 + M*M, dim) for a rows x cols patch grid, as the reference's ``interpolate_pos_encoding``
    (the hub's settings: offset 0.1 without antialiasing, or, for the register models, exact size with it)."""
    m, dim = math.isqrt(pos_embed.shape[1] - 1), pos_embed.shape[2]
    if rows == cols == m:
        return pos_embed
    grid = pos_embed[:, 1:].float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    if registers:
        grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", antialias=True)
    else:              # the scale factor itself (not rows / m) sets where PyTorch samples: keep the reference's
        grid = F.interpolate(grid, scale_factor=((rows + 0.1) / m, (cols + 0.1) / m), mode="bicubic", antialias=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
    return torch.cat([pos_embed[:, :1].float(), grid], 1).to(pos_embed.dtype)


class DINOv2(Extractor):
    """A DINOv2 ViT/14: the final-norm class token (``dim`` = the width) of the image at 224x224; no logits."""

    name = "dinov2"
    fd_name = "FD_DINOv2"
    has_logits = False

    def __init__(self, shape: Shape):
        super().__init__()
        d = self.dim = shape.dim
        self.shape, self.protocol = shape, PROTOCOL.format(variant=shape.variant)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + shape.grid ** 2, d))
        if shape.registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, shape.registers, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))           # masked-image training only; kept for the layout
        self.patch_embed = nn.ModuleDict({"proj": nn.Conv2d(3, d, PATCH, stride=PATCH)})
        self.blocks = nn.ModuleList(Block(d) for _ in range(shape.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.requires_grad_(False)
        self.train(False)

    def prepare(self, x: Tensor) -> Tensor:
        """[-1, 1] images (N, 1 or 3, H, W) -> the network's 224x224 input (ImageNet-normalised)."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise UserError(f"dinov2 takes (N, 1 or 3, H, W) images; got shape {tuple(x.shape)}")
        x = (x.float() + 1.0) * 127.5
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bicubic", antialias=True) / 255.0
        mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (MEAN, STD))
        return (x - mean) / std

    def embed(self, x: Tensor) -> Tensor:
        """Prepared images (N, 3, H, W), H and W multiples of 14 -> the final-norm class token (N, dim)."""
        n, _, h, w = x.shape
        t = self.patch_embed["proj"](x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(n, -1, -1), t], 1)
        t = t + pos_embedding(self.pos_embed, h // PATCH, w // PATCH, self.shape.registers)
        if self.shape.registers:                                   # after the positions, which they do not get
            t = torch.cat([t[:, :1], self.register_tokens.expand(n, -1, -1), t[:, 1:]], 1)
        for block in self.blocks:
            t = block(t)
        return self.norm(t[:, 0])                                  # LayerNorm is per token: the class token's alone

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        return self.embed(self.prepare(x.to(self.cls_token.device))).float(), None


def find_weights(weights=None) -> Path:
    """The weights file: ``weights`` (``--dinov2-weights``), else $GANFORGE_DINOV2_WEIGHTS, else ``dinov2_vitl14_pretrain.pth`` in the torch
    hub cache (where ``torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')`` leaves it)."""
    cache = hub_checkpoints()
    return find_file(weights, "--dinov2-weights", ENV_VAR, [cache / FILE_NAME],
                     f"the DINOv2 ViT-L/14 weights {FILE_NAME}, from {URL}",
                     f"the dinov2 extractor needs the weights file {FILE_NAME} (ganforge never downloads): get it from {URL} "
                     f"and pass --dinov2-weights PATH (weights=PATH in Python), or set {ENV_VAR}=PATH, or put it in the "
                     f"torch hub cache {cache}/")


def canonical(state: dict) -> dict:
    """A saved dict -> tensors under the hub's names: a ``teacher``/``model``/``state_dict`` wrapper opened, the
    ``module.``/``_orig_mod.``/``backbone.`` prefixes and the training heads dropped, chunked blocks unchunked."""
    for wrapper in ("teacher", "model", "state_dict"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    out = {}
    for key, value in state.items():
        key = str(key)
        while key.startswith(("module.", "_orig_mod.", "backbone.")):
            key = key.split(".", 1)[1]
        if not key.startswith(("dino_head.", "ibot_head.")):
            out[re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)] = value
    return out


def infer_shape(state: dict, source: str = "the state dict") -> Shape:
    """Width, depth, registers and pos_embed grid from the shapes of a (canonical) state dict; tensors of any
    device, the meta device included, as nothing is read but shapes. Not a DINOv2 ViT-S/B/L/14: one line."""
    bad = f"{source} is not a DINOv2 ViT-S/14, B/14 or L/14 state dict (as {FILE_NAME}, from {URL})"
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{bad}: it does not hold a dict of tensors")
    proj, pos = state.get("patch_embed.proj.weight"), state.get("pos_embed")
    if proj is None or pos is None or proj.dim() != 4 or pos.dim() != 3:
        raise UserError(f"{bad}: no patch_embed.proj.weight and pos_embed")
    dim = proj.shape[0]
    if any(".mlp.w12." in k for k in state):
        raise UserError(f"{bad}: its feed-forward layers are SwiGLU (ViT-g/14), which ganforge does not build")
    if tuple(proj.shape[1:]) != (3, PATCH, PATCH) or dim not in VARIANTS:
        raise UserError(f"{bad}: its patch embedding is {tuple(proj.shape)}; ganforge builds (384|768|1024, 3, 14, 14)")
    grid = math.isqrt(max(pos.shape[1] - 1, 0))
    if grid < 1 or grid * grid + 1 != pos.shape[1]:
        raise UserError(f"{bad}: pos_embed {tuple(pos.shape)} is not a class token and a square patch grid")
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    regs = state.get("register_tokens")
    return Shape(dim, depth, regs.shape[1] if regs is not None and regs.dim() == 3 else 0, grid)


def check_layout(state: dict, source: str = "the state dict") -> Shape:
    """:func:`infer_shape`, then every tensor name and shape compared with the network of that shape (built on the
    meta device: nothing is allocated); a missing, extra or misshapen tensor gives one line."""
    shape = infer_shape(state, source)
    with torch.device("meta"):
        want = {k: v.shape for k, v in DINOv2(shape).state_dict().items()}
    bad = f"{source} is not a DINOv2 {shape.variant} state dict (as {FILE_NAME}, from {URL})"
    check_names_and_shapes(state, want, bad)
    return shape


def load(path: Path) -> DINOv2:
    """The network with the weights in ``path`` (read without unpickling code, float32; built on the meta device
    and given the file's tensors, so the weights are held once)."""
    memory.check(path.stat().st_size, f"the DINOv2 weights {path.name}", "free some memory")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:                                        # not a zip/pickle, or unsafe pickle content
        raise UserError(f"{str(path)!r} is not a DINOv2 weights file ({FILE_NAME}, from {URL}): torch.load failed: "
                        f"{type(e).__name__}") from None
    if not isinstance(state, dict):
        raise UserError(f"{str(path)!r} is not a DINOv2 weights file ({FILE_NAME}, from {URL}): it holds no dict")
    state = canonical(state)
    shape = check_layout(state, repr(str(path)))
    with torch.device("meta"):
        net = DINOv2(shape)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    net.load_state_dict(state, strict=True, assign=True)          # the layout was checked: this cannot misfit
    return net


def build_dinov2(weights: Optional[str] = None) -> Extractor:
    """The DINOv2 extractor with its weights (see :func:`find_weights`); the width (``dim``) is the file's."""
    path = find_weights(weights)
    net = load(path)
    net.weights_hash = file_hash(path)
    return net
