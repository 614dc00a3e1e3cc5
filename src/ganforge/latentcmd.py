"""``ganforge stylemix`` and ``ganforge interpolate``: pictures of a generator's latent spaces.

- Style mixing (Karras et al. 2019, figure 3; StyleGAN2 keeps it): a grid
  whose top row holds the column sources A and whose left column holds
  the row sources B; each cell is A's styles with one range of layers
  (``--layers coarse|middle|fine`` or a slice ``I:J`` of the w inputs)
  taken from B. Coarse layers set pose and shape, fine ones texture.
- Interpolation videos: walks through z (spherical interpolation between
  key codes, as for Gaussian latents, White 2016) or through w (straight
  lines, StyleGAN's perceptual-path-length space) for every family with a
  mapping network; each frame is a grid of ``--walks`` walks, the last key
  returns to the first so the video loops. MP4 (H.264) or GIF.
"""
from __future__ import annotations

import math
from pathlib import Path

from .errors import UserError


def add_parsers(sub) -> None:
    m = sub.add_parser("stylemix", help="style-mixing grid of a stylegan run: rows take a layer range from B")
    m.add_argument("run")
    m.add_argument("--rows", type=int, default=4, help="row sources B (default 4)")
    m.add_argument("--cols", type=int, default=5, help="column sources A (default 5)")
    m.add_argument("--layers", default="coarse", help="coarse, middle, fine (thirds of the w inputs) or I:J")
    m.add_argument("--truncation", type=float, default=None, help="psi for every source")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", required=True, help="a .png file")
    m.add_argument("--force", action="store_true", help="replace --out if it exists")
    m.set_defaults(fn=run_stylemix)

    v = sub.add_parser("interpolate", help="a looping video of walks through z (any family) or w (stylegan)")
    v.add_argument("run")
    v.add_argument("--space", choices=("z", "w"), default="z")
    v.add_argument("--keys", type=int, default=4, help="key codes per walk (default 4)")
    v.add_argument("--frames", type=int, default=24, help="frames between two keys (default 24)")
    v.add_argument("--walks", type=int, default=9, help="walks side by side in each frame (default 9)")
    v.add_argument("--fps", type=float, default=24)
    v.add_argument("--truncation", type=float, default=None, help="stylegan: psi applied to the key w's")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--out", required=True, help="a .mp4 or .gif file")
    v.add_argument("--force", action="store_true", help="replace --out if it exists")
    v.set_defaults(fn=run_interpolate)


def _out(path: str, suffixes: tuple, force: bool) -> Path:
    out = Path(path)
    if out.suffix not in suffixes:
        raise UserError(f"--out must end in {' or '.join(suffixes)}, got {out.name}")
    if out.exists() and not force:
        raise UserError(f"{out} exists; choose another --out or add --force to replace it")
    return out


def layer_range(spec: str, num_ws: int) -> slice:
    """The w inputs a style-mixing row takes from its source B."""
    third = [round(i * num_ws / 3) for i in range(4)]
    named = {"coarse": (0, third[1]), "middle": (third[1], third[2]), "fine": (third[2], num_ws)}
    if spec in named:
        return slice(*named[spec])
    try:
        a, b = (int(v) if v else d for v, d in zip(spec.split(":"), (0, num_ws)))
    except ValueError:
        raise UserError(f"--layers takes coarse, middle, fine or I:J, got {spec!r}") from None
    if ":" not in spec or not 0 <= a < b <= num_ws:
        raise UserError(f"--layers {spec!r} is not a range I:J with 0 <= I < J <= {num_ws} (this G's w inputs)")
    return slice(a, b)


def _stylegan(run, what: str):
    G = run.generator
    if not hasattr(G, "synthesis"):
        raise UserError(f"{what} needs a run with a mapping network (model=stylegan); {run.path} is "
                        f"model={run.config.model.name}")
    return G


def _codes(run, n: int, seed: int):
    import torch

    from .rng import Stream
    return torch.randn(n, run.config.model.z_dim, generator=Stream(seed, "sample").next())


def run_stylemix(a) -> int:
    import torch

    from .api import load_run
    from .viz.grid import grid, save_png
    out = _out(a.out, (".png",), a.force)
    if a.rows < 1 or a.cols < 1:
        raise UserError("--rows and --cols must be at least 1")
    run = load_run(a.run)
    G = _stylegan(run, "stylemix")
    span = layer_range(a.layers, G.num_ws)
    z = _codes(run, a.cols + a.rows, a.seed)
    y = run.labels(len(z))
    with torch.no_grad():
        ws = G.mapping_net(z, y, a.truncation)[:, None].repeat(1, G.num_ws, 1)
        A, B = ws[:a.cols], ws[a.cols:]
        mixed = A[None].repeat(a.rows, 1, 1, 1)                   # (rows, cols, num_ws, w_dim)
        mixed[:, :, span] = B[:, None, span]
        images = G.synthesis(torch.cat([A, B, mixed.flatten(0, 1)]))
    blank = torch.ones_like(images[:1])
    cells = [blank, images[:a.cols]]
    for r in range(a.rows):
        start = a.cols + a.rows + r * a.cols
        cells += [images[a.cols + r:a.cols + r + 1], images[start:start + a.cols]]
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(grid(torch.cat(cells), nrow=a.cols + 1), out)
    print(f"wrote {out}: top row A (columns), left column B (rows); each cell takes w inputs "
          f"{span.start}:{span.stop} of {G.num_ws} from B")
    return 0


def slerp(a, b, t: float):
    """Spherical interpolation between rows of a and b (linear where they are parallel)."""
    import torch
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    lin = (1 - t) * a + t * b
    sph = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-8)
    return torch.where(so > 1e-6, sph, lin)


def run_interpolate(a) -> int:
    import numpy as np
    import torch

    from .api import load_run
    from .viz.grid import grid
    from .viz.movie import write_gif, write_mp4
    out = _out(a.out, (".mp4", ".gif"), a.force)
    if a.keys < 2 or a.frames < 1 or a.walks < 1 or not a.fps > 0:
        raise UserError("--keys must be at least 2, --frames and --walks at least 1, --fps above 0")
    run = load_run(a.run)
    if len(run.info.get("shape", ())) != 3:
        raise UserError(f"{run.path} is not an image run; interpolation videos are for image runs")
    keys = _codes(run, a.keys * a.walks, a.seed).view(a.keys, a.walks, -1)
    y = run.labels(a.walks)
    G = run.generator
    if a.space == "w":
        G = _stylegan(run, "--space w")
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
