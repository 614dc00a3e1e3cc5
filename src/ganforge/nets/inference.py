"""A trained image-to-image generator applied for its outputs (samples, scores, ``ganforge translate``).

pix2pix keeps dropout on at test time as its noise (Isola et al. 2017,
section 3.1); here it is drawn from a fixed seed inside a forked random
state, so a translation of one input is always the same and never moves the
caller's random streams (which an exact resume needs).
"""
from __future__ import annotations

import contextlib

import torch

EVAL_SEED = 20171108        # the dropout noise of every translation made for samples and scores


def translate(net: torch.nn.Module, x: torch.Tensor, precision=None, batch: int = 256,
              seed: int = EVAL_SEED) -> torch.Tensor:
    """net(x) in eval mode, in chunks, as float; the caller's random state is left as it was."""
    was = net.training
    net.eval()
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            with precision.autocast() if precision is not None else contextlib.nullcontext():
                return torch.cat([net(chunk).float() for chunk in x.split(batch)])
    finally:
        net.train(was)
