"""Pieces shared by the families: weight initialisation, spectral norm, norms.

Spectral normalization divides each weight by its largest singular value,
estimated by power iteration (Miyato et al. 2018); PyTorch's parametrization
keeps the iteration vectors as buffers, so they are saved in checkpoints.
"""
from __future__ import annotations

from contextlib import contextmanager

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm, spectral_norm

NORMS = ("batch", "layer", "instance", "none")


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalize every conv and linear layer in ``module`` (once: normalized layers are kept)."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if parametrize.is_parametrized(child, "weight"):
                continue
            dim = 1 if isinstance(child, nn.ConvTranspose2d) else 0
            setattr(module, name, spectral_norm(child, dim=dim))
        else:
            apply_spectral_norm(child)
    return module


@contextmanager
def no_power_iterations_on_meta():
    """Spectral norm's power iterations skipped while nets are built and run on the meta device (the memory
    estimate of train.budget, the checks of api.checked_nets before a checkpoint is loaded): on meta tensors they
    compute nothing, and the 15 of each layer's construction, each op passing through ``torch.device``'s
    Python-level override, took 1 to 6 s per start or load for the spectral-norm families (sngan, biggan). The
    vectors they would update exist already, so every tensor the forward keeps is still counted. Only meta weights
    skip them: a real net built or trained meanwhile by another thread of the process iterates as always."""
    original = _SpectralNorm._power_method

    def skip_on_meta(self, weight_mat, n_power_iterations):
        if not weight_mat.is_meta:
            original(self, weight_mat, n_power_iterations)
    _SpectralNorm._power_method = skip_on_meta
    try:
        yield
    finally:
        _SpectralNorm._power_method = original


def norm2d(kind: str, channels: int) -> nn.Module:
    """A 2-D normalization layer by name ('layer' normalizes over C, H, W)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    return nn.Identity()


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights, BN scale N(1, 0.02) (Radford et al. 2016)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
