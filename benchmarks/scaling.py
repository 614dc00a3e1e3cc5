"""Data-parallel scaling on this machine: 1 process against 2 gloo processes, and what more would cost.

    python benchmarks/scaling.py [--steps 60]

Trains the main job's DCGAN (no evaluation) for ``--steps`` with
``ganforge train`` as 1 process using every core, then as 2 processes
under torchrun (``--nproc 2``, one core each) with the same global batch,
and reads images/s from metrics.jsonl (the log lines after the first, so
start-up is excluded). Then it measures what a step must exchange: one
all-reduce of D's gradients per D step and one of G's per G step, timed
with gloo between 2 local processes, and prints the time the same volume
would take on faster links (ring all-reduce sends 2(N-1)/N of the volume
per rank) as an estimate of multi-GPU scaling. Writes
benchmarks/results/scaling.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

LINKS = {"10 Gb Ethernet": 1.2e9, "PCIe 4.0 x16": 25e9, "NVLink (A100)": 300e9}


def train(out: Path, name: str, steps: int, nproc: int) -> float:
    cmd = [sys.executable, "-m", "ganforge", "train", "eval.metrics=none", f"steps={steps}", f"name={name}",
           "log.every=10", f"log.samples_every={steps}", f"log.checkpoint_every={steps}", "log.progress=off",
           "--out", str(out), "--nproc", str(nproc)]
    subprocess.run(cmd, check=True, capture_output=True)
    rows = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["img_s"] for r in rows[1:])


def _worker(rank: int, sizes: list[int], port: int, q) -> None:
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    out = {}
    for n in sizes:
        buf = torch.randn(n)
        for _ in range(3):
            dist.all_reduce(buf)
        t = time.perf_counter()
        for _ in range(10):
            dist.all_reduce(buf)
        out[n] = (time.perf_counter() - t) / 10
    if rank == 0:
        q.put(out)
    dist.destroy_process_group()


def allreduce_seconds(sizes: list[int]) -> dict:
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = 29600 + os.getpid() % 200
    procs = [ctx.Process(target=_worker, args=(r, sizes, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    out = q.get(timeout=300)
    for p in procs:
        p.join()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    a = p.parse_args()
    from ganforge.config import load_config
    from ganforge.nets import build_nets
    cfg = load_config(None, ())
    G, D = build_nets(cfg.model, (1, 28, 28))
    n_g, n_d = (sum(q.numel() for q in net.parameters()) for net in (G, D))
    with tempfile.TemporaryDirectory() as tmp:
        one = train(Path(tmp), "one", a.steps, 1)
        two = train(Path(tmp), "two", a.steps, 2)
    t = allreduce_seconds([n_g, n_d])
    step_s = cfg.batch_size / two
    comm = t[n_g] + cfg.d_steps * t[n_d]
    volume = 4 * (n_g + cfg.d_steps * n_d)
    res = {"machine": machine(), "steps": a.steps, "batch": cfg.batch_size, "img_s_1_process": one,
           "img_s_2_processes": two, "speedup": two / one, "params_g": n_g, "params_d": n_d,
           "allreduce_bytes_per_step": volume, "allreduce_s_per_step_gloo_2_local": comm,
           "step_s_2_processes": step_s, "links": {}}
    print(f"{machine()}; main-job DCGAN, global batch {cfg.batch_size}")
    print(f"1 process (all cores): {one:.0f} img/s; 2 gloo processes (1 core each): {two:.0f} img/s "
          f"({two / one:.2f}x)")
    print(f"per step: all-reduce of {volume / 1e6:.1f} MB (G {n_g:,} + D {n_d:,} float32 parameters); "
          f"gloo between 2 local processes took {1000 * comm:.1f} ms of a {1000 * step_s:.0f} ms step")
    for link, bw in LINKS.items():
        for n in (2, 8):
            s = 2 * (n - 1) / n * volume / bw
            res["links"][f"{link}, {n} ranks"] = s
            print(f"  estimate on {link}, {n} ranks: {1000 * s:.2f} ms of communication per step (bandwidth only)")
    out = Path(__file__).parent / "results" / "scaling.json"
    atomic.write_text(out, json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
