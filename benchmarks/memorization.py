"""Does the memorisation metric catch copying, and leave fresh real images alone? (issue 24)

    python benchmarks/memorization.py

The 5,000 embedded MNIST digits are split at random into 4,000 "training"
digits and 1,000 unseen ones. Each row is 1,000 "generated" samples made
of copies of training digits (exact, with pixel noise, or mixed with unseen
digits) or of the unseen digits, measured by ``metrics.memorization`` (the
authenticity test of Alaa et al. 2022 against a held-out baseline, with a
one-sided two-proportion z-test) in the digit classifier's features and in
pixels. Then the metric's own time for 10,000 samples against 4,000
training features of 128 dimensions. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    from ganforge.data.embedded import load_mnist
    from ganforge.metrics.extract import extract
    from ganforge.metrics.features import get_extractor
    from ganforge.metrics.memorization import memorization
    x = load_mnist()[0] * 2 - 1
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    train, unseen = x[perm[:4000]], x[perm[4000:]]
    copies = train[torch.randint(0, 4000, (1000,), generator=g)]

    def noisy(sd):
        return (copies + sd * torch.randn(copies.shape, generator=g)).clamp(-1, 1)

    def mix(k):
        return torch.cat([copies[:k], unseen[k:]])

    sets = [("exact copies", copies), ("copies + N(0, 0.05²) pixel noise", noisy(0.05)),
            ("copies + N(0, 0.2²) pixel noise", noisy(0.2)), ("25% copies, 75% unseen", mix(250)),
            ("10% copies, 90% unseen", mix(100)), ("5% copies, 95% unseen", mix(50)), ("unseen real digits", unseen)]
    net = get_extractor("mnist")
    spaces = (("mnist (128-d)", lambda a: extract(net, a, len(a), 500).features),
              ("pixels (784-d)", lambda a: a.reshape(len(a), -1)))
    print(f"machine: {machine()}, threads {torch.get_num_threads()}\n")
    print("| features | samples (1,000) | memorized | held-out baseline | z | p | verdict |\n|---|---|---|---|---|---|---|")
    for space, features in spaces:
        ft = features(train)
        for what, s in sets:
            e = memorization(ft, features(s))
            print(f"| {space} | {what} | {100 * e['memorized']:.1f}% | {100 * e['memorized_baseline']:.1f}% | "
                  f"{e['z']:.2f} | {e['p']:.2g} | {'copying' if e['copying'] else 'no evidence'} |")
    ft = extract(net, train, 4000, 500).features
    fake = ft[torch.randint(0, 4000, (10000,), generator=g)] + 0.1 * torch.randn(10000, 128, generator=g)
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        memorization(ft, fake)
        best = min(best, time.perf_counter() - t)
    print(f"\nthe metric on 10,000 samples against 4,000 training features of 128 dims: {best:.2f} s (best of 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
