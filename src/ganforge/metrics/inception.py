"""The FID Inception-v3 network, as a feature extractor.

Inception-v3 (Szegedy et al., "Rethinking the Inception Architecture for
Computer Vision", CVPR 2016) in the exact form FID (Heusel et al., "GANs
Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017) was defined with: the TensorFlow graph
``inception-2015-12-05`` (``classify_image_graph_def.pb``). It differs from
torchvision's Inception-v3 in four places, as found by pytorch-fid (Seitzer
2020) and torch-fidelity (Obukhov et al. 2020):

- the 3x3 average pools inside the Mixed_5*, Mixed_6b-e and Mixed_7b blocks
  do not count the zero padding (``count_include_pad=False``);
- the pool branch of the last block (Mixed_7c) is a 3x3 *max* pool;
- batch norm uses eps = 1e-3;
- the classifier has 1,008 outputs (1,000 ImageNet classes plus 8 unused).

The weights are the file ``pt_inception-2015-12-05-6726825d.pth`` that
pytorch-fid publishes (torch-fidelity's ``weights-inception-2015-12-05-
6726825d.pth`` is converted from the same graph with the same tensor names;
both load). The graph has 94 conv+BN layers and the fc layer: 94 + 4 * 94 + 2
= 472 tensors, 23,885,392 numbers (21,751,136 conv, 68,864 BN, 2,065,392 fc;
BatchNorm's ``num_batches_tracked`` counters may be in the file or not).
ganforge never downloads it: :func:`find_weights` says where it is looked for.

Features are the 2,048-d global average pool after Mixed_7c ("pool3");
logits are the 1,008 outputs of ``fc`` without its bias (pool3 · Wᵀ: what the Inception Score reads in
its original code, torch-fidelity and torchmetrics).

Preparation (``protocol``), for ganforge's float images in [-1, 1]:

- one channel is repeated to three;
- pixels go to 0..255 as ``p = (x + 1) * 127.5`` in float (torch-fidelity
  and the TF code take uint8 images; ganforge does not quantise);
- ``legacy-tf``: resized to 299x299 with TensorFlow 1.x's bilinear resize
  (``align_corners=False`` without half-pixel centres, no antialiasing), the
  resize torch-fidelity reproduces (``interpolate_bilinear_2d_like_tensorflow1x``),
  so features match torch-fidelity's;
- ``clean``: clean-fid's clean mode (Parmar et al., "On Aliased Resizing and
  Surprising Subtleties in GAN Evaluation", CVPR 2022): PIL's bicubic resize
  of each channel as a float image, then clipped to [0, 255]. Torch's
  antialiased bicubic (a = -0.5, the window cut at the border and
  renormalised) is PIL's filter; computed in float64 it matches clean-fid's
  ``make_resizer("PIL", False, "bicubic", (299, 299))`` to 2e-5 of 255 (PIL
  keeps float32). Numbers are not comparable to ``legacy-tf`` ones;
- then normalised to [-1, 1] as the graph does: ``(p - 128) / 128``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from .extractor import Extractor, check_layout, file_hash, find_file, hub_checkpoints

SIZE = 299
FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"                 # pytorch-fid's file
FIDELITY_FILE_NAME = "weights-inception-2015-12-05-6726825d.pth"   # torch-fidelity's file, same tensors and names
URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FILE_NAME
ENV_VAR = "GANFORGE_INCEPTION_WEIGHTS"
PROTOCOLS = {
    "legacy-tf": "legacy-tf: bilinear to 299 as TF1 (align_corners=False, no antialias), [-1,1]",
    "clean": "clean: bicubic antialiased to 299 and clipped to [0,255] (clean-fid clean mode), [-1,1]",
}


class Conv(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU: one TF ``conv`` node."""

    def __init__(self, cin: int, cout: int, kernel_size, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)   # TF ignores the padding


# Asymmetric kernels of the 17x17 and 8x8 blocks, with the padding that keeps the size.
K1x7, K7x1 = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
K1x3, K3x1 = dict(kernel_size=(1, 3), padding=(0, 1)), dict(kernel_size=(3, 1), padding=(1, 0))


class BlockA(nn.Module):
    """35x35 block (Mixed_5b-d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = Conv(cin, 64, 1)
        self.branch5x5_1 = Conv(cin, 48, 1)
        self.branch5x5_2 = Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = Conv(cin, 64, 1)
        self.branch3x3dbl_2 = Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, padding=1)
        self.branch_pool = Conv(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x),
                          self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg_pool(x))], 1)


class BlockB(nn.Module):
    """35x35 -> 17x17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = Conv(cin, 64, 1)
        self.branch3x3dbl_2 = Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class BlockC(nn.Module):
    """17x17 block (Mixed_6b-e) with factorised 7x7 convolutions."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = Conv(cin, 192, 1)
        self.branch7x7_1 = Conv(cin, c7, 1)
        self.branch7x7_2 = Conv(c7, c7, **K1x7)
        self.branch7x7_3 = Conv(c7, 192, **K7x1)
        self.branch7x7dbl_1 = Conv(cin, c7, 1)
        self.branch7x7dbl_2 = Conv(c7, c7, **K7x1)
        self.branch7x7dbl_3 = Conv(c7, c7, **K1x7)
        self.branch7x7dbl_4 = Conv(c7, c7, **K7x1)
        self.branch7x7dbl_5 = Conv(c7, 192, **K1x7)
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = x
        for i in range(1, 6):
            d7 = getattr(self, f"branch7x7dbl_{i}")(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(_avg_pool(x))], 1)


class BlockD(nn.Module):
    """17x17 -> 8x8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = Conv(cin, 192, 1)
        self.branch3x3_2 = Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Conv(cin, 192, 1)
        self.branch7x7x3_2 = Conv(192, 192, **K1x7)
        self.branch7x7x3_3 = Conv(192, 192, **K7x1)
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class BlockE(nn.Module):
    """8x8 block (Mixed_7b with an average pool, Mixed_7c with a max pool, as in the TF graph)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = Conv(cin, 320, 1)
        self.branch3x3_1 = Conv(cin, 384, 1)
        self.branch3x3_2a = Conv(384, 384, **K1x3)
        self.branch3x3_2b = Conv(384, 384, **K3x1)
        self.branch3x3dbl_1 = Conv(cin, 448, 1)
        self.branch3x3dbl_2 = Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Conv(384, 384, **K1x3)
        self.branch3x3dbl_3b = Conv(384, 384, **K3x1)
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x),
                          self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3),
                          self.branch_pool(pooled)], 1)


def resize_tf1_bilinear(x: Tensor, size: int) -> Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)``: source = target * in/out (no half-pixel shift).

    Computed in float32 in the same order as torch-fidelity's exact ("slow") port, so results agree bit for bit.
    """
    def axis(n_in: int):
        src = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = src.long()                                   # floor: src >= 0
        return lo, (lo + 1).clamp_max(n_in - 1), src - lo.float()

    (y0, y1, dy), (x0, x1, dx) = axis(x.shape[2]), axis(x.shape[3])
    top, bottom = x.index_select(2, y0), x.index_select(2, y1)
    top = top.index_select(3, x0) + (top.index_select(3, x1) - top.index_select(3, x0)) * dx.view(1, 1, 1, -1)
    bottom = bottom.index_select(3, x0) + (bottom.index_select(3, x1) - bottom.index_select(3, x0)) * dx.view(1, 1, 1, -1)
    return top + (bottom - top) * dy.view(1, 1, -1, 1)


class InceptionV3(Extractor):
    """FID Inception-v3: pool3 features (2,048) and the 1,008 logits."""

    name = "inception"
    dim = 2048
    has_logits = True

    def __init__(self, protocol: str = "legacy-tf"):
        super().__init__()
        if protocol not in PROTOCOLS:
            raise UserError(f"unknown inception resize protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        self.resize, self.protocol = protocol, PROTOCOLS[protocol]
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e = (BlockC(768, c) for c in (128, 160, 160, 192))
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b, self.Mixed_7c = BlockE(1280, "avg"), BlockE(2048, "max")
        self.fc = nn.Linear(2048, 1008)
        self.requires_grad_(False)
        self.train(False)
        self.to(memory_format=torch.channels_last)     # ~1.7x faster on the CPU here; loading keeps the layout

    def prepare(self, x: Tensor) -> Tensor:
        """[-1, 1] images (N, 1 or 3, H, W) -> the network's 299x299 input in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise UserError(f"inception takes (N, 1 or 3, H, W) images; got shape {tuple(x.shape)}")
        x = (x.float() + 1.0) * 127.5                      # 0..255, as torch-fidelity's uint8 input, not rounded
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (SIZE, SIZE):          # both resizes are the identity at 299x299
            if self.resize == "legacy-tf":
                x = resize_tf1_bilinear(x, SIZE)
            else:
                x = F.interpolate(x.double(), size=(SIZE, SIZE), mode="bicubic", antialias=True,
                                  align_corners=False).clamp(0.0, 255.0).float()   # clean-fid clips the overshoot
        return (x - 128.0) / 128.0

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        x = self.prepare(x.to(self.fc.weight.device))
        if self.Conv2d_1a_3x3.conv.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)      # model.to(memory_format=torch.channels_last)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))          # 147x147
        x = F.max_pool2d(x, kernel_size=3, stride=2)                                # 73x73
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))                              # 71x71
        x = F.max_pool2d(x, kernel_size=3, stride=2)                                # 35x35
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)                                                            # ... 8x8x2048
        feats = F.adaptive_avg_pool2d(x, 1).flatten(1)                              # pool3
        # the logits without fc's bias (pool3 · Wᵀ), as the Inception Score's original code, torch-fidelity
        # ('logits_unbiased') and torchmetrics compute it
        return feats.float(), (feats @ self.fc.weight.T).float()


def find_weights(weights=None) -> Path:
    """The weights file: ``weights`` (``--inception-weights``), else $GANFORGE_INCEPTION_WEIGHTS, else the torch hub cache."""
    cache = hub_checkpoints()
    return find_file(weights, "--inception-weights", ENV_VAR, [cache / FILE_NAME, cache / FIDELITY_FILE_NAME],
                     f"the FID Inception weights {FILE_NAME}, from {URL}",
                     f"the inception extractor needs the weights file {FILE_NAME} (ganforge never downloads): get it from "
                     f"{URL} and pass --inception-weights PATH, or set {ENV_VAR}=PATH, or put it in the torch hub cache "
                     f"{cache}/ (torch-fidelity's {FIDELITY_FILE_NAME} there works too)")


def _canonical(key: str) -> str:
    """A saved tensor name -> ganforge's (identical to pytorch-fid's and torch-fidelity's, but for wrappers)."""
    for prefix in ("module.", "_orig_mod."):                        # DataParallel / torch.compile wrappers
        key = key[len(prefix):] if key.startswith(prefix) else key
    return key


def load_weights(net: InceptionV3, path: Path) -> None:
    """Load a weights file into ``net``; a file that is not the FID Inception's raises a one-line UserError."""
    bad = f"{str(path)!r} is not the FID Inception weights file {FILE_NAME} ({URL})"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:                                        # not a zip/pickle, or unsafe pickle content
        raise UserError(f"{bad}: torch.load failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{bad}: it does not hold a dict of tensors")
    state = {_canonical(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    want = {k: v.shape for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    check_layout(state, want, bad)
    net.load_state_dict(state, strict=False)                     # only num_batches_tracked may be left out


def build_inception(weights: Optional[str] = None, protocol: str = "legacy-tf") -> Extractor:
    """The FID Inception-v3 with its weights (see :func:`find_weights`) and resize ``protocol`` (legacy-tf or clean)."""
    net = InceptionV3(protocol)                       # checks the protocol before looking for files
    path = find_weights(weights)
    load_weights(net, path)
    net.weights_hash = file_hash(path)
    return net
