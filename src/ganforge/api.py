"""The Python API for notebooks: open a run folder, draw samples, translate images.

    import ganforge
    run = ganforge.train("toy-ring", steps=500, out="runs")     # ganforge.train.start.train
    x = run.sample(1000, seed=0)            # from the EMA generator
    run = ganforge.load_run("runs/toy-ring")
    run.generator, run.discriminator, run.config, run.metrics()

Opening a run reads its folder through ganforge.runs and builds its nets;
it never imports the training package.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Union

import torch

from .config import Config, build, raw_from_dict
from .device import pick_device
from .errors import UserError
from .nets import FAMILIES, build_nets
from .nets.layers import no_power_iterations_on_meta
from .rng import Stream, truncated_normal
from . import memory
from .runs import checkpoint, folder, verify
from .runs.metrics_log import read_metrics


def saved_config(run_dir: Path) -> tuple[dict, Config]:
    """A run's config.yaml: the raw tree of its values (old key names renamed) and the checked Config."""
    raw = raw_from_dict(folder.read_config(Path(run_dir)))
    return raw, build(raw)


def load_saved_config(run_dir: Path) -> Config:
    return saved_config(run_dir)[1]


class Run:
    """A run folder opened for use: its config, nets and samples."""

    def __init__(self, path: Path, config: Config, G: torch.nn.Module, D: torch.nn.Module,
                 G_ema: Optional[torch.nn.Module], step: int, info: dict):
        self.path, self.config, self.G, self.D, self.G_ema = path, config, G, D, G_ema
        self.step, self.info = step, info

    @property
    def generator(self) -> torch.nn.Module:
        """The EMA generator when the run keeps one, else the trained one."""
        return self.G_ema if self.G_ema is not None else self.G

    @property
    def discriminator(self) -> torch.nn.Module:
        return self.D

    def metrics(self) -> list[dict]:
        return read_metrics(self.path / "metrics.jsonl")

    @property
    def translates(self) -> bool:
        """Whether this is an image-to-image run (pix2pix, cyclegan)."""
        return "shape_a" in self.info

    def translate(self, x: torch.Tensor, direction: str = "ab", ema: bool = True) -> torch.Tensor:
        """Images of domain A (N, C, H, W) in [-1, 1] translated to B (``direction="ba"``: B to A, CycleGAN),
        with the fixed dropout seed of the run's samples and scores."""
        from .nets.inference import translate
        if not self.translates:
            raise UserError(f"{self.path} is a {self.config.model.name} run: only pix2pix and cyclegan runs translate")
        net = self.G_ema if (ema and self.G_ema is not None) else self.G
        if direction not in ("ab", "ba"):
            raise UserError(f"direction must be ab or ba, got {direction!r}")
        if direction == "ba" and not hasattr(net, "ba"):
            raise UserError(f"{self.path} is a pix2pix run: it translates A to B only")
        net = getattr(net, direction) if hasattr(net, "ba") else net
        return translate(net, x.to(next(net.parameters()).device))

    @property
    def n_classes(self) -> int:
        """Classes of a conditional run (0: unconditional)."""
        return getattr(self.G, "n_classes", 0)

    @property
    def classes(self) -> list:
        """The class names of the run's data (empty when it has none)."""
        return list(self.info.get("classes") or [])

    def labels(self, n: int, label=None) -> Optional[torch.Tensor]:
        """Labels for n samples: None for an unconditional run; balanced 0..C-1 repeated when ``label`` is None;
        one class (index or name); or a given tensor (int64 (n,) or class weights (n, C))."""
        C = self.n_classes
        if not C:
            if label is not None:
                raise UserError(f"{self.path} is not class-conditional (train with model.conditional=true)")
            return None
        if label is None:
            return torch.arange(n) % C
        if isinstance(label, torch.Tensor):
            return label
        return torch.full((n,), self.class_index(label), dtype=torch.int64)

    def class_index(self, label) -> int:
        """A class given by index or by name."""
        names = [str(c) for c in self.classes]
        if isinstance(label, str) and label in names and not label.lstrip("-").isdigit():
            return names.index(label)
        try:
            k = int(label)
        except (TypeError, ValueError):
            raise UserError(f"unknown class {label!r}; the classes are {', '.join(names)}") from None
        if not 0 <= k < self.n_classes:
            raise UserError(f"class {k} is out of range: this run has {self.n_classes} classes (0-{self.n_classes - 1})")
        return k

    def sampler(self, n: int, seed: int = 0, ema: bool = True, truncation: Optional[float] = None, label=None,
                z: Optional[torch.Tensor] = None):
        """``fn(start, count)``: samples ``start:start+count`` of the ``n`` that ``sample(n, seed)`` returns,
        drawn when asked (evaluation streams them through a feature extractor). ``label``: see labels();
        ``z``: codes to use instead of the seed's."""
        if self.translates:
            raise UserError(f"{self.path} is a {self.config.model.name} run: it translates images "
                            "(ganforge translate RUN --input ... --out ...) and draws nothing from z")
        kind = FAMILIES[self.config.model.name].truncation
        if truncation is not None and not kind:
            raise UserError(f"model {self.config.model.name} does not support truncation "
                            f"(families that do: {', '.join(k for k, f in FAMILIES.items() if f.truncation)})")
        if truncation is not None and not truncation > 0:
            raise UserError(f"--truncation must be above 0, got {truncation}")
        net = self.G_ema if (ema and self.G_ema is not None) else self.G
        dev = next(net.parameters()).device
        if z is None:
            g = Stream(seed, "sample").next()
            shape = (n, self.config.model.z_dim)
            z = truncated_normal(shape, truncation, g) if truncation and kind == "z" else torch.randn(*shape, generator=g)
        kw = {"truncation": truncation} if truncation is not None and kind == "w" else {}
        z = z.to(dev)
        y = self.labels(n, label)
        y = None if y is None else y.to(dev)
        net.eval()

        @torch.no_grad()
        def draw(start: int, count: int) -> torch.Tensor:
            if y is None:
                return net(z[start:start + count], **kw).float()
            return net(z[start:start + count], y[start:start + count], **kw).float()
        return draw

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, ema: bool = True, truncation: Optional[float] = None,
               batch: int = 256, label=None, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``n`` samples (images in [-1, 1] or toy points) from seed ``seed``; for a conditional run, of
        ``label`` (a class index or name, labels per sample, or None for all classes in turn)."""
        draw = self.sampler(n, seed, ema, truncation, label, z)
        return torch.cat([draw(i, min(batch, n - i)) for i in range(0, n, batch)]).cpu()


def load_run(path: Union[str, Path], device: str = "cpu", which: str = "latest") -> Run:
    """Open a run folder at its newest checkpoint (``which="best"``: checkpoints/best.pt, kept by ``eval.best``)."""
    path = Path(path)
    cfg = load_saved_config(path)
    info = folder.read_info(path)
    ckpt, state = checkpoint.pick(path, which)
    nets = checked_nets(cfg, info, state, ckpt, ("G", "D", "G_ema") if state.get("G_ema") is not None else ("G", "D"),
                        path)
    dev = pick_device(device)
    for m in nets.values():
        m.to(dev).eval().requires_grad_(False)
    return Run(path, cfg, nets["G"], nets["D"], nets.get("G_ema"), state["step"], info)


class _NoFills(torch.overrides.TorchFunctionMode):
    """In-place operations on meta tensors skipped: weight initialisers change no shape, and the meta kernel of
    ``normal_`` would import TorchDynamo (a second of start-up for DCGAN). Those that reshape are kept."""

    RESHAPE = {"resize_", "resize_as_", "set_", "as_strided_", "squeeze_", "unsqueeze_", "t_", "transpose_",
               "swapdims_", "swapaxes_"}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        t = args[0] if args else next(iter((kwargs or {}).values()), None)      # nn.init passes tensor=...
        if isinstance(t, torch.Tensor) and t.is_meta and name.endswith("_") and not name.startswith("_") \
                and name not in self.RESHAPE:
            return t
        return func(*args, **(kwargs or {}))


def meta_nets(model_cfg, shape: tuple, classes: int, shape_a: tuple) -> Optional[tuple]:
    """(G, D) built on the meta device (shapes and dtypes, no memory), or None where a family cannot build
    there (an operation without a meta kernel); a config that does not build is the family's UserError, as
    for a real build, and sizes past what torch can count (3 x 2**31 x 2**31) are one too."""
    try:
        with no_power_iterations_on_meta(), torch.device("meta"), _NoFills():
            return build_nets(model_cfg, shape, classes, shape_a)
    except UserError:
        raise
    except Exception as e:
        text = str(e).splitlines()[0] if str(e) else ""
        if isinstance(e, NotImplementedError) or "meta" in text.lower():
            return None
        raise UserError(f"its networks cannot be built ({type(e).__name__}: {text[:120]})") from None


def net_bytes(*state_dicts) -> int:
    return sum(t.numel() * t.element_size() for sd in state_dicts for t in sd.values())


def checked_nets(cfg: Config, info: dict, state: dict, where, keys=("G", "D"), run_dir=None) -> dict:
    """The nets ``keys`` of a checkpoint's ``state`` loaded into the config's networks ({"G": G, "D": D,
    "G_ema": a copy of G}; G_ema alone: into G). Every tensor is checked (runs.verify) against the networks
    built first on the meta device, and their memory against the machine's, before anything real is built.
    ``info``: the run's run.json (in ``run_dir``)."""
    c = verify.Checker(Path(run_dir or ".") / "run.json")
    shape, shape_a = c.dims("shape", info.get("shape")), c.dims("shape_a", info.get("shape_a") or [], empty=True)
    classes = info.get("classes") or []
    if not isinstance(classes, list):
        raise c.fail("classes", f"is {verify.describe(classes)}, not a list of class names")
    args = (cfg.model, shape, len(classes), shape_a)
    held = ("G", "D", "G_ema") if state.get("G_ema") is not None else ("G", "D")     # all checked, keys loaded
    try:
        meta = meta_nets(*args)
    except UserError as e:
        raise UserError(f"the config of {run_dir or where} does not build: {e}") from None
    if meta is not None:
        verify.nets(where, state, {k: meta[k == "D"].state_dict() for k in held}, cfg.model.name, cfg.ema.enabled)
        copies = 1 + ("G" in keys and "G_ema" in keys)
        memory.check(net_bytes(*[meta[0].state_dict()] * copies, meta[1].state_dict()),
                     f"the networks of {where}", "open it on a machine with more memory")
    G, D = build_nets(*args)                    # their weights are replaced below
    if meta is None:
        verify.nets(where, state, {k: (D if k == "D" else G).state_dict() for k in held}, cfg.model.name,
                    cfg.ema.enabled)
    out = {}
    for k in keys:
        out[k] = D if k == "D" else G if k == "G" or "G" not in keys else copy.deepcopy(G)
        out[k].load_state_dict(state[k])
    return out
