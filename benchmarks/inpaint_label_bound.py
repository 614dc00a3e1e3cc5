"""How much of a digit's label its masked inputs still carry: the ceiling on inpaint-digits' label preservation.

    python benchmarks/inpaint_label_bound.py [--epochs 12] [--hole 10]

The digit classifier (the packaged weights, which score label preservation)
is fine-tuned on the 4,500 masked training inputs of ``inpaint-digits``
(``data.holdout=0.1``, the preset's split) with their labels, and its
accuracy on the 500 masked held-out inputs is printed after every epoch,
beside the packaged classifier on the same masked inputs and on the whole
digits. An inpainting G can preserve a label only where its input
determines it, so this accuracy estimates how far the 95% goal is
reachable at the task's hole size (a stronger classifier could read
somewhat more). ``--hole N`` masks the same digits with N x N squares
instead (``data.tasks.holes``, seeded places in the central 20x20): what a
smaller hole would allow. Adam 1e-3, batches of 64 shifted by up to 1 px, seed 0,
CPU.
"""
from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from ganforge.config import load_config
from ganforge.data import load_dataset
from ganforge.metrics.mnist_net import build_mnist


def split(name: str):
    return load_dataset(load_config(None, ("data=inpaint-digits", f"data.split={name}", "data.holdout=0.1")).data)


@torch.no_grad()
def accuracy(net, x, y) -> float:
    net.eval()
    return (net(x)[1].argmax(1) == y).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--hole", type=int, default=None, help="side of the square (default: the preset's data, 12)")
    a = p.parse_args()
    torch.manual_seed(0)
    train, held = split("train"), split("holdout")
    if a.hole is not None:
        from ganforge.data.tasks import holes
        train.a, held.a = (holes((d.x + 1) / 2, a.hole)[0] * 2 - 1 for d in (train, held))   # holes() works in [0, 1]
    base = build_mnist().net
    print(f"packaged classifier on held-out digits: whole {accuracy(base, held.x, held.y):.3f}, "
          f"masked {accuracy(base, held.a, held.y):.3f}")
    net = copy.deepcopy(base).requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for epoch in range(1, a.epochs + 1):
        net.train()
        order = torch.randperm(len(train.a))
        for i in range(0, len(order), 64):
            rows = order[i:i + 64]
            shift = (int(torch.randint(-1, 2, ())), int(torch.randint(-1, 2, ())))
            loss = F.cross_entropy(net(torch.roll(train.a[rows], shift, dims=(2, 3)))[1], train.y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch}: fine-tuned on masked inputs, held-out masked accuracy {accuracy(net, held.a, held.y):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
