"""``ganforge eval``: measure a run, or two sets of samples, and keep the numbers with their provenance.

``ganforge eval RUN`` draws samples from the run's (EMA) generator and
compares them with the run's real data; ``ganforge eval --real A --fake B``
compares two folders or npz files (as torch-fidelity's command line does).
The result is appended to a JSON file (``RUN/eval.json`` or ``eval.json``:
``{"evaluations": [...]}``, oldest first, so nothing earlier is lost) and
printed as a table with the extractor and protocol beside the numbers.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import UserError
from ..metrics import features, registry
from ..runs import atomic
from .. import memory
from .common import SEED, add_insist, apply_insist, count


def add_parser(sub):
    e = sub.add_parser("eval", help="measure a run, or two sets of samples: FID, KID, IS, precision/recall, "
                       "density/coverage, modes")
    e.add_argument("run", nargs="?", help="a run folder (or give --real and --fake)")
    e.add_argument("--real", metavar="PATH", help="real samples: a folder of images, an .npz (array x) or a dataset name")
    e.add_argument("--fake", metavar="PATH", help="generated samples: a folder of images or an .npz (array x)")
    e.add_argument("--metrics", default="auto",
                   help=f"comma list of {','.join(registry.selectable())} (default auto: all that apply; toys: modes)")
    e.add_argument("-n", "--n", type=count(), default=None,
                   help="generated samples (default 10000 images, 2500 toy points; --fake: all of it)")
    e.add_argument("--n-real", type=count(), default=None, help="real samples used (default: all)")
    e.add_argument("--real-split", choices=("train", "holdout", "all"), default=None,
                   help="a run's real data: the part it trained on (default), its held-out part, or all")
    e.add_argument("--features", choices=features.names(), default=None,
                   help="feature extractor (default: mnist for 28x28 digits, else efficientnet-lite0)")
    e.add_argument("--inception-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth for --features inception")
    e.add_argument("--dinov2-weights", metavar="PATH", help="torch hub's dinov2_vitl14_pretrain.pth for --features dinov2")
    e.add_argument("--clip-weights", metavar="PATH", help="OpenAI's ViT-L-14-336px.pt (or ViT-B-32.pt, or an open_clip "
                   "file) for --features clip")
    e.add_argument("--protocol", choices=("legacy-tf", "clean"), default="legacy-tf",
                   help="how --features inception resizes to 299 (default legacy-tf, as the reference FID code)")
    e.add_argument("--range", metavar="LO,HI", default=None, type=_value_range,
                   help="--real/--fake npz arrays: their pixel values' range, e.g. --range=-1,1 or 0,255 (default: the file's "
                   "'range' entry, else the dtype's: integers 0,255, floats 0,1); outside it clipped and counted")
    e.add_argument("--resolution", type=count(), default=None, help="--real/--fake folders: image side (default: the first image's)")
    e.add_argument("--kid-subsets", type=count(), default=100)
    e.add_argument("--kid-size", type=count(2), default=1000)
    e.add_argument("--batch", type=count(), default=64, help="images per extractor batch")
    e.add_argument("--seed", type=SEED, default=0, help="seed of the generated samples and of KID's subsets")
    e.add_argument("--no-ema", action="store_true", help="evaluate the trained generator, not its moving average")
    e.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                   help="the run's newest checkpoint, or the best one kept by eval.best")
    e.add_argument("--device", default="auto")
    e.add_argument("--out", default=None, help="JSON file to add the result to (default: RUN/eval.json, or eval.json)")
    e.add_argument("--progress", choices=("auto", "bar", "lines", "off"), default="auto")
    add_insist(e)
    return e


def _value_range(text: str) -> str:
    from ..data.transform import parse_range
    try:
        parse_range(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None
    return text


def existing_results(path: Path) -> dict:
    """The evaluations already in ``path`` ({"evaluations": []} if there is none); a path the one --out rule
    refuses (a folder, a file where a folder must be), or a file that is not a ganforge eval file, is refused."""
    old = {"evaluations": []}
    atomic.check_out(path, force=True)             # --out adds to an eval file: an existing one is no mistake
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            raise UserError(f"{path} exists but is not JSON; --out adds to a ganforge eval file (JSON), so give "
                            "another --out") from None
        if not isinstance(old, dict) or not isinstance(old.get("evaluations"), list):
            raise UserError(f"{path} exists but is not a ganforge eval file; give another --out")
    return old


def append_result(path: Path, record: dict) -> None:
    """Add ``record`` to the evaluations in ``path`` (written atomically)."""
    old = existing_results(path)
    old["evaluations"].append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, old, indent=1)


def table(result: dict) -> str:
    """The metrics of one result as aligned lines, each as its registry record prints it."""
    rows = []
    for name, entry in result["metrics"].items():
        if name in registry.METRICS:
            rows += registry.METRICS[name].lines(entry)
    ex = result["extractor"]
    w = max(len(r[0]) for r in rows) if rows else 0
    lines = [f"{k:<{w}}  {v}" for k, v in rows]
    lines.append(f"features: {ex['extractor']}" + (f" (weights {ex['weights_hash']})" if ex["weights_hash"] else "")
                 + f", protocol: {ex['protocol']}; {result['n']} generated vs {result['real']['n']} real "
                 f"({result['real']['data']}, {result['real']['source']})")
    return "\n".join(lines)


def _settings(a, device):
    for flag in ("n", "n_real", "kid_subsets", "kid_size", "batch", "resolution"):
        v = getattr(a, flag)
        if v is not None and v < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {v}")
    from ..metrics.evaluate import WEIGHTED, Settings
    weights = None
    for name in WEIGHTED:
        given = getattr(a, f"{name}_weights")
        if given and a.features not in (name, None if name == "clip" else name):   # cmmd alone picks clip
            raise UserError(f"--{name}-weights applies to --features {name}")
        weights = weights or given
    metrics = () if a.metrics == "auto" else tuple(s.strip() for s in a.metrics.split(",") if s.strip())
    return Settings(metrics=metrics, features=a.features, weights=weights, protocol=a.protocol,
                    n_real=a.n_real, batch=a.batch, kid_subsets=a.kid_subsets, kid_size=a.kid_size, seed=a.seed,
                    device=device, progress=a.progress)


def _room(n: int, real, device) -> None:
    """-n samples' codes and features (Inception's 2048 are the widest; points are their own), with room to spare."""
    width = 2048 if real.x.dim() == 4 else real.x.shape[1]
    memory.check(memory.tensor_bytes(3 * n, (width,)), f"-n {n} samples (their codes and features)",
                 "ask for fewer (-n)", device)


def run(a) -> int:
    apply_insist(a)
    from ..device import pick_device
    from ..metrics.evaluate import Evaluator
    from ..metrics.sources import from_data_config, from_path
    device = pick_device(a.device)
    if a.run and a.fake:
        raise UserError("give a run folder or --fake PATH, not both")
    if not a.run and not (a.real and a.fake):
        raise UserError("give a run folder, or both --real PATH and --fake PATH")
    s = _settings(a, device)
    rec: dict = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "seed": a.seed}
    if a.run:
        from ..api import load_run
        run = load_run(a.run, device=str(device), which=a.checkpoint)
        if a.range and not a.real:
            raise UserError("--range applies to --real and --fake npz arrays; a run's own data takes data.range from "
                            "its config")
        real = from_path(a.real, a.resolution, value_range=a.range) if a.real else \
            from_data_config(run.config.data, a.real_split)
        n = a.n or (10000 if real.x.dim() == 4 else 2500)
        _room(n, real, device)
        fake = run.sampler(n, seed=a.seed, ema=not a.no_ema)
        rec.update({"run": str(run.path), "checkpoint": a.checkpoint, "step": run.step, "generator": "raw" if a.no_ema else "ema"})
        out = Path(a.out) if a.out else run.path / "eval.json"
    else:
        if a.real_split or a.no_ema or a.checkpoint != "latest":
            raise UserError("--real-split, --no-ema and --checkpoint apply to a run folder")
        if a.range and not any(str(p).endswith(".npz") for p in (a.real, a.fake)):
            raise UserError("--range applies to npz arrays; image files and datasets carry their own range")
        real = from_path(a.real, a.resolution, value_range=a.range)
        fk = from_path(a.fake, a.resolution, value_range=a.range)
        if (real.x.dim() == 4) != (fk.x.dim() == 4):
            raise UserError(f"--real holds {'images' if real.x.dim() == 4 else 'vectors'} but --fake does not")
        if real.x.dim() == 2 and real.x.shape[1] != fk.x.shape[1]:
            raise UserError(f"--real points have {real.x.shape[1]} dimensions, --fake points {fk.x.shape[1]}")
        n = a.n or len(fk.x)
        if n > len(fk.x):
            raise UserError(f"-n {n} is more than the {len(fk.x)} samples in {a.fake}")
        _room(n, real, device)
        fake = fk.x
        rec["fake"] = fk.name
        if fk.values:
            rec["values"] = {"fake": fk.values}
        out = Path(a.out) if a.out else Path("eval.json")
    existing_results(out)                    # refused before the work, not after it
    pic = None
    if "memorization" in s.metrics and real.x.dim() == 4:      # the closest pairs, drawn beside the eval file
        from ..metrics.memorization import draw_pairs, picture_path
        from ..runs.regular import check
        pic = atomic.check_out(picture_path(out), force=True)
        check(pic)                                               # a FIFO or device there is not replaced
    ev = Evaluator(real, s)
    conditional = bool(a.run and run.n_classes)     # the samples were drawn for labels 0, 1, ... in turn
    got = ev.extract_fake(fake, n) if conditional else None      # one pass of the extractor for both
    result = ev(fake, n, extracted=got)
    if conditional:
        from ..metrics.evaluate import class_scores
        result["metrics"]["conditional"] = {**class_scores(ev, fake, run.labels(n), got), **ev.extractor.describe(),
                                            "labels": "balanced, i % classes"}
    if pic is not None and draw_pairs(result["metrics"]["memorization"], fake, real.x, pic):
        result["metrics"]["memorization"]["picture"] = pic.name
    rec.update({"n": n, **result})
    if real.values:
        rec.setdefault("values", {})["real"] = real.values
    append_result(out, rec)
    print(table(rec))
    print(f"-> {out}")
    return 0
