"""How fast the playground of `ganforge serve` plays and draws, on one torch thread (as the server runs it).

Prints rounds per second (D steps then one G step, default settings: batch 256, width 64, 3 layers) for
each data set, and the time to compute one frame (heatmap, arrows, mode count). Writes
benchmarks/results/playground_speed.json.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402

from ganforge.serve.params import Settings  # noqa: E402
from ganforge.serve.playground import Playground  # noqa: E402
from ganforge.runs import atomic  # noqa: E402


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    torch.set_num_threads(1)
    rows = []
    for data, loss in (("ring", "nonsaturating"), ("grid", "nonsaturating"), ("spiral", "nonsaturating"),
                       ("ring", "wgan-gp")):
        g = Playground(Settings(data=data, loss=loss) if loss == "nonsaturating" else
                       Settings(data=data, loss=loss, reg="gp", weight=10.0))
        g.advance(50)                                   # warm up
        t = time.perf_counter()
        g.advance(500)
        rounds = 500 / (time.perf_counter() - t)
        frames = []
        for _ in range(20):
            g.advance(1)
            t = time.perf_counter()
            g.frame()
            frames.append(time.perf_counter() - t)
        g.close()
        rows.append({"data": data, "loss": loss, "rounds_per_s": round(rounds, 1),
                     "frame_ms": round(1000 * sorted(frames)[len(frames) // 2], 2)})
        print(f"{data:7s} {loss:14s} {rounds:7.1f} rounds/s   frame {rows[-1]['frame_ms']:.2f} ms (median of 20)")
    out = Path(__file__).parent / "results" / "playground_speed.json"
    atomic.write_text(out, json.dumps({"machine": machine(), "torch": torch.__version__, "threads": 1, "rows": rows},
                              indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
