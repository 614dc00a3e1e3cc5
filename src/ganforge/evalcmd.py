"""``ganforge eval``: measure a run, or two sets of samples, and keep the numbers with their provenance.

``ganforge eval RUN`` draws samples from the run's (EMA) generator and
compares them with the run's real data; ``ganforge eval --real A --fake B``
compares two folders or npz files (as torch-fidelity's command line does).
The result is appended to a JSON file (``RUN/eval.json`` or ``eval.json``:
``{"evaluations": [...]}``, oldest first, so nothing earlier is lost) and
printed as a table with the extractor and protocol beside the numbers.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .errors import UserError
from .metrics.evaluate import Evaluator, Settings


def existing_results(path: Path) -> dict:
    """The evaluations already in ``path`` ({"evaluations": []} if there is none); a file that is not a ganforge
    eval file, or a file where a folder must be, is refused."""
    old = {"evaluations": []}
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {path} cannot be written: {parent} is a file, not a folder")
            break
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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(old, indent=1) + "\n")
    os.replace(tmp, path)


def table(result: dict) -> str:
    """The metrics of one result as aligned lines."""
    rows = []
    m = result["metrics"]
    if "fid" in m:
        rows.append(("FID", f"{m['fid']['value']:.4f}"))
    if "kid" in m:
        rows.append(("KID", f"{m['kid']['value']:.6f} ± {m['kid']['std']:.6f}"))
    if "is" in m:
        rows.append(("IS", f"{m['is']['value']:.4f} ± {m['is']['std']:.4f}"))
    if "pr" in m:
        rows += [("precision", f"{m['pr']['precision']:.4f}"), ("recall", f"{m['pr']['recall']:.4f}")]
    if "dc" in m:
        rows += [("density", f"{m['dc']['density']:.4f}"), ("coverage", f"{m['dc']['coverage']:.4f}")]
    if "modes" in m:
        d = m["modes"]
        text = f"{d['modes']}/{d['of']}, KL from uniform {d['kl']:.4f}"
        if "hq" in d:
            text += f", high quality {d['hq']:.1f}%"
        if "confident" in d:
            text += f", confident {100 * d['confident']:.1f}%"
        rows.append(("modes", text))
        if "counts" in d and d["of"] <= 10:
            rows.append(("classes", " ".join(f"{i}:{c}" for i, c in enumerate(d["counts"]))))
        if "kl_reverse" in d:
            f = d["floor"]
            rows += [("KL(g||data)", f"{d['kl_reverse']:.4f} ± {d['kl_reverse_se']:.4f} (estimator floor {f['kl_reverse']:+.4f})"),
                     ("KL(data||g)", f"{d['kl_forward']:.4f} ± {d['kl_forward_se']:.4f} (floor {f['kl_forward']:+.4f})"),
                     ("JSD", f"{d['jsd']:.4f} ± {d['jsd_se']:.4f} (floor {f['jsd']:+.4f}; log 2 = 0.6931)")]
    if "conditional" in m:
        c = m["conditional"]
        if "class_acc" in c:
            rows.append(("class accuracy", f"{100 * c['class_acc']:.2f}% (digit classifier on samples drawn per class)"))
        if "fid_class" in c:
            rows.append(("per-class FID", f"{c['fid_class']:.4f} (mean over classes)"))
    ex = result["extractor"]
    w = max(len(r[0]) for r in rows) if rows else 0
    lines = [f"{k:<{w}}  {v}" for k, v in rows]
    lines.append(f"features: {ex['extractor']}" + (f" (weights {ex['weights_hash']})" if ex["weights_hash"] else "")
                 + f", protocol: {ex['protocol']}; {result['n']} generated vs {result['real']['n']} real "
                 f"({result['real']['data']}, {result['real']['source']})")
    return "\n".join(lines)


def _settings(a, device) -> Settings:
    for flag in ("n", "n_real", "kid_subsets", "kid_size", "batch", "resolution"):
        v = getattr(a, flag)
        if v is not None and v < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {v}")
    if a.inception_weights and a.features != "inception":
        raise UserError("--inception-weights applies to --features inception")
    metrics = () if a.metrics == "auto" else tuple(s.strip() for s in a.metrics.split(",") if s.strip())
    return Settings(metrics=metrics, features=a.features, inception_weights=a.inception_weights, protocol=a.protocol,
                    n_real=a.n_real, batch=a.batch, kid_subsets=a.kid_subsets, kid_size=a.kid_size, seed=a.seed,
                    device=device, progress=a.progress)


def run_eval(a) -> int:
    from .metrics.sources import from_data_config, from_path
    from .train.setup import pick_device
    device = pick_device(a.device)
    if a.run and a.fake:
        raise UserError("give a run folder or --fake PATH, not both")
    if not a.run and not (a.real and a.fake):
        raise UserError("give a run folder, or both --real PATH and --fake PATH")
    s = _settings(a, device)
    rec: dict = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "seed": a.seed}
    if a.run:
        from .api import load_run
        run = load_run(a.run, device=str(device), which=a.checkpoint)
        real = from_path(a.real, a.resolution) if a.real else from_data_config(run.config.data, a.real_split)
        n = a.n or (10000 if real.x.dim() == 4 else 2500)
        fake = run.sampler(n, seed=a.seed, ema=not a.no_ema)
        rec.update({"run": str(run.path), "checkpoint": a.checkpoint, "step": run.step, "generator": "raw" if a.no_ema else "ema"})
        out = Path(a.out) if a.out else run.path / "eval.json"
    else:
        if a.real_split or a.no_ema or a.checkpoint != "latest":
            raise UserError("--real-split, --no-ema and --checkpoint apply to a run folder")
        real = from_path(a.real, a.resolution)
        fk = from_path(a.fake, a.resolution)
        if (real.x.dim() == 4) != (fk.x.dim() == 4):
            raise UserError(f"--real holds {'images' if real.x.dim() == 4 else 'vectors'} but --fake does not")
        if real.x.dim() == 2 and real.x.shape[1] != fk.x.shape[1]:
            raise UserError(f"--real points have {real.x.shape[1]} dimensions, --fake points {fk.x.shape[1]}")
        n = a.n or len(fk.x)
        if n > len(fk.x):
            raise UserError(f"-n {n} is more than the {len(fk.x)} samples in {a.fake}")
        fake = fk.x
        rec["fake"] = fk.name
        out = Path(a.out) if a.out else Path("eval.json")
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a folder; give a .json file")
    existing_results(out)                    # refused before the work, not after it
    ev = Evaluator(real, s)
    result = ev(fake, n)
    if a.run and run.n_classes:              # class-conditional: the samples were drawn for labels 0, 1, ... in turn
        from .metrics.evaluate import class_scores
        result["metrics"]["conditional"] = {**class_scores(ev, fake, run.labels(n)), **ev.extractor.describe(),
                                            "labels": "balanced, i % classes"}
    rec.update({"n": n, **result})
    append_result(out, rec)
    print(table(rec))
    print(f"-> {out}")
    return 0
