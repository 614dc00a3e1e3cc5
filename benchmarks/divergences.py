"""How well the toy divergence estimators recover known values (ganforge.metrics.divergence).

    python benchmarks/divergences.py

Cases with a closed form or a numerical integral, at the sample sizes
evaluation uses (2,500 and 10,000): p_g = N((1, 0), I) against
p_data = N(0, I) (both KLs 0.5; JSD by integration on a fine grid); p_g = the
ring's first 4 modes against the 8-mode ring (KL(g||data) = log 2, JSD in
closed form, KL(data||g) infinite); and p_g = p_data on the ring and the grid
(everything 0: the estimator's floor). Prints estimate ± standard error
beside the truth; writes benchmarks/results/divergences.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402


def gauss_jsd(shift: float) -> float:
    xs = np.linspace(-8, 8 + shift, 1601)
    X, Y = np.meshgrid(xs, xs)
    h = (xs[1] - xs[0]) ** 2
    p = np.exp(-(X ** 2 + Y ** 2) / 2) / (2 * np.pi)
    q = np.exp(-((X - shift) ** 2 + Y ** 2) / 2) / (2 * np.pi)
    m = (p + q) / 2
    return float(0.5 * np.sum(p * np.log(p / m)) * h + 0.5 * np.sum(q * np.log(q / m)) * h)


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    from ganforge.data.toy import GaussianMixture, grid, ring
    from ganforge.metrics.divergence import divergences
    std_normal = GaussianMixture(torch.zeros(1, 2), torch.ones(1), torch.ones(1))
    r8 = ring()
    half = GaussianMixture(r8.means[:4], r8.std[:4], torch.full((4,), 0.25))
    half_jsd = 0.25 * math.log(2 / 3) + 0.25 * math.log(2) + 0.5 * math.log(4 / 3)
    cases = [("N((1,0), I) vs N(0, I)", lambda n, g: torch.randn(n, 2, generator=g) + torch.tensor([1.0, 0.0]), std_normal,
              {"kl_reverse": 0.5, "kl_forward": 0.5, "jsd": gauss_jsd(1.0)}),
             ("ring, 4 of 8 modes", lambda n, g: half.sample(n, g), r8,
              {"kl_reverse": math.log(2), "kl_forward": float("inf"), "jsd": half_jsd}),
             ("ring vs ring", lambda n, g: r8.sample(n, g), r8, {"kl_reverse": 0.0, "kl_forward": 0.0, "jsd": 0.0}),
             ("grid vs grid", lambda n, g: grid().sample(n, g), grid(), {"kl_reverse": 0.0, "kl_forward": 0.0, "jsd": 0.0})]
    rows = []
    print(f"machine: {machine()}; k = 5 (KL), 40 (JSD)\n")
    print("| case | n | KL(g‖data) | truth | KL(data‖g) | truth | JSD | truth |\n|---|---|---|---|---|---|---|---|")
    for name, draw, density, truth in cases:
        for n in (2500, 10000):
            r = divergences(draw(n, torch.Generator().manual_seed(n)), density, seed=1)
            rows.append({"case": name, "n": n, **{k: r[k] for k in r if k != "floor"}, "floor": r["floor"],
                         "truth": {k: (v if math.isfinite(v) else "infinite") for k, v in truth.items()}})
            cells = " | ".join(f"{r[k]:.4f} ± {r[k + '_se']:.4f} | {truth[k]:.4f}" for k in ("kl_reverse", "kl_forward", "jsd"))
            print(f"| {name} | {n:,} | {cells} |")
    out = Path(__file__).parent / "results" / "divergences.json"
    atomic.write_text(out, json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
