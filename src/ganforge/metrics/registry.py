"""The metric registry: one record per metric, read by everything that names, computes, prints or ranks one.

A :class:`Metric` says what ``eval.metrics=`` and ``--metrics`` call it, what
it needs (the samples' ``features`` row by row, only their running
``stats``, class ``logits``, the raw ``samples``), which data it applies to,
the function that computes its eval.json entry, and the :class:`Score` s it
yields: the flat numbers of metrics.jsonl, each with its direction (for
``eval.best`` and for bolding the best run in ``ganforge compare``), its
chart in report.html and the live run view, and whether the "last
evaluation" tables show it. ``evaluate.Evaluator`` computes, ``ganforge
eval`` prints, the trainer logs and keeps the best checkpoint, ``config``
offers the choices, and report and compare draw, all from here. torch-fidelity's
``register_feature_extractor`` (Obukhov et al. 2020) is the model of
:func:`register_metric`; the metrics themselves cite their papers in their
modules (fid, kid, inception_score, prdc, modes, pixel).

The built-in records are in metrics.builtin (registered when ganforge.metrics
is imported). The ``auto`` rule lives here too, once: what ``eval.metrics=auto`` measures
during training (cheap: toys' mode counts, 28x28 digits' FID) and what
``ganforge eval`` measures by default (every metric that applies).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..errors import UserError


@dataclass(frozen=True)
class Score:
    """One number a metric logs: ``key`` in metrics.jsonl; ``lower``: lower is better (None: no direction);
    ``chart``: the title of the report chart that draws it ("" none; scores with one title share a chart);
    ``table``: shown in the last-evaluation tables; ``best``: may be chosen as ``eval.best``; ``log_y``."""
    key: str
    lower: Optional[bool]
    chart: str = ""
    table: bool = True
    best: bool = True
    log_y: bool = False


@dataclass
class Inputs:
    """What a metric's ``compute`` receives: the generated side's extraction (``fake.stats``, ``fake.features``,
    ``fake.logits``), the real side's (``real``), the number of generated samples ``n``, the evaluation's
    ``settings`` (evaluate.Settings), the ``evaluator`` and the generated ``samples`` (a tensor or fn(start, count))."""
    fake: Any
    real: Any
    n: int
    settings: Any
    evaluator: Any = None
    samples: Any = None


@dataclass(frozen=True)
class Metric:
    """A metric: see the module doc. ``compute(Inputs) -> dict`` returns its eval.json entry, with ``value``
    (its first score) or its scores by key; ``rows(entry)`` its lines in the printed table (default: each
    score); ``applies(kind, digits)`` None or why it cannot measure this data; ``in_auto``: the kinds of data
    ("image", "vector") on which it is part of ``ganforge eval``'s default set; ``provenance``: the extractor's description is added to its entry;
    ``extractor``: the one feature space it is defined in (CMMD: CLIP), or None."""
    name: str
    title: str
    scores: tuple
    compute: Optional[Callable[[Inputs], dict]]
    needs: frozenset = frozenset({"features"})
    kinds: frozenset = frozenset({"image", "vector"})
    rows: Optional[Callable[[dict], list]] = None
    applies: Optional[Callable[[str, Optional[str]], Optional[str]]] = None
    in_auto: frozenset = frozenset()
    provenance: bool = True
    selectable: bool = True
    extractor: Optional[str] = None          # the feature extractor it is defined on (cmmd: clip); None: any

    def flat(self, entry: dict) -> dict:
        """The numbers of one eval.json entry as metrics.jsonl keys."""
        out = {}
        for i, s in enumerate(self.scores):
            if s.key in entry and isinstance(entry[s.key], (int, float)):
                out[s.key] = entry[s.key]
            elif i == 0 and "value" in entry:
                out[s.key] = entry["value"]
        return out

    def lines(self, entry: dict) -> list:
        if self.rows is not None:
            return self.rows(entry)
        return [(s.key, f"{v:.4f}") for s, v in ((s, self.flat(entry).get(s.key)) for s in self.scores) if v is not None]

    def refusal(self, kind: str, digits: Optional[str]) -> Optional[str]:
        if self.applies is not None:
            return self.applies(kind, digits)
        if kind not in self.kinds:
            return f"{self.title} does not apply to {'toy points' if kind == 'vector' else 'images'}"
        return None


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` (or replace the one of its name); from then on eval.metrics, --metrics, eval.best, the
    evaluation, metrics.jsonl, the printed table, report.html and compare know it."""
    if not metric.name or "," in metric.name or metric.name in ("auto", "none"):
        raise ValueError(f"a metric needs a plain name (not auto or none, no commas), got {metric.name!r}")
    METRICS[metric.name] = metric
    return metric


def selectable() -> list[str]:
    """The names eval.metrics and --metrics accept."""
    return [m.name for m in METRICS.values() if m.selectable]


def scores() -> list[Score]:
    """Every score of every metric, in registry order."""
    return [s for m in METRICS.values() for s in m.scores]


def score(key: str) -> Optional[Score]:
    return next((s for s in scores() if s.key == key), None)


def metric_of(key: str) -> Optional[Metric]:
    """The metric that yields the score ``key``."""
    return next((m for m in METRICS.values() if any(s.key == key for s in m.scores)), None)


def best_choices() -> list[str]:
    """The scores eval.best may name."""
    return [s.key for s in scores() if s.best and s.lower is not None]


def lower_is_better(key: str) -> bool:
    s = score(key)
    return bool(s and s.lower)


def charts() -> list[tuple[str, tuple, bool]]:
    """(title, score keys, log y) of every chart, in registry order."""
    out: dict = {}
    for s in scores():
        if s.chart:
            keys, log_y = out.get(s.chart, ((), False))
            out[s.chart] = (keys + (s.key,), log_y or s.log_y)
    return [(title, keys, log_y) for title, (keys, log_y) in out.items()]


def table_keys() -> list[str]:
    return [s.key for s in scores() if s.table]


def flat_scores(result: dict) -> dict:
    """An evaluation result (``{"metrics": {name: entry}}``) as the flat numbers of a metrics.jsonl line."""
    out = {}
    for name, entry in result["metrics"].items():
        if name in METRICS and isinstance(entry, dict):
            out.update(METRICS[name].flat(entry))
    return out


def parse(spec: Optional[str], kind: str, digits: Optional[str]) -> tuple:
    """'auto' or a comma list -> the metrics that apply to this kind of data (``ganforge eval``'s auto)."""
    if spec in ("auto", "", None):
        return auto_metrics(kind, digits)
    names = tuple(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    for name in names:
        if name not in selectable():
            raise UserError(f"unknown metric {name!r}; choose from {','.join(selectable())} (comma-separated)")
    for name in names:
        why = METRICS[name].refusal(kind, digits)
        if why:
            raise UserError(why)
    return tuple(n for n in METRICS if n in names)


def auto_metrics(kind: str, digits: Optional[str], shape: tuple = (), data: str = "", density: bool = False,
                 training: bool = False) -> tuple:
    """What ``auto`` measures. ``ganforge eval``: every metric ``in_auto`` for this kind of data that applies
    (toys: modes; images: fid, kid, is, pr, dc, and modes on digits). Training (``training=True``) keeps evaluations cheap:
    data with a known density (toys) the mode counts (modes, hq, kl), other images than 28x28 digits
    nothing unless eval.metrics names it, else FID (with the digit features) and, on the embedded MNIST, modes."""
    if training:
        if density:
            return ("modes",)
        if kind == "image" and tuple(shape) != (1, 28, 28):
            return ()
        return ("fid", "modes") if data == "mnist" else ("fid",)
    return tuple(m.name for m in METRICS.values() if kind in m.in_auto and m.selectable and not m.refusal(kind, digits))
