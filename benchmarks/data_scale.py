"""Datasets larger than memory, measured: pack, memory, time to the first step, input throughput, waiting.

Makes N synthetic RGB photos-like JPEGs (smooth gradients, ellipses, grain; the images are generated here, as
nothing can be downloaded), then:
  1. ``ganforge data pack`` them into a zip at --side px: seconds, archive size, peak memory;
  2. ``ganforge train model=dcgan data=zip:... data.resolution=SIDE steps=STEPS`` with data.cache=none (streamed
     by worker processes) and data.cache=ram (decoded once into uint8): peak memory of the process tree
     (proportional set size, so pages the forked workers share count once; and the trainer's own peak RSS),
     seconds from launch to the first step, images/s, and the share of the time the step waited for data;
  3. the same at --baseline-n images from a folder: uint8 (this code) against the float32 store of the code
     before it (--baseline-src, a checkout's src/ folder), whose memory grows as 4 bytes per pixel;
  4. the loader alone (decode + convert + mirror, batch 64) with 0, 1 and 2 workers against the images/s the
     64 px and 128 px DCGAN steps take.
Results: benchmarks/results/data_scale.json.

    python benchmarks/data_scale.py --n 100000 --side 128 --work /tmp/scale --baseline-src /tmp/old/src
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ganforge.runs import atomic  # noqa: E402
from toy_modes import machine  # noqa: E402  (the one machine line of the benchmarks)

RESULTS = Path(__file__).parent / "results" / "data_scale.json"


def _photo(i: int):
    """A 160x120 landscape picture: a two-colour gradient, 2 to 5 ellipses, sensor-like grain."""
    from PIL import Image
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32) / 160
    a, b = rng.random(3) * 255, rng.random(3) * 255
    t = (xx * rng.random() + yy * rng.random())[..., None] / 2
    img = a * (1 - t) + b * t
    for _ in range(rng.integers(2, 6)):
        cx, cy, rx, ry = rng.random(4) * [1, 1, 0.4, 0.4] + [0, 0, 0.05, 0.05]
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        img[inside] = rng.random(3) * 255
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def _write(job) -> None:
    folder, i = job
    _photo(i).save(Path(folder) / f"{i // 1000:04d}" / f"{i:07d}.jpg", quality=90)


def make_photos(folder: Path, n: int) -> float:
    """N JPEGs of 160x120 (the packer centre-crops and resizes them) in folders of 1,000."""
    have = sum(1 for _ in folder.rglob("*.jpg")) if folder.is_dir() else 0
    if have == n:
        return 0.0
    t0 = time.time()
    for k in range((n + 999) // 1000):
        (folder / f"{k:04d}").mkdir(parents=True, exist_ok=True)
    from multiprocessing import Pool
    with Pool(os.cpu_count()) as pool:
        pool.map(_write, [(str(folder), i) for i in range(n)], chunksize=256)
    return time.time() - t0


def _tree(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo += kids.get(q, [])
    return out


def _kb(pid: int, file: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list, env: dict | None = None, first: Path | None = None) -> dict:
    """Run ``cmd``: wall seconds, the peak proportional set size of its process tree, the peak RSS of the
    process itself (GB), and the seconds until ``first`` (a file) appeared."""
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
    peak_pss = peak_rss = 0
    first_at = None
    while p.poll() is None:
        pss = sum(_kb(q, "smaps_rollup", "Pss:") for q in _tree(p.pid))
        peak_pss = max(peak_pss, pss)
        peak_rss = max(peak_rss, _kb(p.pid, "status", "VmHWM:"))
        if first is not None and first_at is None and first.is_file() and first.stat().st_size:
            first_at = time.time() - t0
        time.sleep(0.2)
    out, err = p.communicate()
    if p.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{err[-3000:]}")
    return {"wall_s": round(time.time() - t0, 1), "peak_tree_pss_gb": round(peak_pss / 1e6, 3),
            "peak_rss_gb": round(peak_rss / 1e6, 3), "first_step_s": None if first_at is None else round(first_at, 1),
            "stdout": out[-300:], "stderr": err[-300:]}


def train(work: Path, name: str, data: str, side: int, steps: int, extra=(), env=None, batch: int = 64) -> dict:
    run = work / "runs" / name
    if run.exists():
        import shutil
        shutil.rmtree(run)
    cmd = [sys.executable, "-m", "ganforge", "train", "model=dcgan", f"data={data}", f"data.resolution={side}",
           f"steps={steps}", f"batch_size={batch}", "eval.metrics=none", "log.every=1", "log.progress=off",
           f"log.checkpoint_every={steps}", f"log.samples_every={steps}", f"name={name}", "--out", str(work / "runs"),
           *extra]
    r = measure(cmd, env, first=run / "metrics.jsonl")
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    steady = rows[len(rows) // 4:]
    r["img_s"] = round(float(np.median([x["img_s"] for x in steady])), 1)
    r["first_step_s_alone"] = round(rows[0]["time"], 1)     # the first step itself; before it: start-up
    r["ready_s"] = None if r["first_step_s"] is None else round(r["first_step_s"] - rows[0]["time"], 1)
    if "data_wait" in rows[0]:
        r["data_wait"] = round(float(np.mean([x["data_wait"] for x in steady])), 4)
    return r


def loader_rate(archive: Path, side: int, workers: int, cache: str = "none", batches: int = 40) -> float:
    """Images/s of the loader alone: decode (streamed) or read (cached), convert, mirror; batch 64."""
    from ganforge.data import load_dataset
    from ganforge.data.batches import Batches
    from ganforge.data.options import DataConfig
    ds = load_dataset(DataConfig(name=f"zip:{archive}", resolution=side, cache=cache))
    b = Batches(ds, 64, seed=0, mirror=True, workers=workers)
    for _ in range(3):
        b.next()
    t0 = time.perf_counter()
    for _ in range(batches):
        b.next()
    rate = 64 * batches / (time.perf_counter() - t0)
    b.close()
    return round(rate, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--side", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--baseline-n", type=int, default=10_000)
    p.add_argument("--baseline-src", help="src/ folder of ganforge before the uint8 store (e.g. a git worktree)")
    p.add_argument("--work", required=True, help="a folder with room for the photos and the archive")
    p.add_argument("--only", default="pack,train,baseline,loader")
    a = p.parse_args(argv)
    work = Path(a.work)
    parts = a.only.split(",")
    res = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    res.update({"machine": machine(), "n": a.n, "side": a.side, "steps": a.steps})
    photos, archive = work / "photos", work / f"ds-{a.n}-{a.side}.zip"
    made = make_photos(photos, a.n)
    print(f"photos: {a.n} in {photos} ({made:.0f} s)", file=sys.stderr)

    def save():
        RESULTS.parent.mkdir(exist_ok=True)
        atomic.write_text(RESULTS, json.dumps(res, indent=1) + "\n")

    if "pack" in parts:
        archive.unlink(missing_ok=True)
        r = measure([sys.executable, "-m", "ganforge", "data", "pack", str(photos), "--out", str(archive),
                     "--resolution", str(a.side), "--progress", "off"])
        res["pack"] = {**r, "archive_gb": round(archive.stat().st_size / 1e9, 3),
                       "images_per_s": round(a.n / r["wall_s"], 1)}
        print("pack", res["pack"], file=sys.stderr)
        save()
    if "train" in parts:
        runs = {"train_none": (a.side, a.steps, "none", 64), "train_ram": (a.side, a.steps // 3, "ram", 64),
                "train_none_b32": (a.side, a.steps // 3, "none", 32), "train_none_64": (64, a.steps // 2, "none", 64)}
        for key, (side, steps, cache, batch) in runs.items():
            res[key] = train(work, key, f"zip:{archive}", side, steps, [f"data.cache={cache}"], batch=batch)
            res[key].update(side=side, steps=steps, batch=batch)
            print(key, res[key], file=sys.stderr)
            save()
    if "baseline" in parts:
        small = work / f"photos-{a.baseline_n}"
        if not small.is_dir():
            small.mkdir()
            for f in sorted(photos.rglob("*.jpg"))[: a.baseline_n]:
                (small / f.name).symlink_to(f)
        steps = max(20, a.steps // 4)
        res["uint8_folder"] = {**train(work, "folder-uint8", f"folder:{small}", a.side, steps), "steps": steps}
        if a.baseline_src:
            env = {"PYTHONPATH": str(Path(a.baseline_src).resolve())}
            res["float32_folder"] = {**train(work, "folder-float32", f"folder:{small}", a.side, steps, env=env),
                                     "steps": steps}
        save()
    if "loader" in parts:
        res["loader_img_s"] = {f"{w} workers": loader_rate(archive, a.side, w) for w in (0, 1, 2)}
        res["loader_img_s"]["ram cache"] = loader_rate(archive, a.side, 0, "ram")
        save()
    table(res)
    return 0


def table(res: dict) -> None:
    print(f"# {res['machine']}; {res['n']:,} RGB images at {res['side']} px, DCGAN batch 64")
    if "pack" in res:
        r = res["pack"]
        print(f"pack: {r['wall_s']} s ({r['images_per_s']} img/s), archive {r['archive_gb']} GB, "
              f"peak {r['peak_tree_pss_gb']} GB")
    print("| run | px | batch | steps | peak memory (tree PSS) | trainer peak RSS | start-up | first step done | "
          "img/s | waiting for data |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in ("train_none", "train_ram", "train_none_b32", "train_none_64", "uint8_folder", "float32_folder"):
        if key in res:
            r = res[key]
            wait = f"{100 * r['data_wait']:.1f}%" if "data_wait" in r else "-"
            print(f"| {key} | {r.get('side', res['side'])} | {r.get('batch', 64)} | {r.get('steps', '')} | "
                  f"{r['peak_tree_pss_gb']} GB | {r['peak_rss_gb']} GB | {r.get('ready_s')} s | {r['first_step_s']} s | "
                  f"{r['img_s']} | {wait} |")
    if "loader_img_s" in res:
        print("loader alone (img/s):", res["loader_img_s"])


if __name__ == "__main__":
    sys.exit(main())
