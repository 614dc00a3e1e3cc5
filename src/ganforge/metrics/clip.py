"""The CLIP ViT image tower as a feature extractor, for FD_CLIP and CMMD.

CLIP (Radford et al., "Learning Transferable Visual Models From Natural
Language Supervision", ICML 2021) embeds images in a space trained against
captions rather than ImageNet labels. CMMD (Jayasumana et al., "Rethinking
FID: Towards a Better Evaluation Metric for Image Generation", CVPR 2024) is
an MMD on its ViT-L/14@336 image embeddings, L2-normalised; FD_CLIP is the
Fréchet distance on the same features (Kynkäänniemi et al., "The Role of
ImageNet Classes in Fréchet Inception Distance", ICLR 2023, argue for
features that are not an ImageNet classifier's).

The network is the ViT image tower in the layout of OpenAI's and open_clip's
files (``visual.conv1.weight``, ``visual.class_embedding``,
``visual.positional_embedding``, ``visual.ln_pre``,
``visual.transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj,
ln_2, mlp.c_fc, mlp.c_proj}``, ``visual.ln_post``, ``visual.proj``); the
text tower's tensors in the same file are not read. Width, depth, heads
(width / 64), patch size and input resolution come from the tensors'
shapes, so ViT-B/32, ViT-B/16, ViT-L/14 and ViT-L/14@336 all load. OpenAI's
models use QuickGELU (x * sigmoid(1.702 x)), open_clip's configurations
without "quickgelu" in their name use GELU: option ``act``.

Files (ganforge never downloads one; :func:`find_weights` says where it
looks): OpenAI's ``ViT-B-32.pt`` / ``ViT-L-14-336px.pt`` are TorchScript
archives. They are read without running anything in them: ``data.pkl`` is
unpickled with a reader that knows only TorchScript's object, tensor and list
records (any other global is refused) and the tensors are copied from the
archive's ``data/`` entries; the TorchScript code is never compiled.
open_clip's files are state dicts (``open_clip_pytorch_model.bin``, read
with ``torch.load(weights_only=True)``, or ``.safetensors`` when the
optional ``safetensors`` package is installed). Every tensor becomes float32.

Preparation (``protocol``), for ganforge's float images in [-1, 1]: one
channel is repeated to three; pixels go to [0, 1]; the shorter side is resized
to the model's resolution (the longer one keeps the aspect ratio, as
torchvision's ``Resize(int)``) with antialiased bicubic interpolation, which
is PIL's bicubic kernel (a = -0.5, widened when shrinking) that CLIP's own
preprocessing applies, but on float pixels rather than uint8 ones; the result
is clamped to [0, 1] as PIL's uint8 output is; then the central square is cut
and CLIP's mean and std normalise it. CMMD's reference code instead stretches
to a square with ``F.interpolate(mode='bicubic')`` (a = -0.75, no
antialiasing); for square images the two differ only by the kernel.
Features: the image embedding after ``visual.proj`` (512-d for B/32, 768-d
for L/14), divided by its L2 norm as CMMD does (``normalize=True``).
"""
from __future__ import annotations

import collections
import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from .extractor import Extractor, file_hash, find_file, hub_checkpoints

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
ENV_VAR = "GANFORGE_CLIP_WEIGHTS"
FILE_NAMES = ("ViT-L-14-336px.pt", "ViT-B-32.pt")          # as OpenAI's clip package names them in ~/.cache/clip
URL = ("https://openaipublic.azureedge.net/clip/models/"
       "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt")
ACTS = ("quickgelu", "gelu")


@dataclass(frozen=True)
class Geometry:
    """The shape of a ViT image tower, read from its tensors."""
    width: int
    layers: int
    heads: int
    patch: int
    resolution: int
    mlp: int
    dim: int

    def __str__(self) -> str:
        return f"ViT width {self.width}, {self.layers} layers, patch {self.patch}, {self.resolution} px, {self.dim}-d"


def geometry(shapes: dict) -> Geometry:
    """The tower's geometry from ``{name: shape}`` of its tensors (names without the ``visual.`` prefix)."""
    need = ("conv1.weight", "positional_embedding", "proj", "transformer.resblocks.0.mlp.c_fc.weight")
    missing = [k for k in need if k not in shapes]
    if missing:
        raise ValueError(f"no visual.{missing[0]}")
    width, _, patch, _ = shapes["conv1.weight"]
    grid = round((shapes["positional_embedding"][0] - 1) ** 0.5)
    if grid * grid + 1 != shapes["positional_embedding"][0] or width % 64:
        raise ValueError(f"positional embedding {tuple(shapes['positional_embedding'])} or width {width} is not a ViT's")
    layers = len({int(m.group(1)) for k in shapes if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))})
    return Geometry(width, layers, width // 64, patch, patch * grid, shapes["transformer.resblocks.0.mlp.c_fc.weight"][0],
                    shapes["proj"][1])


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the activation OpenAI's CLIP models were trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with one packed q/k/v projection (``in_proj_*``), as nn.MultiheadAttention stores it."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        n, t, w = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(n, t, 3, self.heads, w // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                       # each (N, heads, T, head width)
        return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, w))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, act: str):
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.act = QuickGELU() if act == "quickgelu" else nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    """A pre-norm residual block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, g: Geometry, act: str):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(g.width), Attention(g.width, g.heads)
        self.ln_2, self.mlp = nn.LayerNorm(g.width), MLP(g.width, g.mlp, act)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, g: Geometry, act: str):
        super().__init__()
        self.resblocks = nn.ModuleList(Block(g, act) for _ in range(g.layers))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class VisionTower(nn.Module):
    """Patches -> tokens with a class token and learned positions -> transformer -> ln_post(class token) @ proj."""

    def __init__(self, g: Geometry, act: str):
        super().__init__()
        self.conv1 = nn.Conv2d(3, g.width, g.patch, stride=g.patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(g.width))
        self.positional_embedding = nn.Parameter(torch.empty((g.resolution // g.patch) ** 2 + 1, g.width))
        self.ln_pre, self.transformer, self.ln_post = nn.LayerNorm(g.width), Transformer(g, act), nn.LayerNorm(g.width)
        self.proj = nn.Parameter(torch.empty(g.width, g.dim))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)                             # (N, grid², width)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], 1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


class CLIPImageTower(Extractor):
    """CLIP's image embedding (after ``visual.proj``), L2-normalised unless ``normalize=False``."""

    name = "clip"
    fd_name = "FD_CLIP"
    has_logits = False

    def __init__(self, g: Geometry, act: str = "quickgelu", normalize: bool = True):
        super().__init__()
        if act not in ACTS:
            raise UserError(f"unknown clip activation {act!r}; choose one of {', '.join(ACTS)}")
        self.geometry, self.act, self.normalize, self.dim = g, act, bool(normalize), g.dim
        self.visual = VisionTower(g, act)
        self.protocol = (f"clip {g}, act={act}: [0,1], bicubic antialiased shorter side to {g.resolution} (clamped), "
                         f"center crop, CLIP mean/std; embedding after proj{', L2-normalised' if normalize else ''}")
        self.requires_grad_(False)
        self.train(False)

    def prepare(self, x: Tensor) -> Tensor:
        """[-1, 1] images (N, 1 or 3, H, W) -> the tower's normalised R x R input."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise UserError(f"clip takes (N, 1 or 3, H, W) images; got shape {tuple(x.shape)}")
        x = (x.float() + 1.0) / 2.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        r, (h, w) = self.geometry.resolution, x.shape[-2:]
        if min(h, w) != r:                                # torchvision Resize(int): shorter side to r, int() the other
            size = (r, int(r * w / h)) if h <= w else (int(r * h / w), r)
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        x = x.clamp(0.0, 1.0)
        top, left = int(round((x.shape[2] - r) / 2.0)), int(round((x.shape[3] - r) / 2.0))   # torchvision CenterCrop
        x = x[:, :, top:top + r, left:left + r]
        mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (MEAN, STD))
        return (x - mean) / std

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        f = self.visual(self.prepare(x.to(self.visual.proj.device)))
        return (F.normalize(f, dim=1) if self.normalize else f).float(), None


def find_weights(weights=None) -> Path:
    """The weights file: ``weights``, else $GANFORGE_CLIP_WEIGHTS, else ~/.cache/clip or the torch hub checkpoints."""
    folders = (Path.home() / ".cache" / "clip", hub_checkpoints())
    return find_file(weights, "clip weights", ENV_VAR, [f / name for f in folders for name in FILE_NAMES],
                     f"a CLIP ViT weights file, e.g. OpenAI's {FILE_NAMES[0]}",
                     f"the clip extractor needs CLIP ViT weights (ganforge never downloads): get OpenAI's {FILE_NAMES[0]} "
                     f"(CMMD's model; {FILE_NAMES[1]} also works, or an open_clip ViT file) from {URL} and pass it as the "
                     f"weights option, or set {ENV_VAR}=PATH, or put it in {folders[0]}/ or {folders[1]}/")


class _Storage(NamedTuple):
    key: str
    dtype: torch.dtype
    numel: int


class _TensorRef(NamedTuple):
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


class _ScriptObject:
    """Stands for any TorchScript class (a module): BUILD fills its __dict__ with the attributes, nothing runs."""


def _tensor_ref(storage, offset, size, stride, *rest) -> _TensorRef:
    if not (isinstance(storage, _Storage) and isinstance(offset, int) and all(isinstance(n, int) for n in (*size, *stride))
            and math.prod(size) <= storage.numel):          # no stride-0 tensor bigger than the bytes in the file
        raise pickle.UnpicklingError("malformed tensor record")
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


_DTYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
           "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
           "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool}
_LISTS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist", "restore_type_tag")


class _ArchiveUnpickler(pickle.Unpickler):
    """TorchScript's data.pkl: module objects, tensors, OrderedDict and typed lists; any other global is refused."""

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _tensor_ref
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module == "torch.jit._pickle" and name in _LISTS:
            return lambda value, *rest: value
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which is not a TorchScript record")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError("malformed storage record")
        return _Storage(str(pid[2]), pid[1], int(pid[4]))


def _script_tensors(obj, prefix: str, out: dict, seen: set) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for k, v in vars(obj).items():
        if isinstance(v, _TensorRef):
            out[prefix + k] = v
        elif isinstance(v, _ScriptObject):
            _script_tensors(v, f"{prefix}{k}.", out, seen)


def read_script_archive(path: Path, keep=lambda name: True) -> dict:
    """The tensors of a TorchScript archive whose names ``keep`` accepts (views of the storages read), running nothing."""
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise pickle.UnpicklingError("no data.pkl")
        root = pkl[0][: -len("data.pkl")]
        if root + "byteorder" in z.namelist() and z.read(root + "byteorder").strip() != b"little":
            raise pickle.UnpicklingError("big-endian tensors")
        refs: dict = {}
        _script_tensors(_ArchiveUnpickler(z.open(pkl[0])).load(), "", refs, set())
        storages, state = {}, {}
        for name, ref in refs.items():
            if not keep(name):
                continue
            s = ref.storage
            if s.key not in storages:
                data = bytearray(z.read(f"{root}data/{s.key}"))
                if len(data) != s.numel * s.dtype.itemsize:
                    raise pickle.UnpicklingError(f"storage {s.key} holds {len(data)} bytes, not {s.numel} x {s.dtype}")
                storages[s.key] = torch.frombuffer(data, dtype=s.dtype) if data else torch.empty(0, dtype=s.dtype)
            state[name] = storages[s.key].as_strided(ref.size, ref.stride, ref.offset)
    return state


def _is_script_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.count("/") == 1 and n.endswith("/constants.pkl") for n in z.namelist())


def read_visual_state(path: Path) -> dict:
    """``{name without 'visual.': float32 tensor}`` of the image tower in a CLIP file (TorchScript, torch, safetensors)."""
    bad = f"{str(path)!r} is not a CLIP weights file (OpenAI's {FILE_NAMES[0]} or an open_clip ViT state dict)"
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        if path.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{" and not zipfile.is_zipfile(path)):
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise UserError(f"reading {str(path)!r} needs the optional safetensors package "
                                "(pip install safetensors), or use the .bin file") from None
            state = load_file(str(path), device="cpu")
        elif _is_script_archive(path):
            state = read_script_archive(path, keep=lambda name: name.startswith("visual."))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except UserError:
        raise
    except Exception as e:                                # not a zip/pickle, an unsafe record, a corrupt entry
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"{bad}: cannot read it ({type(e).__name__}: {first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{bad}: it holds a {type(state).__name__}, not tensors")
    visual = {}
    for k, v in state.items():
        k = str(k)
        for prefix in ("module.", "_orig_mod."):                # DataParallel / torch.compile wrappers
            k = k[len(prefix):] if k.startswith(prefix) else k
        if k.startswith("visual.") and isinstance(v, Tensor):
            visual[k[len("visual."):]] = v.to(torch.float32, copy=True)     # not a view of a mapped file
    if not visual:
        raise UserError(f"{bad}: it has no visual.* tensors")
    return visual


def build_clip(weights: Optional[str] = None, act: str = "quickgelu", normalize: bool = True) -> Extractor:
    """The CLIP ViT image tower with its weights (see :func:`find_weights`); ``act`` quickgelu (OpenAI) or gelu."""
    if act not in ACTS:                                   # a bad option is named before any file is looked for
        raise UserError(f"unknown clip activation {act!r}; choose one of {', '.join(ACTS)}")
    path = find_weights(weights)
    state = read_visual_state(path)
    bad = f"{str(path)!r} is not a CLIP ViT image tower"
    try:
        g = geometry({k: v.shape for k, v in state.items()})
    except ValueError as e:
        raise UserError(f"{bad} ({e}; ResNet and timm towers are not supported)") from None
    with torch.device("meta"):
        net = CLIPImageTower(g, act, normalize)
    want = {k[len("visual."):]: v.shape for k, v in net.state_dict().items()}
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or extra:
        raise UserError(f"{bad} ({g}): {len(missing)} tensors missing (e.g. {missing[:2]}), "
                        f"{len(extra)} unexpected (e.g. {extra[:2]})")
    wrong = [f"visual.{k} {tuple(state[k].shape)} != {tuple(s)}" for k, s in want.items() if state[k].shape != s]
    if wrong:
        raise UserError(f"{bad} ({g}): {len(wrong)} tensors have the wrong shape, e.g. {wrong[0]}")
    net.visual.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)   # off meta
    net.requires_grad_(False)
    net.weights_hash = file_hash(path)
    return net
