"""Scores of an image-to-image generator against ground truth.

For every held-out input with a known answer (pix2pix: the paired target;
CycleGAN on a known mapping: the mapped image) the translation is compared
pixel by pixel (L1, PSNR, SSIM: metrics.pixel). Two more scores ask whether
the outputs look like real images of the target domain, the question pixel
losses cannot answer (Isola et al. 2017, section 4.2, measure it with the
FCN score and human judges):

- ``acc``: label preservation, the share of outputs that a digit classifier
  (metrics.mnist_net) assigns the input's label; ``acc_truth`` is the same
  classifier on the true answers, its ceiling.
- ``fid``: the Frechet distance (Heusel et al. 2017) between features of the
  outputs and of the real images of the target domain. Blurry outputs (what
  an L1 loss alone gives: the conditional median) sit far from real images
  in feature space even when their PSNR is high.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .extract import extract
from .fid import FeatureStats, fid
from .pixel import pixel_scores


def features(extractor, x: Tensor, batch: int = 256) -> tuple[Tensor, Optional[Tensor]]:
    got = extract(extractor, x, len(x), batch, keep_features=True, keep_logits=extractor.has_logits)
    return got.features, got.logits


def translation_scores(outputs: Tensor, truth: Tensor, labels: Optional[Tensor] = None, extractor=None,
                       reference: Optional[FeatureStats] = None, classify: bool = False) -> dict:
    """{"l1", "psnr", "ssim"} of outputs against truth (both in [-1, 1]); with a digit ``extractor``
    (``classify``) and labels, "acc" and "acc_truth"; with the ``reference`` features of real target images,
    "fid"."""
    outputs, truth = outputs.float().cpu(), truth.float().cpu()
    out = pixel_scores(outputs, truth)
    if extractor is None:
        return out
    f, logits = features(extractor, outputs)
    if classify and labels is not None and logits is not None:
        out["acc"] = float((logits.argmax(1) == labels.cpu()).float().mean())
        out["acc_truth"] = float((features(extractor, truth)[1].argmax(1) == labels.cpu()).float().mean())
    if reference is not None:
        out["fid"] = fid(FeatureStats.of(f), reference)
    return out


@torch.no_grad()
def reference_stats(extractor, x: Tensor) -> FeatureStats:
    return FeatureStats.of(features(extractor, x)[0])
