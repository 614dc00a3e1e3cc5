"""What the non-finite guard costs: training steps per second with guard.nonfinite=off and =skip, interleaved.

The guard adds one fused norm over the gradients and one host sync per
update (train.guard). This times the real game step (D update, G update,
EMA) of the README's main job (DCGAN on MNIST digits, batch 64) and of the
toy ring (MLP, batch 256), the two settings alternating over ``--rounds``
rounds of ``--steps`` steps in one process, and prints the median ratio.
Writes benchmarks/results/guard_cost.json.

    python benchmarks/guard_cost.py [--rounds 5] [--steps 40]
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402

from ganforge.train.start import plan_run  # noqa: E402
from ganforge.train.loop import Trainer  # noqa: E402
from ganforge.runs import atomic  # noqa: E402


def trainer(preset: str, action: str, work: Path) -> Trainer:
    cfg, run_dir, _ = plan_run(preset, (f"guard.nonfinite={action}", "log.progress=off", f"name={action}"), work)
    return Trainer(cfg, run_dir, "off")


def steps_per_s(t: Trainer, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        t.game.step()
        t.ema.update(t.cfg.batch_size, 0)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for preset, n in (("mnist-dcgan", a.steps), ("toy-ring", a.steps * 10)):
            pair = {act: trainer(preset, act, Path(work)) for act in ("off", "skip")}
            for t in pair.values():
                steps_per_s(t, 3)                                   # warm-up
            speed = {"off": [], "skip": []}
            for _ in range(a.rounds):
                for act, t in pair.items():
                    speed[act].append(steps_per_s(t, n))
            off, skip = statistics.median(speed["off"]), statistics.median(speed["skip"])
            rows.append({"preset": preset, "batch": pair["off"].cfg.batch_size, "off_steps_s": round(off, 1),
                         "skip_steps_s": round(skip, 1), "skip_over_off": round(skip / off, 3)})
            print(f"{preset:12s} batch {rows[-1]['batch']:4d}: off {off:7.1f} steps/s, skip {skip:7.1f} steps/s, "
                  f"ratio {skip / off:.3f} (median of {a.rounds} rounds of {n} steps)")
    out = Path(__file__).parent / "results" / "guard_cost.json"
    atomic.write_text(out, json.dumps({"machine": machine(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                               "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
