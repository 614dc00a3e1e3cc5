"""Transfer learning: a new run that starts from another run's weights (``init=``).

Wang et al. 2018, "Transferring GANs: generating images from limited data":
G and D trained on plentiful data are a better start than random weights
for a few hundred images; Mo et al. 2020 (FreezeD, ``model.freeze_d``,
nets.transfer) add keeping D's lower blocks as they were.

``start_from(trainer)`` runs once, at step 0: train.start calls it on a new
run right after the nets are built (before any optimizer step and before
the run folder exists, so a refusal leaves nothing behind), or on a resumed
folder that has no checkpoint yet. A resume with a checkpoint loads its own
and never reads the source again, so it stays bit-exact. Only weights are
taken (G, D and G's moving average, buffers included): the step, the
optimizers, the random streams, the data and the rest of the config are
the new run's.

The source is read without running code: a run folder (its newest
checkpoint) or a checkpoint file through runs.checkpoint, a generator file
of ``ganforge export`` through export.read_metadata and safetensors (it
holds G alone: D keeps its fresh initialisation and G's average starts as
G). It must be of the run's model family; its tensors are matched by
nets.transfer.fit, and any that do not fit stop the start in one line
(``init.mismatch=error``) or keep their fresh initialisation (``reinit``).
Every init prints one line saying what came from where; run.json records
the path as given, the file read, its SHA-256, its kind and step, and the
tensors that kept their fresh values.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import export, memory
from ..errors import UserError
from ..nets.transfer import fit, listing
from ..runs import checkpoint, folder, verify

KINDS = "init= takes a run folder, a checkpoint .pt or a generator .safetensors of ganforge export"


@dataclass
class Source:
    kind: str                   # run | checkpoint | generator
    file: Path
    family: Optional[str]
    step: Optional[int]
    nets: dict                  # G, D, G_ema: a state_dict or None
    weights: str = ""           # a generator file: the ema or raw G of its run


def _family(config) -> Optional[str]:
    model = config.get("model") if isinstance(config, dict) else None
    name = model.get("name") if isinstance(model, dict) else None
    return name if isinstance(name, str) else None


def _from_checkpoint(kind: str, file: Path, state: dict) -> Source:
    c = verify.Checker(file)
    if "G" not in state:
        raise c.fail("G", "is missing", "it is not a whole ganforge checkpoint")
    nets = {k: c.mapping(k, state[k]) if state.get(k) is not None else None for k in ("G", "D", "G_ema")}
    step = state.get("step")
    return Source(kind, file, _family(state.get("config")), step if isinstance(step, int) else None, nets)


def _from_generator(path: Path) -> Source:
    from safetensors.torch import load_file
    meta = export.read_metadata(path)
    memory.check(path.stat().st_size, f"loading {path}", "start from it on a machine with more memory")
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as e:          # safetensors' own error type for a damaged file
        raise UserError(f"{path} is not a safetensors file that loads ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})") from None
    step = meta.get("step")
    return Source("generator", path, _family(meta["config"]), step if isinstance(step, int) else None,
                  {"G": tensors, "D": None, "G_ema": None}, str(meta.get("weights", "")))


def read_source(spec: str) -> Source:
    """The weights that ``init=spec`` names, read without running code."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"no such run folder or file; {KINDS}")
    if path.is_dir():
        folder.read_config(path)                 # a run folder, or one line saying it is not one
        return _from_checkpoint("run", *checkpoint.pick(path, "latest"))
    if path.suffix == export.SUFFIX:
        return _from_generator(path)
    if path.suffix != ".pt":
        raise UserError(f"{KINDS}, not a {path.suffix or 'suffix-less'} file")
    return _from_checkpoint("checkpoint", path, checkpoint.load(path))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _aligned(own: dict, theirs: dict) -> dict:
    """``theirs`` keyed as ``own`` where the two differ by the conditional wrapper (nets.conditional keeps the
    family's net under ``base.``): a conditional source for an unconditional run, or the other way round."""
    stripped = {(k[5:] if k.startswith("base.") else k): v for k, v in theirs.items()}
    added = {f"base.{k}": v for k, v in theirs.items()}
    return max((theirs, stripped, added), key=lambda d: sum(k in own for k in d))


def _misfits(fits: dict) -> list[str]:
    """The misfits of G and D, then those of G_ema that are not G's own again (its average has G's names)."""
    out = [m for k in ("G", "D") if k in fits for m in fits[k].misfits(f"{k}.")]
    if "G_ema" in fits:
        seen = {m[2:] for m in out if m.startswith("G.")}
        out += [m for m in fits["G_ema"].misfits("G_ema.") if m[6:] not in seen]
    return out


def _check(nets: dict, fits: dict, where: Path) -> None:
    """Every tensor about to be copied: plain, dense and finite (runs.verify), before any is."""
    c = verify.Checker(where)
    for k, f in fits.items():
        own = nets[k].state_dict()
        for name, t in f.take.items():
            c.tensor(f"{k}.{name}", t, own[name].shape, own[name].dtype)


def start_from(trainer) -> Optional[dict]:
    """Load the weights that ``init=`` names into the trainer's fresh nets; what run.json records (None: no init)."""
    cfg = trainer.cfg
    spec = cfg.init.name
    if not spec:
        return None
    try:
        src = read_source(spec)
    except UserError as e:
        raise UserError(f"init={spec}: {e}") from None
    family = cfg.model.name
    if src.family is not None and src.family != family:
        raise UserError(f"init={spec}: {src.file} holds a {src.family} model and this run is {family}; init= "
                        f"starts from weights of the same family (model={src.family})")
    nets = {"G": trainer.G, "D": trainer.D, **({"G_ema": trainer.ema.module} if trainer.ema else {})}
    theirs = {"G": src.nets["G"], "D": src.nets["D"], "G_ema": src.nets["G_ema"] or src.nets["G"]}
    fits = {}
    for k, net in nets.items():
        if theirs[k] is not None:
            own = net.state_dict()
            fits[k] = fit(own, _aligned(own, theirs[k]))
    bad = _misfits(fits)
    if bad and cfg.init.mismatch == "error":
        raise UserError(f"init={spec}: {tensors(len(bad))} of {src.file} {'do' if len(bad) > 1 else 'does'} not fit "
                        f"this run's {family} nets: {listing(bad)}; match the model.* keys, data.resolution, channels and "
                        "classes of the source, or add init.mismatch=reinit to keep those freshly initialised")
    _check(nets, fits, src.file)
    for k, f in fits.items():            # the fitting tensors copied in; the others keep their fresh values
        nets[k].load_state_dict({**nets[k].state_dict(), **f.take})
    if trainer.dist.main:
        print(f"ganforge: init: {note(src, fits, bad)}", file=sys.stderr)
    return {"from": spec, "file": str(src.file.resolve()), "sha256": sha256(src.file), "kind": src.kind,
            "step": src.step, "nets": sorted(fits),
            "fresh": [f"{k}.{n}" for k, f in fits.items() for n in f.missing + [m for m, _ in f.other]],
            "left_out": [f"{k}.{n}" for k, f in fits.items() for n in f.unexpected]}


def note(src: Source, fits: dict, bad: list[str]) -> str:
    """The one line an init prints: which nets came from which file, and what did not fit."""
    step = f"step {src.step}" if src.step is not None else ""
    if src.kind == "generator":
        what = (f"G{' and its moving average' if 'G_ema' in fits else ''} from {src.file} (its "
                f"{src.weights or 'exported'} weights{', ' + step if step else ''}); the file holds only G, so D "
                "starts from its fresh initialisation")
    else:
        names = [k for k in ("G", "D", "G_ema") if k in fits]
        what = (f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]) + f" from {src.file}" \
            + (f" ({step})" if step else "")
    if not bad:
        return what
    fresh = [m for m in bad if not m.endswith("(only in the source)")]
    left = [m.split(" ", 1)[0] for m in bad if m.endswith("(only in the source)")]
    parts = [f"kept the fresh initialisation of {tensors(len(fresh))} that do not fit: {listing(fresh)}"] if fresh else []
    parts += [f"left out {tensors(len(left))} only in the source: {listing(left)}"] if left else []
    return f"{what}; init.mismatch=reinit: " + "; ".join(parts)


def tensors(n: int) -> str:
    return f"{n} tensor{'s' if n != 1 else ''}"


def record(init: Optional[dict], before: dict) -> dict:
    """run.json's ``init`` entry: this start's, or on a resume the one its first start wrote."""
    if init is not None:
        return {"init": init}
    return {"init": before["init"]} if isinstance(before.get("init"), dict) else {}
