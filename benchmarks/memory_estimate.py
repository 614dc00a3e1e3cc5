"""How well train/budget.py's memory estimate matches what a run really holds.

For each config, a child process loads the data, then trains a few steps; the
figure beside the estimate is the growth of its peak resident memory (ru_maxrss)
over ganforge.train of those steps, after one load of the data (the trainer loads it
once more, which the measured figure includes; the estimate's parts are the nets,
their optimizer states, one batch's activations and the sample dumps; the data is
checked separately, before it is loaded). The estimate is meant to err high:
a ratio estimate/measured at or above 1 means a refusal never stops a run that
would have fitted.

    python benchmarks/memory_estimate.py
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from toy_modes import machine

CASES = [("toy-ring", ["batch_size=4096"]), ("mnist-dcgan", ["batch_size=64"]), ("mnist-dcgan", ["batch_size=512"]),
         ("mnist-sngan", ["batch_size=256"]), ("mnist-stylegan", ["batch_size=128"]), ("edges2digits", ["batch_size=64"]),
         ("thin2thick", ["batch_size=16"])]

CHILD = r"""
import json, resource, sys, tempfile, torch
torch.set_num_threads(2)
from ganforge.config import build, raw_from
from ganforge.data import load_dataset
from ganforge.train import budget
from ganforge.train.start import finish_config
import ganforge
preset, ov = sys.argv[1], sys.argv[2:]
ov = ov + ["steps=6", "log.every=3", "log.samples_every=3", "eval.metrics=none", "log.progress=off", "log.tb=false"]
cfg = finish_config(build(raw_from(preset, ov)))
est = budget.estimate(cfg, load_dataset(cfg.data))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ganforge.train(preset, out=tempfile.mkdtemp(), progress="off", **dict(o.split("=", 1) for o in ov))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate": sum(est.values()), "parts": est, "measured": after - before}))
"""


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print(f"# {machine()}")
    print(f"{'config':34s} {'estimate':>10s} {'measured':>10s} {'ratio':>6s}")
    for preset, ov in CASES:
        r = subprocess.run([sys.executable, "-c", CHILD, preset, *ov], capture_output=True, text=True,
                           cwd=tempfile.gettempdir())
        if r.returncode:
            print(f"{preset} {' '.join(ov)}: failed\n{r.stderr[-800:]}")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{preset + ' ' + ' '.join(ov):34s} {d['estimate'] / 1e6:9.0f}M {d['measured'] / 1e6:9.0f}M "
              f"{d['estimate'] / max(d['measured'], 1):6.2f}")


if __name__ == "__main__":
    main()
