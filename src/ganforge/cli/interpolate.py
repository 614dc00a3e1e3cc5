"""``ganforge interpolate RUN --out walk.mp4``: a looping video of walks through a generator's latent space.

Walks through z (spherical interpolation between key codes, as for Gaussian
latents, White 2016) or through w (straight lines, StyleGAN's
perceptual-path-length space) for every family with a mapping network; each
frame is a grid of ``--walks`` walks, the last key returns to the first so
the video loops. MP4 (H.264) or GIF.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import UserError
from ..runs import atomic
from .stylemix import codes, stylegan_generator
from .. import memory
from .common import SEED, count, positive


def add_parser(sub):
    v = sub.add_parser("interpolate", help="a looping video of walks through z (any family) or w (stylegan)")
    v.add_argument("run")
    v.add_argument("--space", choices=("z", "w"), default="z")
    v.add_argument("--keys", type=count(2), default=4, help="key codes per walk (default 4)")
    v.add_argument("--frames", type=count(), default=24, help="frames between two keys (default 24)")
    v.add_argument("--walks", type=count(), default=9, help="walks side by side in each frame (default 9)")
    v.add_argument("--fps", type=positive, default=24)
    v.add_argument("--truncation", type=float, default=None, help="stylegan: psi applied to the key w's")
    v.add_argument("--seed", type=SEED, default=0)
    v.add_argument("--out", required=True, help="a .mp4 or .gif file")
    v.add_argument("--force", action="store_true", help="replace --out if it exists")
    return v


def slerp(a, b, t: float):
    """Spherical interpolation between rows of a and b (linear where they are parallel)."""
    import torch
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    lin = (1 - t) * a + t * b
    sph = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-8)
    return torch.where(so > 1e-6, sph, lin)


def run(a) -> int:
    import numpy as np
    import torch

    from ..api import load_run
    from ..viz.grid import grid
    from ..viz.movie import write_gif, write_mp4
    out = atomic.check_out(Path(a.out), a.force, (".mp4", ".gif"))
    if a.keys < 2 or a.frames < 1 or a.walks < 1 or not a.fps > 0:
        raise UserError("--keys must be at least 2, --frames and --walks at least 1, --fps above 0")
    run = load_run(a.run)
    if len(run.info.get("shape", ())) != 3:
        raise UserError(f"{run.path} is not an image run; interpolation videos are for image runs")
    shape = run.info["shape"]
    memory.check(memory.tensor_bytes(2 * a.keys * a.frames * a.walks, shape), f"{a.keys * a.frames} frames of "
                 f"{a.walks} images of {'x'.join(map(str, shape))}", "ask for fewer --keys, --frames or --walks")
    keys = codes(run, a.keys * a.walks, a.seed).view(a.keys, a.walks, -1)
    y = run.labels(a.walks)
    G = run.generator
    if a.space == "w":
        G = stylegan_generator(run, "--space w")
        with torch.no_grad():
            keys = torch.stack([G.mapping_net(k, y, a.truncation) for k in keys])
    elif a.truncation is not None:
        raise UserError("--truncation applies to --space w")
    frames = []
    nrow = max(1, math.ceil(math.sqrt(a.walks)))
    for i in range(a.keys):
        k0, k1 = keys[i], keys[(i + 1) % a.keys]
        for f in range(a.frames):
            t = f / a.frames
            with torch.no_grad():
                if a.space == "w":
                    x = G.synthesis(torch.lerp(k0, k1, t)[:, None].repeat(1, G.num_ws, 1))
                else:
                    x = run.sample(a.walks, z=slerp(k0, k1, t), label=y)
            g = grid(x, nrow=nrow)
            frames.append(np.repeat(g[..., None], 3, 2) if g.ndim == 2 else g)
    out.parent.mkdir(parents=True, exist_ok=True)
    (write_mp4 if out.suffix == ".mp4" else write_gif)(frames, out, fps=a.fps)
    print(f"wrote {out}: {len(frames)} frames, {a.walks} walks through {a.space} over {a.keys} keys")
    return 0
