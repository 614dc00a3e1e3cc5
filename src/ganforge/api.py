"""The Python API for notebooks: train a run, open a run, draw samples.

    import ganforge
    run = ganforge.train("toy-ring", steps=500, out="runs")
    x = run.sample(1000, seed=0)            # from the EMA generator
    run = ganforge.load_run("runs/ring-mlp")
    run.generator, run.discriminator, run.config, run.metrics()
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Optional, Union

import torch

from .config import Config
from .errors import UserError
from .nets import FAMILIES, build_nets
from .rng import Stream
from .train import checkpoint
from .train.log import read_metrics
from .train.run import load_saved_config, start
from .train.setup import pick_device


def _overrides(kwargs: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in kwargs.items():
        if isinstance(v, dict):
            out += _overrides(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}={'null' if v is None else v}")
    return out


def train(config: Optional[str] = None, out: Union[str, Path] = "runs", resume: Union[str, Path, bool, None] = None,
          progress: str = "auto", **overrides) -> "Run":
    """Train a run and return its handle.

    ``config`` is a preset name or YAML path (None: the main job's defaults);
    ``overrides`` are config keys, nested dicts or dotted strings via
    ``**{"optim.g.lr": 1e-4}``. ``resume`` is a run folder to continue, or
    True to continue the named run if it exists (as ``resume=true``).
    """
    if isinstance(resume, bool):                       # resume=True: the named run, if it exists
        overrides["resume"], resume = resume, None
    trainer, _ = start(config, tuple(_overrides(overrides)), Path(out), Path(resume) if resume else None,
                       progress=None if progress == "auto" else progress)
    trainer.run()
    return load_run(trainer.run_dir)


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

    def sampler(self, n: int, seed: int = 0, ema: bool = True, truncation: Optional[float] = None):
        """``fn(start, count)``: samples ``start:start+count`` of the ``n`` that ``sample(n, seed)`` returns,
        drawn when asked (evaluation streams them through a feature extractor)."""
        if truncation is not None and not FAMILIES[self.config.model.name].supports_truncation:
            raise UserError(f"model {self.config.model.name} does not support truncation")
        net = self.G_ema if (ema and self.G_ema is not None) else self.G
        dev = next(net.parameters()).device
        z = torch.randn(n, self.config.model.z_dim, generator=Stream(seed, "sample").next()).to(dev)
        net.eval()

        @torch.no_grad()
        def draw(start: int, count: int) -> torch.Tensor:
            return net(z[start:start + count]).float()
        return draw

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, ema: bool = True, truncation: Optional[float] = None,
               batch: int = 256) -> torch.Tensor:
        """``n`` samples (images in [-1, 1] or toy points) from seed ``seed``."""
        draw = self.sampler(n, seed, ema, truncation)
        return torch.cat([draw(i, min(batch, n - i)) for i in range(0, n, batch)]).cpu()


def load_run(path: Union[str, Path], device: str = "cpu", which: str = "latest") -> Run:
    """Open a run folder at its newest checkpoint (``which="best"``: checkpoints/best.pt, kept by ``eval.best``)."""
    path = Path(path)
    cfg = load_saved_config(path)
    info_path = path / "run.json"
    if not info_path.is_file():
        raise UserError(f"{path} has no run.json: the run never started")
    info = json.loads(info_path.read_text())
    if which == "best":
        best = path / "checkpoints" / "best.pt"
        if not best.is_file():
            raise UserError(f"{path} has no checkpoints/best.pt: train with eval.best=METRIC to keep one")
        found = (best, checkpoint.load(best))
    else:
        found = checkpoint.latest(path / "checkpoints")
    if found is None:
        raise UserError(f"{path} has no checkpoint yet")
    _, state = found
    G, D = build_nets(cfg.model, tuple(info["shape"]))      # weights are replaced below
    dev = pick_device(device)
    try:
        G_ema = copy.deepcopy(G) if state.get("G_ema") is not None else None
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        if G_ema is not None:
            G_ema.load_state_dict(state["G_ema"])
    except RuntimeError as e:
        raise UserError(f"the checkpoint in {path} does not fit its config ({str(e).splitlines()[0][:160]})") from None
    for m in (G, D, G_ema):
        if m is not None:
            m.to(dev).eval().requires_grad_(False)
    return Run(path, cfg, G, D, G_ema, int(state["step"]), info)
