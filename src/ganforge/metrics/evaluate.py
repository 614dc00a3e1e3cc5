"""One evaluation: real and generated samples in, every asked-for metric out, each with its provenance.

Used by ``ganforge eval`` (a run, or two folders/npz files) and by the
training loop (``eval.every``). Which metrics exist, what each needs and how
each is computed is the registry's (metrics.registry, metrics.builtin); the
evaluator extracts what they need once and hands it to each. Images go through one feature extractor
(ganforge.metrics.features); the real side comes from the statistics cache
when it can. Every metric in the result carries the extractor, its weights
hash, its preprocessing protocol and both sample counts, so that a number is
never separated from what produced it (as torch-fidelity and clean-fid
insist, Parmar et al. 2022). Toy data (points) use the points themselves as
features, and ``modes`` adds the exact-density divergences.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

from torch import Tensor, nn

from ..errors import UserError
from . import cache, registry
from .digits import class_histogram, stacked_modes
from .divergence import divergences
from .extract import Extracted, Source, extract
from .features import Extractor, default_extractor, get_extractor
from .fid import FeatureStats, frechet_distance
from .modes import mode_metrics


WEIGHTED = ("inception", "dinov2", "clip")       # the extractors whose weights file the user gives (--NAME-weights)


@dataclass
class RealSet:
    """The real side: samples (a tensor, or a dataset's stored images read batch by batch), a cache key (None:
    never cached) and, for toys, the density."""
    name: str
    x: Tensor                             # or data.store.Images: len, shape, dim() and x[rows] as a tensor
    key: Optional[dict] = None
    density: object = None
    digits: Optional[str] = None          # "mnist" (one digit per image) or "stacked" (one per channel)
    y: Optional[Tensor] = None            # class labels, for the class-conditional scores
    values: Optional[dict] = None         # npz/IDX arrays: how the pixel values were read (data.transform)


@dataclass
class Settings:
    metrics: tuple = ()
    features: Union[str, nn.Module, None] = None      # None: the default for the data
    weights: Optional[str] = None                     # the extractor's weights file (--inception-weights, ...)
    protocol: str = "legacy-tf"
    n_real: Optional[int] = None                      # None: every real sample
    batch: int = 64
    kid_subsets: int = 100
    kid_size: int = 1000
    seed: int = 0
    device: object = "cpu"
    progress: str = "off"


class _Points(Extractor):
    """Toy data: the points are the features."""
    name, protocol, weights_hash = "points", "the samples themselves", ""

    def forward(self, x):
        self.dim = x.shape[1]
        return x.float(), None


class Evaluator:
    """Holds the extractor and the real side's features; call it with generated samples."""

    def __init__(self, real: RealSet, settings: Settings):
        self.real, self.s = real, settings
        self.kind = "image" if real.x.dim() == 4 else "vector"
        self.metrics = registry.parse(",".join(settings.metrics) if settings.metrics else "auto", self.kind, real.digits)
        if self.kind == "vector":
            self.extractor: Extractor = _Points()
        else:
            name = settings.features or _defined_on(self.metrics) or default_extractor(tuple(real.x.shape[1:]))
            for m in self.metrics:
                space = registry.METRICS[m].extractor
                if space is not None and space != name:
                    raise UserError(f"{registry.METRICS[m].title} is computed on {space} features; add --features "
                                    f"{space} (eval.features={space}), or leave it out of the metrics")
            opts = {}
            if name in WEIGHTED:
                opts = {"weights": settings.weights}
            if name == "inception":
                opts["protocol"] = settings.protocol
            self.extractor = get_extractor(name, **opts).to(settings.device)
        self.digit_net: Optional[Extractor] = None
        if "modes" in self.metrics and self.kind == "image":
            self.digit_net = (self.extractor if self.extractor.name == "mnist"
                              else get_extractor("mnist").to(settings.device))
        self._real: Optional[Extracted] = None
        self.real_source = "computed"

    @property
    def need_features(self) -> bool:
        return self.needs("features")

    @property
    def real_n(self) -> int:
        return min(self.s.n_real or len(self.real.x), len(self.real.x))

    def reference(self) -> Extracted:
        """The real side's features (from the cache, or extracted and cached)."""
        if self._real is not None:
            return self._real
        n = self.real_n
        key = None
        if self.real.key is not None and self.kind == "image":
            key = {**self.real.key, "n": n, **self.extractor.describe()}
            hit = cache.load(key, self.need_features, False)
            if hit is not None:
                self._real, self.real_source = hit, "cache"
                return hit
        self._real = extract(self.extractor, self.real.x, n, self.s.batch, keep_features=self.need_features or
                             self.kind == "vector", device=self.s.device, progress=self.s.progress,
                             label=f"real {self.real.name}")
        if key is not None:
            try:
                cache.save(key, self._real)
            except OSError as e:              # a read-only or full cache folder costs time, never the evaluation
                print(f"ganforge: note: reference statistics not cached ({e.strerror}: {cache.cache_dir()})",
                      file=sys.stderr)
        return self._real

    def real_features(self) -> Tensor:
        """The real samples' features, one row per sample (extracted once, kept)."""
        ref = self.reference()
        if ref.features is None:
            self._real = ref = extract(self.extractor, self.real.x, self.real_n, self.s.batch, keep_features=True,
                                       device=self.s.device)
        return ref.features

    def needs(self, what: str) -> bool:
        """Whether a metric of this evaluator reads ``what`` (features, stats, logits, samples)."""
        return any(what in registry.METRICS[m].needs for m in self.metrics)

    def extract_fake(self, fake: Source, n: int) -> Extracted:
        """Generated samples through the extractor, keeping the features and the logits that a metric or the
        digit classifier reads (for a share of the samples extracted elsewhere, e.g. by one of several processes)."""
        return extract(self.extractor, fake, n, self.s.batch, keep_features=True, keep_logits=self.keeps_logits(),
                       device=self.s.device)

    def keeps_logits(self) -> bool:
        """Whether a pass of the extractor over generated samples keeps its logits: a metric reads them, or the
        extractor is the digit classifier that modes() reads (so the samples are classified once)."""
        return self.extractor.has_logits and (self.needs("logits") or self.digit_net is self.extractor)

    def __call__(self, fake: Source, n: int, extracted: Optional[Extracted] = None) -> dict:
        """Every metric of this evaluator for ``n`` samples of ``fake`` (a tensor or fn(start, count)).

        ``extracted``: the samples' features (and logits) when they were extracted elsewhere, e.g.
        gathered from data-parallel processes; ``fake`` is then read only if the digit classifier
        is a second network."""
        t0 = time.time()
        records = [registry.METRICS[m] for m in self.metrics]
        if self.kind == "image" and not any(self.needs(w) for w in ("features", "stats", "logits")):
            fake = _materialise(fake, n)              # only the digit classifier is needed
            inputs = registry.Inputs(None, None, n, self.s, self, fake)
            return {"metrics": {r.name: r.compute(inputs) for r in records},
                    "real": {"data": self.real.name, "n": 0, "source": "not used"},
                    "extractor": (self.digit_net or self.extractor).describe(), "seconds": round(time.time() - t0, 2)}
        real = self.reference()
        keep_f = self.need_features or self.kind == "vector"
        keep_l = self.needs("logits")
        if keep_l and not self.extractor.has_logits:
            title = next(r.title for r in records if "logits" in r.needs)
            raise UserError(f"the {self.extractor.name} extractor has no logits for {title}")
        if self.kind == "image" and self.digit_net is not None and (extracted is None or self.digit_net is not self.extractor):
            fake = _materialise(fake, n)          # the digit classifier sees the same samples
        got = extracted if extracted is not None else extract(
            self.extractor, fake, n, self.s.batch, keep_features=keep_f, keep_logits=self.keeps_logits(),
            device=self.s.device, progress=self.s.progress, label="generated")
        prov = {**self.extractor.describe(), "n_fake": n, "n_real": real.n}
        inputs = registry.Inputs(got, real, n, self.s, self, fake)
        out: dict = {}
        for r in records:
            out[r.name] = r.compute(inputs)
            if r.provenance:
                out[r.name].update(prov)
        return {"metrics": out, "real": {"data": self.real.name, "n": real.n, "source": self.real_source},
                "extractor": self.extractor.describe(), "seconds": round(time.time() - t0, 2)}

    def modes(self, fake: Source, n: int, got: Optional[Extracted]) -> dict:
        """The mode metrics: toys' counts and divergences against the density, or the digit classifier's."""
        if self.kind == "vector":
            d = self.real.density
            x = got.features
            if d is None:
                raise UserError("mode metrics need a toy density (ring, grid, spiral, mixture1d)")
            return {**mode_metrics(x, d.means, d.std), **divergences(x, d, seed=self.s.seed),
                    "protocol": "VEEGAN/PacGAN modes; k-NN divergences against the exact log-density"}
        net = self.digit_net
        prov = {**net.describe(), "n_fake": n}
        if self.real.digits == "stacked":
            logits = [extract(net, _channel(fake, c), n, 256, keep_features=False, keep_logits=True,
                              device=self.s.device).logits for c in range(3)]
            return {**stacked_modes(logits), **prov, "protocol": "Stacked MNIST: each channel classified (VEEGAN/PacGAN)"}
        lg = got.logits if got is not None and net is self.extractor and got.logits is not None else \
            extract(net, fake, n, 256, keep_features=False, keep_logits=True, device=self.s.device).logits
        return {**class_histogram(lg), **prov}


def class_scores(ev: Evaluator, fake: Source, y: Tensor, got: Optional[Extracted] = None) -> dict:
    """Scores of class-conditional samples ``fake`` drawn for labels ``y``.

    ``class_acc``: the fraction the digit classifier (metrics.digits) puts in the class they were drawn for
    (digits only); ``fid_class``: the mean over classes of the FID between the samples of a class and the
    real images of that class, in the evaluator's features; ``fid_per_class`` lists them. With few samples
    per class FID is biased upwards (Chong & Forsyth 2020): compare values at equal eval.n only. ``got``: the
    same samples already through the evaluator's extractor (Evaluator.extract_fake), whose features, and logits
    when that extractor is the digit classifier, are used instead of a second pass."""
    n, out = len(y), {}
    lazy: list = []

    def samples() -> Tensor:                  # generated once, and only if a second network must see them
        if not lazy:
            lazy.append(_materialise(fake, n))
        return lazy[0]
    if ev.kind == "image" and ev.real.digits == "mnist":
        net = ev.digit_net or get_extractor("mnist").to(ev.s.device)
        lg = got.logits if got is not None and net is ev.extractor and got.logits is not None else \
            extract(net, samples(), n, 256, keep_features=False, keep_logits=True, device=ev.s.device).logits
        out["class_acc"] = float((lg.argmax(1).cpu() == y.cpu()).double().mean())
    if ev.real.y is not None and ev.kind == "image":
        real_f = ev.real_features()
        fake_f = got.features if got is not None and got.features is not None else \
            extract(ev.extractor, samples(), n, ev.s.batch, keep_features=True, device=ev.s.device).features
        per = []
        for c in range(int(y.max()) + 1):
            a, b = fake_f[y.cpu() == c], real_f[ev.real.y[:len(real_f)] == c]
            if len(a) < 2 or len(b) < 2:
                continue
            sa, sb = FeatureStats(a.shape[1]).update(a), FeatureStats(b.shape[1]).update(b)
            per.append(frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov))
        if per:
            out["fid_class"] = sum(per) / len(per)
            out["fid_per_class"] = [round(v, 4) for v in per]
    return out


def _defined_on(metrics) -> Optional[str]:
    """The extractor the asked-for metrics are defined on (CMMD: clip), when one is."""
    return next((registry.METRICS[m].extractor for m in metrics if registry.METRICS[m].extractor), None)


def _materialise(fake: Source, n: int) -> Tensor:
    return fake[:n] if isinstance(fake, Tensor) else fake(0, n)


def _channel(x: Tensor, c: int) -> Callable[[int, int], Tensor]:
    return lambda start, count: x[start:start + count, c:c + 1]

