"""What augmentation costs on the CPU: DiffAugment and ADA beside ganforge's DCGAN at 64 px, batch 32.

    python benchmarks/augment_cost.py [--rounds 5] [--batch 32] [--side 64]

Times, in one process and interleaved over ``--rounds`` rounds (medians):

- each pipeline's forward, and forward + backward, on a batch of 3 x side x side images
  (DiffAugment with all three policies; ADA 'bgc' at p = 0.2 and p = 1),
  next to the forward + backward of the DCGAN discriminator (ganforge.nets,
  default width) on the same batch;
- a DCGAN step proxy: a D update on real and generated images and a G update
  (Adam, non-saturating loss), plain and with the augmentation applied where
  the training loop applies it (real and fake in the D phase, fake in the G
  phase), and the share of the step that the augmentation takes.

The issue's target: ADA at most 15 % of the step time at 64 px, batch 32.
Prints a markdown table; writes benchmarks/results/augment_cost.json.
Zhao et al. 2020 (DiffAugment); Karras et al. 2020 (ADA).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402

from ganforge.augment import make  # noqa: E402
from ganforge.nets import FAMILIES  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

Z_DIM = 100


def pipelines() -> dict:
    return {"diffaug (color,translation,cutout)": make("diffaug"), "ada bgc, p = 0.2": make("ada", p=0.2),
            "ada bgc, p = 1.0": make("ada", p=1.0)}


def timed(fn, reps: int) -> float:
    """Median seconds of ``reps`` calls."""
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


class Proxy:
    """One DCGAN step (D update, then G update), optionally through an augmentation."""

    def __init__(self, side: int, batch: int):
        family = FAMILIES["dcgan"]
        self.G, self.D = family.build((3, side, side), Z_DIM, family.options())
        self.opt_g = torch.optim.Adam(self.G.parameters(), 2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), 2e-4, betas=(0.5, 0.999))
        self.real = torch.rand(batch, 3, side, side) * 2 - 1
        self.batch, self.count = batch, 0

    def step(self, aug=None) -> None:
        seen = (lambda x: x) if aug is None else (lambda x: aug(x, torch.Generator().manual_seed(self.count)))
        self.count += 1
        z = torch.randn(self.batch, Z_DIM)
        with torch.no_grad():
            fake = self.G(z)
        loss_d = F.softplus(-self.D(seen(self.real))).mean() + F.softplus(self.D(seen(fake))).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        self.D.requires_grad_(False)
        loss_g = F.softplus(-self.D(seen(self.G(torch.randn(self.batch, Z_DIM))))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)

    def d_forward_backward(self, x: torch.Tensor) -> None:
        self.D(x).sum().backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3, help="calls per timing")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--side", type=int, default=64)
    a = ap.parse_args()
    torch.manual_seed(0)
    proxy, augs = Proxy(a.side, a.batch), pipelines()
    x = (torch.rand(a.batch, 3, a.side, a.side) * 2 - 1).requires_grad_(True)
    jobs = {"D fwd+bwd": lambda: proxy.d_forward_backward(x), "step": lambda: proxy.step()}
    for name, aug in augs.items():
        jobs[f"{name} fwd"] = lambda aug=aug: aug(x.detach(), torch.Generator().manual_seed(proxy.count))
        jobs[f"{name} fwd+bwd"] = lambda aug=aug: aug(x, torch.Generator().manual_seed(proxy.count)).sum().backward()
        jobs[f"{name} step"] = lambda aug=aug: proxy.step(aug)
    for fn in jobs.values():                              # warm-up
        fn()
    times = {k: [] for k in jobs}
    for _ in range(a.rounds):
        for k, fn in jobs.items():
            times[k].append(timed(fn, a.reps))
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    rows = []
    for name in augs:
        pipe, step = ms[f"{name} fwd+bwd"], ms[f"{name} step"]
        rows.append({"augment": name, "pipeline_fwd_ms": round(ms[f"{name} fwd"], 1), "pipeline_ms": round(pipe, 1), "d_ms": round(ms["D fwd+bwd"], 1),
                     "pipeline_over_d": round(pipe / ms["D fwd+bwd"], 3), "step_plain_ms": round(ms["step"], 1),
                     "step_ms": round(step, 1), "share_of_step": round((step - ms["step"]) / step, 3)})
    cpu = machine()
    print(f"{a.batch} images of 3x{a.side}x{a.side}, DCGAN (default width), {cpu}, {torch.get_num_threads()} threads, "
          f"medians of {a.rounds} rounds of {a.reps} calls\n")
    print("| augmentation | pipeline fwd (ms) | pipeline fwd+bwd (ms) | D fwd+bwd (ms) | pipeline / D | step, plain (ms) "
          "| step, augmented (ms) | share of the step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['augment']} | {r['pipeline_fwd_ms']:.1f} | {r['pipeline_ms']:.1f} | {r['d_ms']:.1f} | {r['pipeline_over_d']:.2f} | "
              f"{r['step_plain_ms']:.0f} | {r['step_ms']:.0f} | {100 * r['share_of_step']:.1f} % |")
    out = Path(__file__).parent / "results" / "augment_cost.json"
    atomic.write_text(out, json.dumps({"machine": cpu, "threads": torch.get_num_threads(), "batch": a.batch, "side": a.side,
                               "rounds": a.rounds, "reps": a.reps, "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
