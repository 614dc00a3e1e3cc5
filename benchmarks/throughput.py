"""Training-step throughput: ganforge's loop against a plain PyTorch DCGAN loop, interleaved in one run.

    python benchmarks/throughput.py [--rounds 9] [--steps 30] [--batches 64,256] [--compile]

The reference is the textbook loop of Goodfellow et al. 2014 / Radford et
al. 2016 written here with nothing but torch: the same 28x28 DCGAN (G:
100 -> 128x7x7 -> 64x14x14 -> 1x28x28 with batch norm; D: 64 -> 128 -> 1,
leaky ReLU), the MNIST digits preloaded as one tensor, a D step on a real
and a fake batch, a G step, Adam for both (fused), channels-last like
ganforge's default. ganforge runs its real training loop
(``Trainer.run``) on the same architecture and batch with the same work:
non-saturating loss, no penalty, no EMA, no evaluation, logs every 1,000
steps. Both precisions (fp32 and bf16; the one ganforge's ``auto`` measures
and picks for each batch is marked "default"; bf16 is left out where auto measured it at under half fp32's
speed) are measured for both in alternating rounds. The speeds are the median rounds;
the ratio is the median of each round's ganforge/reference ratio (the two
are measured back to back, so a slow spell of a shared machine hits both).
A second, identical reference loop runs in the same rounds (after
ganforge): its ratio to the first is the A/A control, the size of a
difference this machine makes between two equal loops.
Model FLOP utilisation divides the step's FLOPs (counted by
torch.utils.flop_counter on one step) by a matmul peak measured in the same
run (2048x2048, fp32 and bf16). With ``--compile``, ganforge with
``compile=true`` (torch.compile of G and D; compilation happens in the
warm-up step) joins the same rounds, and its speed is put beside the eager
loop's. Writes benchmarks/results/throughput.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402

from ganforge.data import load_dataset  # noqa: E402
from ganforge.config import load_config  # noqa: E402
from ganforge.runs import atomic  # noqa: E402


def reference_nets():
    G = nn.Sequential(nn.ConvTranspose2d(100, 128, 7, 1, 0, bias=False), nn.BatchNorm2d(128), nn.ReLU(True),
                      nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
                      nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(64, 128, 4, 2, 1),
                      nn.LeakyReLU(0.2, True), nn.Conv2d(128, 1, 7, 1, 0))
    return G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)


class Reference:
    """The textbook loop, nothing else."""

    def __init__(self, x: torch.Tensor, batch: int, precision: str):
        torch.manual_seed(0)
        self.G, self.D = reference_nets()
        self.x, self.batch, self.precision = x, batch, precision
        self.opt_g = torch.optim.Adam(self.G.parameters(), 1e-3, betas=(0.0, 0.99), fused=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), 1e-3, betas=(0.0, 0.99), fused=True)
        self.gen = torch.Generator().manual_seed(1)

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def step(self):
        b = self.batch
        real = self.x[torch.randint(0, len(self.x), (b,), generator=self.gen)]
        z = torch.randn(b, 100, 1, 1, generator=self.gen)
        with torch.no_grad(), self.autocast():
            fake = self.G(z)
        with self.autocast():
            out = self.D(torch.cat([real, fake.float()])).flatten().float()
        loss_d = F.softplus(-out[:b]).mean() + F.softplus(out[b:]).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        self.D.requires_grad_(False)
        with self.autocast():
            out = self.D(self.G(torch.randn(b, 100, 1, 1, generator=self.gen))).flatten().float()
        loss_g = F.softplus(-out).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)

    def run(self, steps: int) -> float:
        t = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps * self.batch / (time.perf_counter() - t)


class Ours:
    """ganforge's Trainer, extended by ``steps`` per round."""

    def __init__(self, out: Path, batch: int, precision: str, compiled: bool = False):
        from ganforge.train.start import start
        overrides = (f"batch_size={batch}", f"precision={precision}", "penalty=none", "ema.enabled=false",
                     "log.every=1000", "log.samples_every=100000", "log.checkpoint_every=100000", "log.progress=off",
                     "log.tb=false", "eval.metrics=none", "steps=1", "threads=0", f"compile={str(compiled).lower()}",
                     f"name=b{batch}-{precision}{'-compiled' if compiled else ''}")
        self.trainer, _ = start("mnist-dcgan", overrides, out)
        self.trainer.run()                               # warm-up step (and the step-0 sample grid)
        self.batch = batch

    def run(self, steps: int) -> tuple[float, float]:
        """(images/s of the training step as the loop times it, images/s of the whole round's wall time).

        The loop's own clock (``train_time``) covers each iteration's step, EMA and statistics; the
        wall clock adds the end of the round, where a run writes its last samples and checkpoint."""
        tr = self.trainer
        tr.cfg.steps = tr.step + steps
        t, t_step = time.perf_counter(), tr.train_time
        tr.run()
        wall = time.perf_counter() - t
        return steps * self.batch / (tr.train_time - t_step), steps * self.batch / wall


SLOW_BF16 = 0.5     # where auto measured bf16 at under half fp32's speed (no bf16 kernels), its rows are skipped


def matmul_peak(dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def step_flops(ref: Reference) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        ref.step()
    return fc.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batches", default="64,256")
    p.add_argument("--compile", action="store_true", help="also measure ganforge with compile=true")
    a = p.parse_args()
    x = load_dataset(load_config(None, ("data=mnist",)).data).x.contiguous(memory_format=torch.channels_last)
    # the bf16 peak only where bf16 rows are measured: without bf16 kernels its 2048² matmuls alone took minutes
    peaks = {"fp32": matmul_peak(torch.float32)}
    results = {"machine": machine(), "auto_precision": {}, "threads": torch.get_num_threads(),
               "matmul_peak_gflops": {}, "rounds": a.rounds, "steps_per_round": a.steps, "rows": []}
    print(f"{machine()}; matmul peak fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (int(b) for b in a.batches.split(",")):
            chooser = Ours(Path(tmp), batch, "auto").trainer         # what precision=auto measures for these nets
            auto = chooser.cfg.precision
            results["auto_precision"][str(batch)] = chooser.precision_choice
            print(f"batch {batch}: precision=auto is {auto} here ({chooser.precision_choice})")
            del chooser
            ratio = results["auto_precision"][str(batch)].get("ratio", 1.0)
            precisions = ["fp32", "bf16"] if ratio >= SLOW_BF16 else ["fp32"]
            if len(precisions) == 1:
                print(f"  bf16 took {1 / ratio:.1f}x the fp32 time here: its rows are left out")
            elif "bf16" not in peaks:
                peaks["bf16"] = matmul_peak(torch.bfloat16)
                print(f"  matmul peak bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
            flops = step_flops(Reference(x, batch, "fp32"))
            pairs = {pr: (Reference(x, batch, pr), Ours(Path(tmp), batch, pr)) for pr in precisions}
            twins = {pr: Reference(x, batch, pr) for pr in precisions}     # the A/A control: the noise floor
            compiled = {pr: Ours(Path(tmp), batch, pr, compiled=True) for pr in precisions} if a.compile else {}
            for ref, _ in pairs.values():
                ref.run(3)
            for twin in twins.values():
                twin.run(3)
            speed = {(pr, who): [] for pr in precisions for who in ("reference", "ganforge", "ganforge-wall", "compiled", "twin")}
            for _ in range(a.rounds):
                for pr, (ref, ours) in pairs.items():
                    speed[(pr, "reference")].append(ref.run(a.steps))
                    step, wall = ours.run(a.steps)
                    speed[(pr, "ganforge")].append(step)
                    speed[(pr, "ganforge-wall")].append(wall)
                    speed[(pr, "twin")].append(twins[pr].run(a.steps))
                    if pr in compiled:
                        speed[(pr, "compiled")].append(compiled[pr].run(a.steps)[0])
            base = statistics.median(speed[("fp32", "reference")])
            for pr in precisions:
                r, g = statistics.median(speed[(pr, "reference")]), statistics.median(speed[(pr, "ganforge")])
                w = statistics.median(speed[(pr, "ganforge-wall")])
                # the ratio of each round's two neighbouring measurements, then the median: a shared machine's
                # slow spells hit both sides of a round alike, so this is steadier than a ratio of medians
                paired = [a / b for a, b in zip(speed[(pr, "ganforge")], speed[(pr, "reference")])]
                paired_wall = [a / b for a, b in zip(speed[(pr, "ganforge-wall")], speed[(pr, "reference")])]
                twin = [a / b for a, b in zip(speed[(pr, "twin")], speed[(pr, "reference")])]
                mfu = g / batch * flops / peaks[pr]
                row = {"batch": batch, "precision": pr, "default": pr == auto, "reference_img_s": r, "ganforge_img_s": g,
                       "ganforge_over_reference": statistics.median(paired), "round_ratios": paired,
                       "twin_over_reference": statistics.median(twin), "twin_round_ratios": twin,
                       "ganforge_wall_img_s": w, "ganforge_wall_over_reference": statistics.median(paired_wall),
                       "ganforge_over_fp32_reference": g / base, "step_gflop": flops / 1e9, "ganforge_mfu": mfu}
                results["rows"].append(row)
                print(f"batch {batch:4d} {pr:5s}{' (default)' if pr == auto else '          '} reference {r:7.1f} img/s  "
                      f"ganforge {g:7.1f} img/s  ratio {row['ganforge_over_reference']:.3f} (rounds {min(paired):.3f}-"
                      f"{max(paired):.3f}; whole rounds {row['ganforge_wall_over_reference']:.3f})  "
                      f"vs fp32 reference {g / base:.2f}x  MFU {100 * mfu:.1f}% of the {pr} matmul peak  "
                      f"[A/A control: a second reference {row['twin_over_reference']:.3f}]")
                if pr in compiled:
                    c = statistics.median(speed[(pr, "compiled")])
                    row.update(compiled_img_s=c, compiled_over_eager=c / g, compiled_over_reference=c / r)
                    print(f"           {pr:5s} compile=true: ganforge {c:7.1f} img/s  {c / g:.3f}x eager ganforge, "
                          f"{c / r:.3f}x the reference")
    results["matmul_peak_gflops"] = {k: v / 1e9 for k, v in peaks.items()}
    out = Path(__file__).parent / "results" / "throughput.json"
    atomic.write_text(out, json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
