"""The ``ganforge`` command: train, sample, eval, data, config, lab, truncation, interpolate, stylemix,
translate, report, compare, serve, export.

User mistakes print one line, ``ganforge: error: ...``, and exit with code 2;
Ctrl-C or SIGTERM during training stops cleanly after writing a checkpoint
(exit 130); a run that keeps producing NaN or Inf stops with exit code 3
(train.guard).
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .errors import DISK_ERRORS, UserError



class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage too)
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _split_args(items: list[str]) -> tuple[str | None, list[str]]:
    """The optional CONFIG (first item without '=') and the key=value overrides."""
    preset, overrides = None, []
    for i, item in enumerate(items):
        if "=" in item:
            overrides.append(item)
        elif i == 0 and preset is None:
            preset = item
        else:
            raise UserError(f"unexpected argument {item!r}: after the config, give key=value overrides")
    return preset, overrides


def check_out(out: Path, force: bool) -> None:
    """--out may be written: no folder there, no existing file unless --force, no file where a folder must be."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name")
    if out.exists() and not force:
        raise UserError(f"{out} exists; choose another --out or add --force to replace it")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {out} cannot be written: {parent} is a file, not a folder")
            break


def _torchrun(n: int, argv: list[str]) -> int:
    """Relaunch this train command as n processes under torchrun (gloo on CPUs, NCCL on GPUs)."""
    import os
    import subprocess
    rest, skip = [], False
    for arg in argv:            # drop --nproc N / --nproc=N; torchrun's workers get the rest
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "ganforge", *rest]
    env = dict(os.environ, GANFORGE_LAUNCHED="1")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    # torchrun runs in a session of its own, so Ctrl-C reaches only this process, which passes it to the
    # workers alone: they stop at one step, write a checkpoint and exit 0, and torchrun ends quietly
    # (a signal to torchrun itself would end in its traceback).
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    stopped = []

    def forward(signum, frame):
        stopped.append(signum)
        for pid in _children(proc.pid):
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 130 if stopped and code == 0 else code


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    import os
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def cmd_train(a) -> int:
    import os
    from .train.run import start
    if a.nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {a.nproc}")
    preset, overrides = _split_args(a.items)
    if a.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from .train.distributed import Dist, check_batch, gpus_for
        from .train.run import plan_run
        cfg, _, _ = plan_run(preset, tuple(overrides), Path(a.out), Path(a.resume) if a.resume else None)
        check_batch(cfg.batch_size, Dist(world=a.nproc), getattr(cfg.model.arch, "pack", 1))   # mistakes: one line here
        gpus_for(cfg.device, a.nproc)
        return _torchrun(a.nproc, a.argv)
    trainer, resuming = start(preset, tuple(overrides), Path(a.out), Path(a.resume) if a.resume else None)
    cfg, run_dir = trainer.cfg, trainer.run_dir
    if resuming and trainer.dist.main:
        trainer.progress.say(f"resuming {run_dir} from step {trainer.step}" if trainer.resumed
                             else f"{run_dir} has no checkpoint yet: starting it from step 0")
    elif trainer.dist.main:
        trainer.progress.say(f"run {run_dir}: {cfg.model.name} on {cfg.data.name} ({len(trainer.data)} samples), "
                             f"loss {cfg.loss}, {cfg.steps} steps, {trainer.device} {cfg.precision}"
                             + (f", {trainer.dist.world} processes" if trainer.dist.active else ""))
    result = trainer.run()
    if trainer.dist.main:
        from .reportcmd import report_after_training
        report_after_training(run_dir)
    quiet = os.environ.get("GANFORGE_LAUNCHED") == "1"    # under --nproc: the launcher reports the stop
    if not trainer.dist.main:
        rc = 0 if quiet or not result["stopped"] else 130
    elif result["stopped"]:
        again = f" --nproc {trainer.dist.world}" if trainer.dist.active else ""
        print(f"stopped at step {result['step']}; checkpoint written. Continue with: ganforge train --resume {run_dir}"
              f"{again}", file=sys.stderr)
        rc = 0 if quiet else 130
    else:
        last = sorted((run_dir / "samples").glob("step-*.png"))
        print(f"done: {run_dir} at step {result['step']}" + (f"; samples: {last[-1]}" if last else ""))
        rc = 0
    if trainer.dist.active:
        trainer.dist.leave(rc)
    return rc


def cmd_sample(a) -> int:
    import numpy as np
    from .api import load_run
    from .viz.grid import grid, save_png
    from .viz.scatter import toy_png
    out = Path(a.out)
    if out.suffix not in (".png", ".npz"):
        raise UserError(f"--out must end in .png (a grid) or .npz (array x), got {out.name}")
    check_out(out, a.force)
    if a.n < 1:
        raise UserError(f"-n must be at least 1, got {a.n}")
    if sum(v is not None and v is not False for v in (a.label, a.per_class, a.interpolate)) > 1:
        raise UserError("choose one of --class, --per-class and --interpolate")
    run = load_run(a.run)
    x, n, nrow = _conditional_samples(run, a) if (a.label is not None or a.per_class or a.interpolate) else \
        (run.sample(a.n, seed=a.seed, ema=not a.no_ema, truncation=a.truncation), a.n, a.nrow)
    a.n, a.nrow = n, nrow
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        np.savez_compressed(out, x=x.numpy())
    elif x.dim() == 4:
        save_png(grid(x, nrow=a.nrow), out)
    else:
        from .data import load_dataset
        real = load_dataset(run.config.data).x[: a.n]
        out.write_bytes(toy_png(x, real, f"{run.path.name} step {run.step}"))
    print(f"wrote {a.n} samples to {out}")
    return 0


def _conditional_samples(run, a):
    """(samples, n, images per row) for --class K, --per-class (a row per class) or --interpolate A,B
    (rows of fixed z whose label moves from class A to class B in --nrow steps)."""
    import torch

    from .rng import Stream
    if not run.n_classes:
        raise UserError(f"{run.path} is not class-conditional: --class, --per-class and --interpolate need a run "
                        "trained with model.conditional=true")
    kw = {"seed": a.seed, "ema": not a.no_ema, "truncation": a.truncation}
    if a.label is not None:
        return run.sample(a.n, label=a.label, **kw), a.n, a.nrow
    cols = a.nrow or 8
    if a.per_class:
        n = run.n_classes * cols
        return run.sample(n, label=torch.arange(run.n_classes).repeat_interleave(cols), **kw), n, cols
    parts = a.interpolate.split(",")
    if len(parts) != 2:
        raise UserError(f"--interpolate takes two classes A,B, got {a.interpolate!r}")
    i, j = (run.class_index(p.strip()) for p in parts)
    rows = max(1, a.n // cols)
    z = torch.randn(rows, run.config.model.z_dim, generator=Stream(a.seed, "sample").next()).repeat_interleave(cols, 0)
    t = torch.linspace(0, 1, cols).repeat(rows)
    w = torch.zeros(rows * cols, run.n_classes)
    w[:, i] += 1 - t
    w[:, j] += t
    return run.sample(rows * cols, label=w, z=z, **kw), rows * cols, cols


def cmd_eval(a) -> int:
    from .evalcmd import run_eval
    return run_eval(a)


def cmd_data(a) -> int:
    from .data import load_dataset, names
    if a.action == "list":
        for name, desc in names().items():
            print(f"{name:16s} {desc}")
        return 0
    if not a.name:
        raise UserError("ganforge data show needs a dataset name, e.g. ganforge data show mnist --out grid.png")
    from .config import load_config
    from .viz.grid import grid, save_png
    from .viz.scatter import toy_png
    cfg = load_config(None, tuple([f"data={a.name}"] + [f"data.{o}" for o in a.options]))
    out = Path(a.out)
    if out.suffix != ".png":
        raise UserError(f"--out must be a .png file, got {out.name}")
    check_out(out, a.force)
    ds = load_dataset(cfg.data)
    out.parent.mkdir(parents=True, exist_ok=True)
    if ds.kind == "image":
        import torch
        if ds.y is not None and a.by_class:
            idx = torch.cat([torch.nonzero(ds.y == c).flatten()[: a.n // len(ds.classes) or 1]
                             for c in range(len(ds.classes))])
        else:
            idx = torch.arange(min(a.n, len(ds)))
        if ds.translation:             # image-to-image: rows of A beside B (paired: each input beside its target)
            from .train.translate import as_rgb
            ia = idx if ds.paired else torch.arange(min(len(idx), len(ds.a)))
            idx = idx[:len(ia)]
            c = max(ds.a.shape[1], ds.x.shape[1])
            save_png(grid(torch.stack([as_rgb(ds.a[ia], c), as_rgb(ds.x[idx], c)], 1).flatten(0, 1), nrow=10), out)
        else:
            save_png(grid(ds.x[idx]), out)
    else:
        out.write_bytes(toy_png(ds.x[:0], ds.x[: a.n], a.name))
    shape = "x".join(str(s) for s in ds.shape)
    if ds.translation:
        shape = f"{'x'.join(str(s) for s in ds.shape_a)} (A) and {shape} (B), {'paired' if ds.paired else 'unpaired'}"
    print(f"{ds.name}: {len(ds)} samples of shape {shape}" + (f", {len(ds.classes)} classes" if ds.classes else "")
          + f"; wrote {out}")
    return 0


def cmd_config(a) -> int:
    from .config import dump, key_table, load_config
    if a.keys:
        sys.stdout.write(key_table())
        return 0
    preset, overrides = _split_args(a.items)
    sys.stdout.write(dump(load_config(preset, tuple(overrides))))
    return 0


def cmd_lab(a) -> int:
    from .labcmd import run_lab
    return run_lab(a)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganforge", description="Train, measure and understand GANs.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a GAN (no arguments: DCGAN on the embedded MNIST digits)")
    t.add_argument("items", nargs="*", metavar="CONFIG|key=value", help="a preset or YAML file, then overrides")
    t.add_argument("--out", default="runs", help="parent folder of run folders (default: runs)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    t.add_argument("--nproc", type=int, default=1,
                   help="train data-parallel on N processes (launches torchrun; batch_size is the global batch)")
    t.set_defaults(fn=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a run's generator")
    s.add_argument("run")
    s.add_argument("-n", type=int, default=64)
    s.add_argument("--out", required=True, help="a .png grid or an .npz file (array x)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-ema", action="store_true", help="use the trained generator, not its moving average")
    s.add_argument("--truncation", type=float, default=None, help="truncation: biggan draws z within [-T, T]; stylegan pulls w towards its mean by psi")
    s.add_argument("--nrow", type=int, default=None, help="images per row of the grid")
    s.add_argument("--class", dest="label", default=None, metavar="K",
                   help="conditional runs: samples of class K (an index or a class name)")
    s.add_argument("--per-class", action="store_true", help="conditional runs: a grid with one row per class "
                   "(--nrow images each, default 8)")
    s.add_argument("--interpolate", metavar="A,B", default=None, help="conditional runs: rows of fixed z whose "
                   "class moves from A to B in --nrow steps (default 8); -n // nrow rows")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(fn=cmd_sample)

    e = sub.add_parser("eval", help="measure a run, or two sets of samples: FID, KID, IS, precision/recall, "
                       "density/coverage, modes")
    e.add_argument("run", nargs="?", help="a run folder (or give --real and --fake)")
    e.add_argument("--real", metavar="PATH", help="real samples: a folder of images, an .npz (array x) or a dataset name")
    e.add_argument("--fake", metavar="PATH", help="generated samples: a folder of images or an .npz (array x)")
    e.add_argument("--metrics", default="auto",
                   help="comma list of fid,kid,is,pr,dc,modes (default auto: all that apply; toys: modes)")
    e.add_argument("-n", "--n", type=int, default=None,
                   help="generated samples (default 10000 images, 2500 toy points; --fake: all of it)")
    e.add_argument("--n-real", type=int, default=None, help="real samples used (default: all)")
    e.add_argument("--real-split", choices=("train", "holdout", "all"), default=None,
                   help="a run's real data: the part it trained on (default), its held-out part, or all")
    e.add_argument("--features", choices=("inception", "efficientnet-lite0", "mnist"), default=None,
                   help="feature extractor (default: mnist for 28x28 digits, else efficientnet-lite0)")
    e.add_argument("--inception-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth for --features inception")
    e.add_argument("--protocol", choices=("legacy-tf", "clean"), default="legacy-tf",
                   help="how --features inception resizes to 299 (default legacy-tf, as the reference FID code)")
    e.add_argument("--resolution", type=int, default=None, help="--real/--fake folders: image side (default: the first image's)")
    e.add_argument("--kid-subsets", type=int, default=100)
    e.add_argument("--kid-size", type=int, default=1000)
    e.add_argument("--batch", type=int, default=64, help="images per extractor batch")
    e.add_argument("--seed", type=int, default=0, help="seed of the generated samples and of KID's subsets")
    e.add_argument("--no-ema", action="store_true", help="evaluate the trained generator, not its moving average")
    e.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                   help="the run's newest checkpoint, or the best one kept by eval.best")
    e.add_argument("--device", default="auto")
    e.add_argument("--out", default=None, help="JSON file to add the result to (default: RUN/eval.json, or eval.json)")
    e.add_argument("--progress", choices=("auto", "bar", "lines", "off"), default="auto")
    e.set_defaults(fn=cmd_eval)

    d = sub.add_parser("data", help="list datasets or show one as a grid")
    d.add_argument("action", choices=("list", "show"))
    d.add_argument("name", nargs="?")
    d.add_argument("options", nargs="*", metavar="key=value", help="data options, e.g. resolution=32")
    d.add_argument("--out", default="data.png")
    d.add_argument("-n", type=int, default=100)
    d.add_argument("--by-class", action=argparse.BooleanOptionalAction, default=True,
                   help="equal numbers of each class (default on)")
    d.add_argument("--force", action="store_true")
    d.set_defaults(fn=cmd_data)

    from .labcmd import add_parser as add_lab
    add_lab(sub)
    from .sweepcmd import add_parser as add_truncation
    add_truncation(sub)
    from .latentcmd import add_parsers as add_latent
    add_latent(sub)
    from .translatecmd import add_parser as add_translate
    add_translate(sub)
    from .reportcmd import add_parsers as add_report
    add_report(sub)
    from .servecmd import add_parser as add_serve
    add_serve(sub)
    from .exportcmd import add_parser as add_export
    add_export(sub)

    c = sub.add_parser("config", help="print the resolved config of a preset with overrides")
    c.add_argument("items", nargs="*", metavar="CONFIG|key=value")
    c.add_argument("--keys", action="store_true", help="list every key with its default, range and meaning")
    c.set_defaults(fn=cmd_config)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (ganforge train toy-grid --out x steps=5)
    if extra and hasattr(args, "items") and all("=" in e and not e.startswith("-") for e in extra):
        args.items += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.fn(args)
    except UserError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno in DISK_ERRORS:
            print(f"ganforge: error: {e.strerror} writing {e.filename or 'a file'}; nothing earlier was overwritten",
                  file=sys.stderr)
            return 2
        raise
