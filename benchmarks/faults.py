"""Kill anywhere, the long version: SIGKILL a run at least 20 times and check that nothing is lost.

For each setting below, trains once straight through, then again killed with
SIGKILL over and over (in turn: at a random moment of training, halfway
through writing a sample file, halfway through writing a checkpoint) and
resumed each time with ``ganforge train --resume``. After every kill the
newest checkpoint must load, at most ``log.checkpoint_every`` logged steps
may be lost, and the half-written temporary file must be there (and gone
after the resume); at the end metrics.jsonl and every tensor of the final
checkpoint must equal the straight run's, bit for bit. The harness is
tests/kill_harness.kill_anywhere; tests/test_faults.py runs it with 6
kills. Writes benchmarks/results/faults.json.

    python benchmarks/faults.py [--kills 24] [--only toy|dcgan|stream]
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))     # the kill harness lives with the tests
from toy_modes import machine  # noqa: E402

from kill_harness import kill_anywhere  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

SETTINGS = {
    "toy": ("toy-grid", ["steps=2400", "log.every=10", "log.checkpoint_every=50", "log.samples_every=100",
                         "eval.every=400", "eval.metrics=modes", "eval.best=kl", "log.progress=off"]),
    "dcgan": ("mnist-dcgan", ["steps=900", "log.every=5", "log.checkpoint_every=30", "log.samples_every=60",
                              "model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16",
                              "eval.metrics=none", "log.progress=off"]),
    # the 5,000 digits packed into a zip and streamed by a worker process (data.cache=none): batches are decoded
    # ahead of the step, and a resume starts reading again at the batch it is at
    "stream": ("mnist-dcgan", ["steps=900", "log.every=5", "log.checkpoint_every=30", "log.samples_every=60",
                               "model.g_width=8", "model.d_width=8", "model.z_dim=16", "batch_size=16",
                               "eval.metrics=none", "log.progress=off", "data=zip:{work}/digits.zip", "data.cache=none",
                               "data.workers=1", "data.mirror=true"]),
}


def pack_digits(work: Path) -> None:
    """The embedded digits as an npz, packed by ``ganforge data pack`` into work/digits.zip."""
    import subprocess

    import numpy as np

    from ganforge.data.embedded import load_mnist
    x, y, _ = load_mnist()
    np.savez(work / "digits.npz", x=(x[:, 0] * 255).round().to(torch.uint8).numpy(), y=y.numpy())
    subprocess.run([sys.executable, "-m", "ganforge", "data", "pack", f"npz:{work / 'digits.npz'}", "--out",
                    str(work / "digits.zip"), "--progress", "off"], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--only", choices=sorted(SETTINGS))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rows = []
    for name, (preset, overrides) in SETTINGS.items():
        if a.only and name != a.only:
            continue
        print(f"== {name}: ganforge train {preset} {' '.join(overrides)}")
        t = time.time()
        with tempfile.TemporaryDirectory() as work:
            if name == "stream":
                pack_digits(Path(work))
            overrides = [o.format(work=work) for o in overrides]
            report = kill_anywhere(Path(work), preset, overrides, kills=a.kills, seed=a.seed, log=print)
        rec = report.pop("record")
        report.update(setting=name, preset=preset, overrides=overrides, wall_s=round(time.time() - t, 1),
                      bit_exact=True, newest_always_loaded=True,
                      torn_files_seen=sum(bool(r["torn"]) for r in rec), kills_detail=rec)
        rows.append(report)
        print(f"{name}: {report['kills']} kills {report['kinds']}, every newest checkpoint loaded, "
              f"at most {report['max_lost']} logged steps lost, {report['torn_files_seen']} half-written files left "
              f"by kills and removed on resume; final metrics ({report['metrics_lines']} lines) and weights "
              f"bit-exact with the straight run; {report['wall_s']} s")
    out = Path(__file__).parent / "results" / "faults.json"
    old = json.loads(out.read_text())["rows"] if out.exists() else []
    rows = [r for r in old if r["setting"] not in {x["setting"] for x in rows}] + rows
    atomic.write_text(out, json.dumps({"machine": machine(), "torch": torch.__version__, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
