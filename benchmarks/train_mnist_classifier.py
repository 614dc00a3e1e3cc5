"""Train ganforge's MNIST digit classifier (the ``mnist`` feature extractor) and measure it.

    python benchmarks/train_mnist_classifier.py                 # writes the packaged weights
    python benchmarks/train_mnist_classifier.py --epochs 5 --out /tmp/m.pt --results /tmp/m.json

Data: the 5,000 embedded MNIST digits, split as ganforge always splits them
with ``data.holdout=0.2`` (stratified, fixed seed): it trains on the 4,000
``data.split=train`` digits and reports accuracy on the 1,000
``data.split=holdout`` ones, which are never used for any choice during
training (no early stopping, the last epoch is kept). A GAN trained with
``data.holdout=0.2`` has not seen those 1,000 digits either.

Because 4,000 digits are few, every batch is augmented with torch ops: a
random affine map (rotation up to 12 degrees, scale 0.9-1.1, shear up to
0.15, shift up to 2.5 px) composed with a smooth random displacement field
(Gaussian noise on a 4x4 grid, bicubically upsampled; in the spirit of the
elastic distortions of Simard et al., ICDAR 2003). AdamW with a one-cycle
learning rate, fixed seeds, deterministic algorithms, CPU.

Writes the state dict (float32) to ``src/ganforge/metrics/weights/mnist-classifier.pt``
and a summary to ``benchmarks/results/mnist_classifier.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.metrics.mnist_net import WEIGHTS, MnistNet, build_mnist

sys.path.insert(0, str(Path(__file__).parent))
from toy_modes import machine  # noqa: E402
from ganforge.runs import atomic  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "mnist_classifier.json"
HOLDOUT = 0.2


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random affine + smooth displacement of (N, 1, 28, 28) digits in [-1, 1]; background stays -1."""
    n, _, h, w = x.shape
    u = lambda *s: torch.rand(*s, generator=g) * 2 - 1          # noqa: E731  uniform in [-1, 1]
    ang, scale, shear = u(n) * math.radians(12), 1 + 0.1 * u(n), 0.15 * u(n)
    shift = u(2, n) * (2.5 * 2 / w)                                # pixels -> normalised coordinates
    cos, sin = torch.cos(ang), torch.sin(ang)
    # output -> input coordinates: rotation @ shear, divided by the scale
    a, b = cos / scale, (cos * shear - sin) / scale
    c, d = sin / scale, (sin * shear + cos) / scale
    theta = torch.stack([torch.stack([a, b, shift[0]], 1), torch.stack([c, d, shift[1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    disp = torch.randn(n, 2, 4, 4, generator=g) * (0.6 * 2 / w)     # about 0.6 px of smooth warping
    grid = grid + F.interpolate(disp, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    ink = F.grid_sample((x + 1) / 2, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return ink.clamp(0, 1) * 2 - 1


@torch.no_grad()
def predict(net: torch.nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    net.eval()
    return torch.cat([net(x[i:i + batch])[1].argmax(1) for i in range(0, len(x), batch)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    train = load_dataset(DataConfig(name="mnist", holdout=HOLDOUT, split="train"))
    held = load_dataset(DataConfig(name="mnist", holdout=HOLDOUT, split="holdout"))
    print(f"train {len(train)} digits, held out {len(held)}, {args.epochs} epochs of batch {args.batch}", flush=True)

    net = MnistNet()
    steps_per_epoch = math.ceil(len(train) / args.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(train), generator=g)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(train), args.batch):
            idx = order[i:i + args.batch]
            x, y = augment(train.x[idx], g), train.y[idx]
            _, logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            total += len(idx)
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d}  loss {loss_sum / total:.4f}  augmented-train acc {correct / total:.4f}  "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    seconds = time.perf_counter() - t0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}, args.out)
    ext = build_mnist(str(args.out))                      # measure what was written, as the extractor loads it
    with torch.no_grad():
        pred = torch.cat([ext(held.x[i:i + 500])[1].argmax(1) for i in range(0, len(held), 500)])
    train_acc = float((predict(net, train.x) == train.y).float().mean())
    acc = float((pred == held.y).float().mean())
    per_class = {str(c): round(float((pred[held.y == c] == c).float().mean()), 4) for c in range(10)}
    confusion = torch.zeros(10, 10, dtype=torch.long)
    confusion.index_put_((held.y, pred), torch.ones_like(pred), accumulate=True)
    out = {
        "machine": machine(),
        "holdout_accuracy": round(acc, 4),
        "holdout_errors": int((pred != held.y).sum()),
        "holdout_size": len(held),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
        "train_accuracy": round(train_acc, 4),
        "train_size": len(train),
        "epochs": args.epochs,
        "batch": args.batch,
        "seed": args.seed,
        "train_seconds": round(seconds, 1),
        "weights": str(args.out.name),
        "weights_bytes": args.out.stat().st_size,
        "weights_hash": ext.weights_hash,
        "split": f"data.holdout={HOLDOUT} (stratified, fixed seed), train on split=train, measure on split=holdout",
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.results, json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "confusion"}, indent=1))
    print(f"wrote {args.out} and {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
