"""``ganforge lab``: list the experiments, run one, or run them all and write docs/lab.

Results go to ``<out>/<name>/`` (default runs/lab/<name>). An existing
folder is never overwritten unless ``--force`` is given, and then only once
the new run has finished: the experiment runs in a temporary sibling folder
that replaces the old one at the end, so a failed or interrupted run leaves
the previous results whole.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import UserError
from ..runs import atomic
from .common import SEED


def add_parser(sub):
    lab = sub.add_parser("lab", help="the theory as experiments: list, run one, or run all (writes docs/lab)")
    lab.add_argument("what", metavar="list|all|NAME", help="list the experiments, run all of them, or run one")
    lab.add_argument("--out", default="runs/lab", help="parent folder of the experiments' folders (default runs/lab)")
    lab.add_argument("--size", choices=("default", "quick"), default="default",
                     help="default: the documented size (at most 2 minutes each on 2 cores); quick: a smoke test")
    lab.add_argument("--seed", type=SEED, default=0)
    lab.add_argument("--force", action="store_true", help="replace an existing result folder once the new run finishes")
    lab.add_argument("--docs", default=None, metavar="DIR",
                     help="also write the Markdown page(s) into DIR (ganforge lab all: default docs/lab)")
    lab.add_argument("--run", default=None, metavar="RUN",
                     help="ranking/evolution: use this trained image run instead of training a short one")
    return lab


def _run_one(name: str, out: Path, a) -> dict:
    from ..lab import get
    from ..lab.base import run_experiment
    module = get(name)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
    print(f"== {name}: {module.SUMMARY}", flush=True)
    options = {}
    if a.run and name in ("ranking", "evolution"):
        options["run"] = Path(a.run)
    try:
        target = out / name
        result = run_experiment(module, tmp, size=a.size, seed=a.seed, say=lambda s: print(f"   {s}", flush=True),
                                final=target, **options)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    verdict = {True: "held", False: "did NOT hold", None: "measured"}[result["held"]]
    print(f"   {verdict}: {result['headline']} ({result['seconds']:.0f} s) -> {out / name}", flush=True)
    if a.docs:
        from ..lab.docs import write_page
        print(f"   page: {write_page(result, module, out / name, Path(a.docs))}")
    return result


def run(a) -> int:
    from ..lab import EXPERIMENTS, available, get
    names = available()
    if a.what == "list":
        for name in names:
            print(f"{name:12s} {get(name).SUMMARY}")
        return 0
    if a.what not in ("all", *EXPERIMENTS):
        raise UserError(f"unknown experiment {a.what!r}; choose one of: {', '.join(names)} (or list, all)")
    if a.what != "all" and a.what not in names:
        raise UserError(f"experiment {a.what!r} is not built yet; available: {', '.join(names)}")
    if a.run and a.what not in ("ranking", "evolution"):
        raise UserError("--run applies to the ranking and evolution experiments only")
    if a.run and not (Path(a.run) / "config.yaml").is_file():
        raise UserError(f"--run {a.run} is not a ganforge run folder (no config.yaml)")
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    chosen = names if a.what == "all" else [a.what]
    for name in chosen:                 # a result folder is replaced only once the new run has finished
        atomic.check_out(out / name, a.force, folder=True)
    if a.what == "all" and a.docs is None:
        a.docs = "docs/lab"
    if a.docs:                          # the pages too: the one --out rule, before any experiment runs
        docs = atomic.check_out(Path(a.docs), True, flag="--docs", folder=True)
        for name in chosen:
            atomic.check_out(docs / f"{name}.md", a.force, flag="--docs")
            atomic.check_out(docs / "figures" / name, a.force, flag="--docs", folder=True)
        if a.what == "all":
            atomic.check_out(docs / "README.md", a.force, flag="--docs")
        docs.mkdir(parents=True, exist_ok=True)
    results = [_run_one(name, out, a) for name in chosen]
    if a.what == "all":
        from ..lab.docs import write_index
        print(f"table of every claim: {write_index(results, Path(a.docs))}")
        failed = [r["name"] for r in results if r["held"] is False]
        if failed:
            print(f"claims that did not hold here: {', '.join(failed)}", file=sys.stderr)
    return 0
