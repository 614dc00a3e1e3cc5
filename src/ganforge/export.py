"""A run's generator as one safetensors file, and the way back: ``export_generator`` and ``load_generator``.

A checkpoint (runs.checkpoint) is a ``torch.save`` pickle: fine for resuming
one's own runs, but a pickle from elsewhere is a program, not data. The file
written here holds the generator's ``state_dict`` in the safetensors format of
Hugging Face (huggingface/safetensors, README "Format": an 8-byte little-endian
header length, a JSON header naming each tensor's dtype, shape and byte range
plus an optional ``__metadata__`` map of strings to strings, then the raw
tensor bytes), so reading it parses JSON and copies bytes and never runs code.

``__metadata__`` holds ``format`` = "ganforge-generator", ``format_version`` =
"1" and ``ganforge``: a JSON object with everything needed to rebuild the
network with nets.build_nets: the resolved ``config`` dict, the data ``shape``
(and ``shape_a``, the input images of pix2pix and CycleGAN), the ``classes``
of the data, ``n_classes``, ``z_dim``, the ``step`` and ``weights`` ("ema" or
"raw") it was taken from, the ``checkpoint`` file name and the ganforge
``version``. The file is written to a temporary name, fsynced and renamed, so
a kill never leaves half a file under the final name (runs.atomic).

    ganforge export runs/toy-ring --out ring.safetensors
    G = ganforge.load_generator("ring.safetensors")
    x = G.sample(1000, seed=0)        # == ganforge.load_run("runs/toy-ring").sample(1000, seed=0)
"""
from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Optional, Union

import torch

from . import memory
from .errors import UserError, shown
from .runs import atomic, checkpoint, folder, verify
from .version import __version__

FORMAT = "ganforge-generator"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
ALTERED = "the file was altered, or not written by ganforge export"


# ---------------------------------------------------------------- writing

def export_generator(run_dir: Union[str, Path], out: Union[str, Path], which: str = "latest", raw: bool = False,
                     force: bool = False) -> dict:
    """Write the generator of the run in ``run_dir`` to ``out`` (a .safetensors file); return its metadata.

    ``which``: "latest" (the newest checkpoint that loads), "best" (checkpoints/best.pt) or a checkpoint
    file; ``raw``: the trained G rather than its moving average (runs without EMA always give G)."""
    from safetensors.torch import save

    from .api import checked_nets, load_saved_config
    run_dir, out = Path(run_dir), atomic.check_out(Path(out), force, (SUFFIX,))
    cfg = load_saved_config(run_dir)
    info = folder.read_info(run_dir)
    ckpt, state = checkpoint.pick(run_dir, which)
    use_ema = not raw and state.get("G_ema") is not None
    # through the architecture, checked first (runs.verify): the file holds exactly what the config's G takes
    G = checked_nets(cfg, info, state, ckpt, ("G_ema",) if use_ema else ("G",), run_dir)["G_ema" if use_ema else "G"]
    classes = list(info.get("classes") or [])
    shape, shape_a = tuple(info["shape"]), tuple(info.get("shape_a") or ())
    meta = {"config": cfg.to_dict(), "shape": list(shape), "classes": classes, "n_classes": int(G.n_classes),
            "z_dim": int(G.z_dim), "step": int(state["step"]), "weights": "ema" if use_ema else "raw",
            "checkpoint": ckpt.name, "run": run_dir.resolve().name, "version": __version__}
    if shape_a:
        meta["shape_a"] = list(shape_a)
    # clones: safetensors refuses tensors that share memory, and wants them contiguous
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in G.state_dict().items()}
    # through the one atomic write, not safetensors' save_file, whose files are private to their owner (mode 0600)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out, save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                                    "ganforge": json.dumps(meta)}))
    return meta


# ---------------------------------------------------------------- reading

def read_metadata(path: Union[str, Path]) -> dict:
    """The ``ganforge`` metadata of a generator file, checked; reads the header only."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as e:          # safetensors' own error type for a file that is not one
        raise UserError(f"{path} is not a safetensors file ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})") from None
    if header.get("format") != FORMAT:
        raise UserError(f"{path} is not a ganforge generator (its metadata has no format={FORMAT}); "
                        f"write one with ganforge export RUN --out FILE{SUFFIX}")
    try:
        version = int(header.get("format_version", ""))
    except ValueError:
        raise UserError(f"{path} has a format_version that is not a number: {header.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise UserError(f"{path} was written by a newer ganforge (generator format {version}, this version "
                        f"reads up to {FORMAT_VERSION}); upgrade ganforge")
    try:
        meta = json.loads(header["ganforge"])
    except (KeyError, ValueError):
        raise UserError(f"{path} has no readable ganforge metadata (a JSON object under 'ganforge')") from None
    if not isinstance(meta, dict) or not all(k in meta for k in ("config", "shape")):
        raise UserError(f"{path}: its ganforge metadata lacks the config or the data shape")
    _check_types(path, meta)
    return meta


def _check_types(path: Path, meta: dict) -> None:
    """Each metadata entry of the type export writes: one line naming the first that is not."""
    c = verify.Checker(path, why=ALTERED)
    c.mapping("metadata.config", meta["config"])
    c.dims("metadata.shape", meta["shape"])
    c.dims("metadata.shape_a", meta.get("shape_a") or [], empty=True)
    classes = meta.get("classes")
    if classes is not None and (not isinstance(classes, list)
                                or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in classes)):
        raise c.fail("metadata.classes", f"is {verify.describe(classes)}, not a list of class names")
    for k in ("n_classes", "z_dim", "step"):
        if k in meta:
            c.count(f"metadata.{k}", meta[k])
    for k in ("weights", "checkpoint", "run", "version"):
        if k in meta:
            c.text(f"metadata.{k}", meta[k])


def _rebuild(path: Path, meta: dict, on_meta: bool = False):
    """(config, G, D) built from the metadata, with fresh weights (``on_meta``: on the meta device, shapes
    without memory; None for G and D where the family cannot build there)."""
    from .api import meta_nets
    from .config import from_dict
    from .nets import FAMILIES, build_nets
    raw = meta["config"]
    model = raw.get("model")
    if not isinstance(model, dict):
        raise verify.Checker(path, why=ALTERED).fail("metadata.config.model", f"is {verify.describe(model)}, not a dict")
    family = model.get("name")
    if not isinstance(family, str) or family not in FAMILIES:
        raise UserError(f"{path} needs the model family {shown(family)}, which this ganforge does not have "
                        f"(families: {', '.join(FAMILIES)})")
    try:
        cfg = from_dict(raw)
        args = (cfg.model, tuple(meta["shape"]), len(meta.get("classes") or ()), tuple(meta.get("shape_a") or ()))
        G, D = (meta_nets(*args) or (None, None)) if on_meta else build_nets(*args)
    except UserError as e:
        raise UserError(f"the config in {path} does not build here: {e}") from None
    return cfg, G, D


def _header(path: Path) -> dict:
    """{name: (shape, dtype name)} of the file's tensors, from its header alone (no tensor is read)."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}


def _dtype_name(dtype: torch.dtype) -> str:
    from safetensors.torch import _TYPES
    return next((k for k, v in _TYPES.items() if v == dtype), str(dtype))


def _check_fit(path: Path, G: torch.nn.Module, tensors: dict) -> None:
    """One sentence naming the first mismatch between the file's tensors ({name: (shape, dtype name)}, from
    its header) and the architecture: a missing or extra tensor, a shape, or a dtype (complex, int)."""
    want = G.state_dict()
    missing = [k for k in want if k not in tensors]
    extra = [k for k in tensors if k not in want]
    shapes = [k for k in want if k in tensors and tuple(want[k].shape) != tuple(tensors[k][0])]
    dtypes = [k for k in want if k in tensors and _dtype_name(want[k].dtype) != tensors[k][1]]
    name = G.__class__.__name__
    if missing or extra:
        what = (f"lacks {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")) if missing \
            else (f"has {extra[0]}, which it does not use" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        raise UserError(f"the weights in {path} do not fit the {name} its config builds: the file {what}")
    if shapes:
        k = shapes[0]
        raise UserError(f"the weights in {path} do not fit the {name} its config builds: {k} is "
                        f"{tuple(tensors[k][0])} in the file, {tuple(want[k].shape)} in the network")
    if dtypes:
        k = dtypes[0]
        raise UserError(f"the weights in {path} do not fit the {name} its config builds: {k} is "
                        f"{tensors[k][1]} in the file, {_dtype_name(want[k].dtype)} in the network; {ALTERED}")


def _check_values(path: Path, tensors: dict) -> None:
    """No NaN or Inf in the file's floating tensors."""
    for k, t in tensors.items():
        if t.is_floating_point() and t.numel() and (bad := int((~torch.isfinite(t)).sum())):
            raise UserError(f"the weights in {path} hold NaN or Inf values ({k}: {bad} of {t.numel()}): the "
                            f"generator had diverged when it was exported, or the file was altered")


def load_generator(path: Union[str, Path], device: str = "cpu") -> torch.nn.Module:
    """The generator in a file of ``ganforge export``, in eval mode, without unpickling anything.

    It is the family's own module (state_dict keys as in the file) with attributes ``config`` (Config),
    ``z_dim``, ``n_classes``, ``classes``, ``shape`` (of a sample), ``shape_a`` (image-to-image: of an
    input), ``step``, ``weights`` ("ema" or "raw") and ``meta`` (the file's ganforge metadata), and the
    methods ``sample(n, seed=0, truncation=None, label=None, z=None)`` (what ``load_run(run).sample``
    gives: images in [-1, 1] or toy points) and, for pix2pix and CycleGAN, ``translate(x, direction="ab")``.
    """
    from safetensors.torch import load_file

    from .device import pick_device
    from .api import net_bytes
    path = Path(path)
    meta = read_metadata(path)
    header = _header(path)
    _, G, D = _rebuild(path, meta, on_meta=True)     # sizes first: a file may declare a huge network
    if G is not None:
        _check_fit(path, G, header)
        memory.check(2 * net_bytes(G.state_dict()) + net_bytes(D.state_dict()), f"the generator in {path}",
                     "open it on a machine with more memory")
    cfg, G, _ = _rebuild(path, meta)
    _check_fit(path, G, header)
    tensors = load_file(str(path), device="cpu")
    _check_values(path, tensors)
    G.load_state_dict(tensors)
    G.to(pick_device(device)).eval().requires_grad_(False)
    G.config, G.meta, G.source = cfg, meta, path
    G.shape, G.shape_a = tuple(meta["shape"]), tuple(meta.get("shape_a") or ())
    G.classes, G.step, G.weights = list(meta.get("classes") or []), int(meta.get("step", 0)), meta.get("weights", "")
    G.sample, G.translate = types.MethodType(sample, G), types.MethodType(translate, G)
    return G


def _as_run(G: torch.nn.Module):
    """A Run view of a loaded generator, so that sampling and translating are load_run's, to the bit."""
    from .api import Run
    info = {"shape": list(G.shape), "classes": G.classes}
    if G.shape_a:
        info["shape_a"] = list(G.shape_a)
    return Run(G.source, G.config, G, None, None, G.step, info)


@torch.no_grad()
def sample(G: torch.nn.Module, n: int, seed: int = 0, truncation: Optional[float] = None, label=None,
           z: Optional[torch.Tensor] = None, batch: int = 256) -> torch.Tensor:
    """``n`` samples of a generator from load_generator, on the CPU: what ``Run.sample(n, seed, ...)`` gives."""
    if G.shape_a:
        raise UserError(f"{G.source} holds a {G.config.model.name} generator: it translates images "
                        "(G.translate(x)) and draws nothing from z")
    return _as_run(G).sample(n, seed=seed, truncation=truncation, batch=batch, label=label, z=z)


def translate(G: torch.nn.Module, x: torch.Tensor, direction: str = "ab") -> torch.Tensor:
    """Images of domain A translated to B (CycleGAN: ``direction="ba"`` for B to A), as ``Run.translate``."""
    return _as_run(G).translate(x, direction=direction)
