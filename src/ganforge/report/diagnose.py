"""What went wrong in a run, in plain words, read from its metrics.jsonl.

Five failures the GAN literature names, each found by a rule on the logged
numbers, reported with the step where it began, the evidence and a change
to try:

- **non-finite values**: the first NaN or Inf in any logged number.
- **discriminator overpowering**: D(G(z)) near 0 and D(x) near 1 for most of
  the rest of the run (Goodfellow et al. 2014, sec. 3: early in training
  log(1 - D(G(z))) saturates; Arjovsky & Bottou 2017: a near-perfect D
  leaves G a vanishing gradient), with whether G's gradient norm fell
  below a tenth of its early level.
- **mode collapse**: the count of modes covered (or recall, Kynkäänniemi et
  al. 2019) falling to 70% or less of its best and staying there (Metz et
  al. 2017; Srivastava et al. 2017).
- **oscillation**: D(G(z)) (or G's loss, for objectives without a
  probability) swinging up and down by large amounts again and again
  instead of settling (Mescheder et al. 2018: unregularized GAN training
  need not converge).
- **overfitting D**: ADA's heuristic r_t = E[sign D(x_real)] (Karras et
  al. 2020) staying above 0.6, the value ADA holds it at, without
  augmentation: D separates the training images with a margin that grows
  as it memorises them; or, with ADA, p at its ceiling while r_t stays high.

Only losses whose D output is a probability, or least squares (targets 1
and 0), are judged for overpowering; the others have no fixed scale.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Optional

from ..runs.metrics_log import WALL_CLOCK_KEYS as WALL

PROBABILITY = {"minimax", "nonsaturating", "relativistic", "relativistic-average"}
TARGETS_0_1 = PROBABILITY | {"least-squares"}


@dataclass
class Finding:
    kind: str               # nonfinite | overpowering | collapse | oscillation | overfitting
    title: str
    step: int               # where it began
    evidence: str
    suggestion: str
    series: list = field(default_factory=list)      # the metrics keys that show it


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    return _number(v) and math.isfinite(v)


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """The steps and values of one logged number, over the rows that have it."""
    got = [(r["step"], r[key]) for r in rows if "step" in r and _number(r.get(key))]
    return [s for s, _ in got], [float(v) for _, v in got]


def first_sustained(flags: list[bool], min_rows: int = 3, share: float = 0.8) -> Optional[int]:
    """The first index from which ``flags`` hold at least ``share`` of the time to the end, over at least
    ``min_rows`` rows, starting with a True."""
    n = len(flags)
    for i in range(n - min_rows + 1):
        if flags[i] and sum(flags[i:]) >= share * (n - i):
            return i
    return None


def nonfinite(rows: list[dict]) -> Optional[Finding]:
    for r in rows:
        bad = [k for k, v in r.items() if k not in WALL and isinstance(v, float) and not math.isfinite(v)]
        if bad:
            k = bad[0]
            before = [(q["step"], q[k]) for q in rows if q["step"] < r["step"] and _finite(q.get(k))]
            last = f" (last finite: {before[-1][1]:.4g} at step {before[-1][0]})" if before else ""
            return Finding("nonfinite", "Non-finite values", r["step"],
                           f"{', '.join(bad)} became {r[k]} at step {r['step']}{last}.",
                           "Lower both learning rates (optim.g.lr, optim.d.lr), train in precision=fp32, or add a "
                           "gradient penalty (penalty=r1); resume from the last checkpoint before that step.", bad)
    return None


def overpowering(rows: list[dict], loss: str) -> Optional[Finding]:
    if loss not in TARGETS_0_1:
        return None
    steps, fake = series(rows, "d_fake")
    _, real = series(rows, "d_real")
    if len(fake) < 3 or len(real) != len(fake):
        return None
    i = first_sustained([f < 0.05 and r > 0.95 for f, r in zip(fake, real)])
    if i is None:
        return None
    gs, g = series(rows, "grad_g")
    early = statistics.median(g[: max(1, len(g) // 5)]) if g else 0.0
    after = [v for s, v in zip(gs, g) if s >= steps[i]]
    vanished = bool(after) and early > 0 and statistics.median(after) < 0.1 * early
    grad = (f" G's gradient norm fell from a median of {early:.3g} over the first fifth of the run to "
            f"{statistics.median(after):.3g} since: the generator gradient vanished." if vanished else
            f" G's gradient norm did not vanish (median {statistics.median(after):.3g} since, "
            f"{early:.3g} early)." if after else "")
    if loss == "minimax":
        fix = ("Switch to the non-saturating loss (loss=nonsaturating), whose gradient does not vanish as "
               "D(G(z)) -> 0; also consider R1 (penalty=r1) or a lower D learning rate.")
    else:
        fix = ("Add an R1 penalty (penalty=r1), lower D's learning rate (optim.d.lr) or train D less often "
               "(d_steps=1), or give D instance noise; a larger G or data augmentation also narrows the gap.")
    return Finding("overpowering", "The discriminator overpowers the generator", steps[i],
                   f"From step {steps[i]} on, D(G(z)) stayed below 0.05 (mean {statistics.mean(fake[i:]):.3g}) and "
                   f"D(x) above 0.95 (mean {statistics.mean(real[i:]):.3g}) in {sum(f < 0.05 for f in fake[i:])} of "
                   f"{len(fake) - i} log lines.{grad}", fix, ["d_real", "d_fake", "grad_g"])


def collapse(rows: list[dict]) -> Optional[Finding]:
    for key, name in (("modes", "modes covered"), ("recall", "recall")):
        steps, v = series(rows, key)
        if len(v) < 3:
            continue
        best_i = max(range(len(v)), key=lambda j: v[j])
        best = v[best_i]
        if best <= (1 if key == "modes" else 0.0):
            continue
        tail = [x <= 0.7 * best for x in v[best_i + 1:]]
        j = first_sustained(tail, min_rows=2)
        if j is None:
            continue
        k = best_i + 1 + j
        return Finding("collapse", "Mode collapse", steps[k],
                       f"{name.capitalize()} fell from {best:.3g} at step {steps[best_i]} to {v[k]:.3g} at step "
                       f"{steps[k]} (last: {v[-1]:.3g}): the generator covers less of the data than it did.",
                       "Lower G's learning rate or use the two time-scale rule (optim.d.lr 4x optim.g.lr), add "
                       "minibatch standard deviation or PacGAN packing (model.pack=2), R1 (penalty=r1), or the "
                       "checkpoint of the best evaluation (checkpoints/best.pt).", [key])
    return None


def swings(values: list[float], amplitude: float) -> list[int]:
    """Indices of the extremes where the series turned back by at least ``amplitude`` (a zigzag with
    hysteresis: smaller wiggles do not count)."""
    turns, direction, lo, hi, ext = [], 0, 0, 0, 0
    for i, v in enumerate(values):
        if direction == 0:                      # until the first move of ``amplitude``
            hi, lo = (i if v > values[hi] else hi), (i if v < values[lo] else lo)
            if values[hi] - values[lo] >= amplitude:
                direction = 1 if hi > lo else -1
                ext = hi if direction > 0 else lo
        elif (v - values[ext]) * direction > 0:
            ext = i                             # further the same way
        elif abs(v - values[ext]) >= amplitude:
            turns.append(ext)
            direction, ext = -direction, i
    return turns


def oscillation(rows: list[dict], loss: str) -> Optional[Finding]:
    key = "d_fake" if loss in TARGETS_0_1 else "loss_g"
    steps, v = series(rows, key)
    if len(v) < 8:
        return None
    scale = 0.2 if key == "d_fake" else 0.5 * (statistics.median(abs(x) for x in v) or 1.0)
    turns = swings(v, scale)
    if len(turns) < 4:
        return None
    return Finding("oscillation", "Oscillation", steps[turns[0]],
                   f"{key} reversed direction by at least {scale:.3g} {len(turns)} times, the first at step "
                   f"{steps[turns[0]]}: D and G keep overtaking each other instead of settling.",
                   "Lower both learning rates, use Adam with beta1 = 0 or 0.5, add R1 (penalty=r1, which makes "
                   "the game converge locally), and sample from G's EMA (ema.enabled=true).", [key])


OVERFIT = 0.6          # ADA's target for r_t (Karras et al. 2020, sec. 3)


def overfitting(rows: list[dict]) -> Optional[Finding]:
    steps, rt = series(rows, "rt")
    if len(rt) < 3:
        return None
    _, p = series(rows, "aug_p")
    if p and len(p) == len(rt):
        i = first_sustained([r > OVERFIT and q >= 0.95 for r, q in zip(rt, p)])
        if i is None:
            return None
        return Finding("overfitting", "The discriminator overfits despite augmentation", steps[i],
                       f"From step {steps[i]} on, ADA's p stayed at {statistics.mean(p[i:]):.2f} (its ceiling) and "
                       f"r_t = E[sign D(x)] at {statistics.mean(rt[i:]):.2f}, above the {OVERFIT} ADA aims for.",
                       "The data are too few for this D even fully augmented: add images, mirror them "
                       "(data.mirror=true), start from a model trained on more data (init=RUN, model.freeze_d=N), "
                       "or make D smaller.", ["rt", "aug_p"])
    i = first_sustained([r > OVERFIT for r in rt])
    if i is None or p:
        return None
    return Finding("overfitting", "The discriminator overfits its training images", steps[i],
                   f"From step {steps[i]} on, r_t = E[sign D(x)] on the real batches stayed above {OVERFIT} "
                   f"(mean {statistics.mean(rt[i:]):.2f}): D gives almost every training image a positive margin, "
                   "the sign ADA reads as memorisation (Karras et al. 2020).",
                   "Augment what D sees: augment=ada (adapts its strength to keep r_t at 0.6) or augment=diffaug; "
                   "data.mirror=true if mirrored images are valid; or more images.", ["rt"])


def diagnose(rows: list[dict], loss: str) -> list[Finding]:
    """Every finding, in the order the run met them."""
    rows = [r for r in rows if isinstance(r.get("step"), int)]
    found = [f for f in (nonfinite(rows), overpowering(rows, loss), collapse(rows), oscillation(rows, loss),
                         overfitting(rows)) if f]
    return sorted(found, key=lambda f: f.step)
