"""``ganforge truncation RUN``: the quality/diversity trade of the truncation trick, measured.

Brock et al. 2019 (BigGAN, section 3.1 and figure 17) and Karras et al.
2019 (StyleGAN's psi) trade variety for fidelity by sampling near the
centre of the latent space. For each truncation value the command draws
``-n`` samples from the run's EMA generator with the same seed and
measures them against the run's real data: FID, and precision (fidelity)
and recall (diversity) of Kynkaanniemi et al. 2019. It prints a table,
writes the rows to a JSON file, and a grid with one row of samples per
value (the same z in each column) to a PNG.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..metrics import features
from ..runs import atomic
from .. import memory
from .common import SEED, count


def add_parser(sub):
    t = sub.add_parser("truncation", help="sweep the truncation trick: FID, precision and recall per value "
                       "(families with truncation: biggan in z, stylegan in w)")
    t.add_argument("run")
    t.add_argument("--values", default="0.25,0.5,0.75,1.0,1.5,2.0",
                   help="comma list of truncation values (biggan: the |z| threshold; stylegan: psi)")
    t.add_argument("-n", type=count(), default=2000, help="samples per value (default 2000)")
    t.add_argument("--features", choices=features.names(), default=None,
                   help="feature extractor (default: mnist for 28x28 digits, else efficientnet-lite0)")
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--out", default=None, help="JSON file of the rows (default: RUN/truncation.json)")
    t.add_argument("--grid", default=None, help="PNG of one sample row per value (default: RUN/truncation.png)")
    t.add_argument("--cols", type=count(), default=8, help="samples per row of the grid")
    t.add_argument("--force", action="store_true", help="replace --out and --grid if they exist")
    return t


def values_of(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--values takes numbers separated by commas, got {text!r}") from None
    if not vals or any(not v > 0 for v in vals):
        raise UserError(f"--values must be numbers above 0, got {text!r}")
    return vals


def run(a) -> int:
    import torch

    from ..api import load_run
    from ..metrics.evaluate import Evaluator, Settings
    from ..metrics.sources import from_data_config
    from ..nets import FAMILIES
    from ..viz.grid import grid, save_png
    vals = values_of(a.values)
    if a.n < 10 or a.cols < 1:
        raise UserError("-n must be at least 10 and --cols at least 1")
    run = load_run(a.run)
    if not FAMILIES[run.config.model.name].supports_truncation:
        raise UserError(f"model {run.config.model.name} has no truncation trick; families that do: "
                        + ", ".join(k for k, f in FAMILIES.items() if f.supports_truncation))
    out = atomic.check_out(Path(a.out) if a.out else run.path / "truncation.json", a.force)
    png = atomic.check_out(Path(a.grid) if a.grid else run.path / "truncation.png", a.force, flag="--grid")
    memory.check(memory.tensor_bytes(3 * a.n, (2048,)), f"-n {a.n} samples (their codes and features)",
                 "ask for fewer (-n)")
    real = from_data_config(run.config.data)
    if real.x.dim() != 4:
        raise UserError(f"{run.path} is not an image run; the truncation sweep measures images")
    ev = Evaluator(real, Settings(metrics=("fid", "pr"), features=a.features, seed=a.seed))
    rows, strips = [], []
    for v in vals:
        m = ev(run.sampler(a.n, seed=a.seed, truncation=v), a.n)["metrics"]
        rows.append({"truncation": v, "fid": m["fid"]["value"], "precision": m["pr"]["precision"],
                     "recall": m["pr"]["recall"]})
        strips.append(run.sample(a.cols, seed=a.seed + 1, truncation=v))
        print(f"truncation {v:<5g} FID {rows[-1]['fid']:9.3f}  precision {rows[-1]['precision']:.3f}  "
              f"recall {rows[-1]['recall']:.3f}", flush=True)
    record = {"run": str(run.path), "step": run.step, "n": a.n, "seed": a.seed,
              "family": run.config.model.name, **ev.extractor.describe(), "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out, record, indent=1)
    save_png(grid(torch.cat(strips), nrow=a.cols), png)
    print(f"-> {out}, {png} (a row per value, top to bottom)")
    return 0
