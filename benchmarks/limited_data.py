"""Limited data: does augmentation (DiffAugment, ADA) help a GAN trained on 100, 500 or 2,000 digits? (issue 25)

    python benchmarks/limited_data.py                                   # everything below, several hours here
    python benchmarks/limited_data.py --sizes 100,500 --models dcgan --seeds 0,1 --steps 1500
    python benchmarks/limited_data.py --sizes 500 --models stylegan --seeds 0,1 --threads 1 --jobs 2

Each row trains a preset (``mnist-dcgan`` or ``mnist-stylegan``) on a
class-balanced subset of the 5,000 embedded MNIST digits (the same images in
every row of a size: subset seed 0) with ``augment=none``, ``diffaug`` or
``ada``, for the same number of steps (wall time reported beside it), in a
child process. Then 5,000 samples of its EMA generator are measured with the
digit classifier shipped in the package (``mnist`` features):

- FID against all 5,000 real digits;
- the share of samples the classifier reads with p >= 0.9 (``confident``);
- memorisation: the share of samples closer to a training image than the
  training images are to each other (Alaa et al. 2022), beside the same share
  for 490 real digits that are not in the subset, and metrics.memorization's
  z-test of the two (here against every training image: the subset is the
  reference, the unseen digits the baseline);
- leaks (Karras et al. 2020, Fig. 3): how often the classifier is more
  confident about a sample after it is flipped left-right or turned by 90°,
  beside the same share for real digits (digits are neither mirror- nor
  rotation-symmetric, so a G that learnt augmented digits shows more).

ADA runs with ``augment.speed_kimg`` (default here 50: p can cross [0, 1] in
50,000 images, 780 steps of 64; the paper's 500 is for runs of millions of
images). Writes benchmarks/results/limited_data.json (every run) and prints
a markdown table of means ± sd over seeds, with each seed's FID.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "limited_data.json"
PRESETS = {"dcgan": "mnist-dcgan", "stylegan": "mnist-stylegan"}


def subset(y: torch.Tensor, size: int, seed: int = 0, classes: int = 10) -> torch.Tensor:
    """``size`` indices, size/classes of each class 0..classes-1, drawn with a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    per = size // classes
    return torch.cat([torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:per]]
                      for c in range(classes)])


def augment_items(spec: str, speed_kimg: float) -> list:
    """``none``, ``diffaug``, ``ada`` (adaptive p) or ``ada:PIPE:P`` (ADA's PIPE groups at a fixed p) as config items."""
    name, *rest = spec.split(":")
    if name != "ada":
        return [f"augment={name}"]
    if not rest:
        return ["augment=ada", f"augment.speed_kimg={speed_kimg}"]
    return ["augment=ada", f"augment.pipe={rest[0]}", f"augment.p={rest[1]}"]


def leaks(net, x: torch.Tensor) -> dict:
    """How often the classifier reads a sample better after an x-flip or a quarter turn (Karras et al. 2020, Fig. 3).

    ``flip``, ``rot90``: the share read with more confidence after the flip, after a turn by 90°. ``flip_conf``,
    ``turn_conf``: the share read with p < 0.9 as it is but with p >= 0.9 after the flip, after one of the three
    turns: a drawn digit that is only legible mirrored or turned, which blurry samples rarely are by chance."""
    from ganforge.metrics.extract import extract

    def conf(v):
        return extract(net, v, len(v), 500, keep_features=False, keep_logits=True).logits.softmax(1).max(1).values

    base, flip = conf(x), conf(x.flip(-1))
    turns = torch.stack([conf(x.rot90(k, (2, 3))) for k in (1, 2, 3)]).max(0).values
    unsure = base < 0.9
    return {"flip": float((flip > base).double().mean()),
            "rot90": float((conf(x.rot90(1, (2, 3))) > base).double().mean()),
            "flip_conf": float((unsure & (flip >= 0.9)).double().mean()),
            "turn_conf": float((unsure & (turns >= 0.9)).double().mean())}


def orientation_probe(x: torch.Tensor, epochs: int = 4, seed: int = 0) -> torch.nn.Module:
    """A small CNN taught on real digits ``x`` which of the 8 flips and quarter turns was applied (Gidaris et al.
    2018's rotation prediction, with the mirror images): the leak measure that does not need legible samples."""
    from torch import nn
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 7 * 7, 8))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(perm), 128):
            k = torch.randint(0, 8, (len(perm[i:i + 128]),), generator=g)
            xb = torch.stack([dihedral(v, int(j)) for v, j in zip(x[perm[i:i + 128]], k)])
            loss = torch.nn.functional.cross_entropy(net(xb), k)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def dihedral(v: torch.Tensor, k: int) -> torch.Tensor:
    """Transform k of 8 of a C x H x W image: k % 4 quarter turns, after an x-flip when k >= 4 (0: unchanged)."""
    return (v.flip(-1) if k >= 4 else v).rot90(k % 4, (1, 2))


def upright(probe, x: torch.Tensor) -> float:
    """The share of images ``probe`` reads as neither flipped nor turned."""
    with torch.no_grad():
        k = torch.cat([probe(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float((k == 0).double().mean())


def measure(run_dir: Path, real: torch.Tensor, train_x: torch.Tensor, unseen: torch.Tensor, net, probe=None) -> dict:
    import ganforge
    from ganforge.metrics.extract import extract
    from ganforge.metrics.fid import FeatureStats, frechet_distance
    from ganforge.metrics.memorization import flags, two_proportion_z
    run = ganforge.load_run(run_dir)
    x = run.sample(5000, seed=0)
    got = extract(net, x, len(x), 500, keep_features=True, keep_logits=True)
    ref = extract(net, real, len(real), 500, keep_features=True)
    a, b = FeatureStats.of(got.features), FeatureStats.of(ref.features)
    ft = extract(net, train_x, len(train_x), 500, keep_features=True).features
    fu = extract(net, unseen, len(unseen), 500, keep_features=True).features
    fake, fresh = flags(got.features, ft)["flagged"], flags(fu, ft)["flagged"]   # against all the training images
    z, pv = two_proportion_z(int(fake.sum()), len(fake), int(fresh.sum()), len(fresh))
    last = run.metrics()[-1]
    return {"fid": frechet_distance(a.mean, a.cov, b.mean, b.cov),
            "confident": float((got.logits.softmax(1).max(1).values >= 0.9).double().mean()),
            "memorized": float(fake.double().mean()), "memorized_unseen": float(fresh.double().mean()),
            "copying": bool(pv < 0.01), "z": z,
            "leak": {**leaks(net, x[:2000]), **({"upright": upright(probe, x[:2000])} if probe else {})},
            "train_s": last["time"], "aug_p": last.get("aug_p"), "rt": last.get("rt")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100,500,2000")
    p.add_argument("--models", default="dcgan,stylegan")
    p.add_argument("--augments", default="none,diffaug,ada")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--speed-kimg", type=float, default=50.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (with --threads 1: two 1-thread runs train ~1.4x "
                   "the images/s of one 2-thread run here)")
    p.add_argument("--work", help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--table", action="store_true", help="print the table of the runs in the results, train none")
    a = p.parse_args(argv)
    from ganforge.data.embedded import load_mnist
    from ganforge.metrics.features import get_extractor
    x01, y, _ = load_mnist()
    real = x01 * 2 - 1
    net = get_extractor("mnist")
    probe = orientation_probe(real[:4000])
    real_leak = {**leaks(net, real[::2][:2000]), "upright": upright(probe, real[4000:])}   # held out from the probe
    rows = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    if a.table:
        table(rows, real_leak)
        return 0
    done = {(r["model"], r["size"], r["augment"], r["seed"], r["steps"]) for r in rows}
    print(f"machine: {machine()}; real digits: {real_leak}", file=sys.stderr)
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.work or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        todo = []
        for size in map(int, a.sizes.split(",")):
            idx = subset(y, size)
            keep = torch.ones(len(y), dtype=torch.bool)
            keep[idx] = False
            path = Path(tmp) / f"digits-{size}.npz"
            np.savez(path, x=(x01[idx, 0] * 255).round().to(torch.uint8).numpy(), y=y[idx].numpy())
            todo += [(model, size, aug, seed, path, idx, keep) for model in a.models.split(",")
                     for aug in a.augments.split(",") for seed in map(int, a.seeds.split(","))
                     if (model, size, aug, seed, a.steps) not in done]

        def one(job) -> int:
            model, size, aug, seed, path, idx, keep = job
            out = Path(tmp) / f"{model}-{size}-{aug.replace(':', '-')}-{seed}"
            t0 = time.time()
            r = subprocess.run([sys.executable, "-m", "ganforge", "train", PRESETS[model],
                                f"data=npz:{path}", f"steps={a.steps}", f"seed={seed}", "eval.metrics=none",
                                "log.progress=off", f"name={out.name}", "--out", tmp,
                                *([f"threads={a.threads}"] if a.threads else []), *augment_items(aug, a.speed_kimg)],
                               capture_output=True, text=True)
            if r.returncode:
                print(r.stderr[-2000:], file=sys.stderr)
                return r.returncode
            res = {"model": model, "size": size, "augment": aug, "seed": seed, "steps": a.steps,
                   "wall_s": round(time.time() - t0, 1), **({"threads": a.threads} if a.threads else {}), "machine": machine(),
                   **measure(out, real, real[idx], real[keep][::10], net, probe)}
            with lock:
                rows.append(res)
                print(json.dumps(res), file=sys.stderr)
                RESULTS.parent.mkdir(exist_ok=True)
                atomic.write_text(RESULTS, json.dumps({"machine": machine(), "speed_kimg": a.speed_kimg,
                                               "real_leak": real_leak, "runs": rows}, indent=1) + "\n")
            return 0
        with ThreadPoolExecutor(a.jobs) as pool:
            codes = list(pool.map(one, todo))
        if any(codes):
            return max(codes)
    table(rows, real_leak)
    return 0


def ms(v: list) -> str:
    """Mean ± sd of ``v`` (its one value when alone), one decimal."""
    return f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def table(rows: list, real_leak: dict) -> None:
    def leak(rs, *keys):
        return " / ".join(ms([100 * r["leak"][k] for r in rs]) if all(k in r["leak"] for r in rs) else "–"
                          for k in keys)

    order = ["none", "diffaug", "ada"]
    print("| model | images | steps | augment | FID (mean ± sd) | FID per seed | confident % | "
          "memorized % (unseen %) | more confident flipped / turned 90° % | legible only flipped / turned % | "
          "upright % | train s |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["model"], r["size"], r["steps"], r["augment"]) for r in rows},
                  key=lambda k: (k[0], k[1], k[2], order.index(k[3]) if k[3] in order else 9, k[3]))
    for model, size, steps, aug in keys:
        rs = [r for r in rows if (r["model"], r["size"], r["steps"], r["augment"]) == (model, size, steps, aug)]
        per_seed = ", ".join(format(r["fid"], ".1f") for r in rs)
        print(f"| {model} | {size} | {steps} | {aug} | {ms([r['fid'] for r in rs])} | "
              f"{per_seed} | {ms([100 * r['confident'] for r in rs])} | "
              f"{ms([100 * r['memorized'] for r in rs])} ({ms([100 * r['memorized_unseen'] for r in rs])}) | "
              f"{leak(rs, 'flip', 'rot90')} | {leak(rs, 'flip_conf', 'turn_conf')} | {leak(rs, 'upright')} | {ms([r['train_s'] for r in rs])} |")
    print("\nreal digits: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in real_leak.items()))


if __name__ == "__main__":
    sys.exit(main())
