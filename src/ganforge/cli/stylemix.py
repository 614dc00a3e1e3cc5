"""``ganforge stylemix RUN --out grid.png``: the style-mixing grid of a stylegan run.

Karras et al. 2019, figure 3 (StyleGAN2 keeps it): a grid whose top row
holds the column sources A and whose left column holds the row sources B;
each cell is A's styles with one range of layers (``--layers
coarse|middle|fine`` or a slice ``I:J`` of the w inputs) taken from B.
Coarse layers set pose and shape, fine ones texture.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..runs import atomic
from .. import memory
from .common import SEED, count


def add_parser(sub):
    m = sub.add_parser("stylemix", help="style-mixing grid of a stylegan run: rows take a layer range from B")
    m.add_argument("run")
    m.add_argument("--rows", type=count(), default=4, help="row sources B (default 4)")
    m.add_argument("--cols", type=count(), default=5, help="column sources A (default 5)")
    m.add_argument("--layers", default="coarse", help="coarse, middle, fine (thirds of the w inputs) or I:J")
    m.add_argument("--truncation", type=float, default=None, help="psi for every source")
    m.add_argument("--seed", type=SEED, default=0)
    m.add_argument("--out", required=True, help="a .png file")
    m.add_argument("--force", action="store_true", help="replace --out if it exists")
    return m


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


def stylegan_generator(run, what: str):
    """The run's generator when it has a mapping network (stylegan); else one line saying it must."""
    G = run.generator
    if not hasattr(G, "synthesis"):
        raise UserError(f"{what} needs a run with a mapping network (model=stylegan); {run.path} is "
                        f"model={run.config.model.name}")
    return G


def codes(run, n: int, seed: int):
    """n latent codes z of a run from ``seed`` (the stream ``ganforge sample`` draws from)."""
    import torch

    from ..rng import Stream
    return torch.randn(n, run.config.model.z_dim, generator=Stream(seed, "sample").next())


def run(a) -> int:
    import torch

    from ..api import load_run
    from ..viz.grid import grid, save_png
    out = atomic.check_out(Path(a.out), a.force, (".png",))
    if a.rows < 1 or a.cols < 1:
        raise UserError("--rows and --cols must be at least 1")
    run = load_run(a.run)
    shape = run.info.get("shape") or []
    memory.check(memory.tensor_bytes(3 * (a.rows + 1) * (a.cols + 1), shape), f"a grid of {a.rows + 1}x{a.cols + 1} "
                 f"images of {'x'.join(map(str, shape))}", "ask for fewer --rows or --cols")
    G = stylegan_generator(run, "stylemix")
    span = layer_range(a.layers, G.num_ws)
    z = codes(run, a.cols + a.rows, a.seed)
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
