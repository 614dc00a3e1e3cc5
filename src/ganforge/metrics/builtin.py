"""ganforge's own metrics as registry records (metrics.registry): one function and one record each.

FID (Heusel et al. 2017; FD_DINOv2 and FD_CLIP in those features, Stein et al.
2023), KID (Binkowski et al. 2018), CMMD (Jayasumana et al. 2024), the Inception Score
(Salimans et al. 2016), improved precision and recall (Kynkaanniemi et al.
2019, k = 3), density and coverage (Naeem et al. 2020, k = 5), the mode
counts of VEEGAN/PacGAN with the exact-density divergences of toy data
(metrics.modes, metrics.divergence) or the digit classifier's histogram,
the memorisation share (Alaa et al. 2022's authenticity, metrics.memorization; opt-in);
then the scores logged by the image-to-image and class-conditional
evaluations (metrics.translation, evaluate.class_scores), registered for
their directions, charts and tables.
"""
from __future__ import annotations

from typing import Optional

from .cmmd import cmmd
from .fid import frechet_distance
from .inception_score import inception_score
from .kid import kid
from . import memorization
from .prdc import density_coverage, precision_recall
from .registry import Inputs, Metric, Score, register_metric

IMAGES = frozenset({"image"})


def _fid(inp: Inputs) -> dict:
    """The Fréchet distance; named FID only in Inception's (and the offline extractors') features: in DINOv2's
    or CLIP's it is FD_DINOv2 or FD_CLIP (Stein et al. 2023), kept under the key fid with its ``name``."""
    a, b = inp.fake.stats, inp.real.stats
    entry = {"value": frechet_distance(a.mean, a.cov, b.mean, b.cov)}
    name = getattr(getattr(inp.evaluator, "extractor", None), "fd_name", "FID")
    if name != "FID":
        entry["name"] = name
    return entry


def _cmmd(inp: Inputs) -> dict:
    return cmmd(inp.real.features, inp.fake.features)


def _kid(inp: Inputs) -> dict:
    s = inp.settings
    size = min(s.kid_size, inp.n, inp.real.n)
    k = kid(inp.fake.features, inp.real.features, s.kid_subsets, size, seed=s.seed)
    return {"value": k["mean"], "std": k["std"], "subsets": s.kid_subsets, "subset_size": size}


def _kid_rows(e: dict) -> list:
    """KID ± its spread over subsets, with the subsets beside it; a subset as large as the smaller set (300 vs
    300 with --kid-size 1000) holds all of it in every subset, so the ± says nothing of its sampling, and the
    line says so."""
    text = f"{_pm(e, 6)}  ({e['subsets']} subsets of {e['subset_size']}"
    smaller = min(e.get("n_fake", float("inf")), e.get("n_real", float("inf")))
    if e["subset_size"] >= smaller:
        text += (f": every subset holds all {e['subset_size']} samples of the smaller set, so the ± does not show "
                 "their sampling; evaluate more samples, or lower --kid-size")
    return [("KID", text + ")")]


def _is(inp: Inputs) -> dict:
    splits = min(10, inp.n)
    r = inception_score(inp.fake.logits, splits, seed=inp.settings.seed)
    return {"value": r["mean"], "std": r["std"], "splits": splits}


def _modes(inp: Inputs) -> dict:
    return inp.evaluator.modes(inp.samples, inp.n, inp.fake)


def _modes_rows(d: dict) -> list:
    text = f"{d['modes']}/{d['of']}, KL from uniform {d['kl']:.4f}"
    if "hq" in d:
        text += f", high quality {d['hq']:.1f}%"
    if "confident" in d:
        text += f", confident {100 * d['confident']:.1f}%"
    rows = [("modes", text)]
    if "counts" in d and d["of"] <= 10:
        rows.append(("classes", " ".join(f"{i}:{c}" for i, c in enumerate(d["counts"]))))
    if "kl_reverse" in d:
        f = d["floor"]
        rows += [("KL(g||data)", f"{d['kl_reverse']:.4f} ± {d['kl_reverse_se']:.4f} (estimator floor {f['kl_reverse']:+.4f})"),
                 ("KL(data||g)", f"{d['kl_forward']:.4f} ± {d['kl_forward_se']:.4f} (floor {f['kl_forward']:+.4f})"),
                 ("JSD", f"{d['jsd']:.4f} ± {d['jsd_se']:.4f} (floor {f['jsd']:+.4f}; log 2 = 0.6931)")]
    return rows


def _modes_applies(kind: str, digits: Optional[str]) -> Optional[str]:
    if kind == "image" and not digits:
        return ("mode metrics on images need digits (data mnist or stacked-mnist); "
                "on other images use pr,dc for coverage")
    return None


def _conditional_rows(c: dict) -> list:
    rows = []
    if "class_acc" in c:
        rows.append(("class accuracy", f"{100 * c['class_acc']:.2f}% (digit classifier on samples drawn per class)"))
    if "fid_class" in c:
        rows.append(("per-class FID", f"{c['fid_class']:.4f} (mean over classes)"))
    return rows


def _pm(entry: dict, digits: int) -> str:
    return f"{entry['value']:.{digits}f} ± {entry['std']:.{digits}f}"


for record in (
    Metric("fid", "FID", (Score("fid", True, "FID"), Score("fid_ba", True, "FID (B -> A)", best=False)), _fid,
           needs=frozenset({"stats"}), in_auto=IMAGES, rows=lambda e: [(e.get("name", "FID"), f"{e['value']:.4f}")]),
    Metric("kid", "KID", (Score("kid", True, "KID"),), _kid, in_auto=IMAGES, rows=_kid_rows),
    Metric("is", "the Inception Score", (Score("is", False, "Inception score"),), _is, needs=frozenset({"logits"}),
           kinds=frozenset({"image"}), in_auto=IMAGES, rows=lambda e: [("IS", _pm(e, 4))],
           applies=lambda kind, digits: "the Inception Score needs class logits of images; toy data have none"
           if kind == "vector" else None),
    Metric("pr", "precision and recall", (Score("precision", False, "Precision and recall"),
                                          Score("recall", False, "Precision and recall")),
           lambda inp: precision_recall(inp.real.features, inp.fake.features, k=3), in_auto=IMAGES,
           rows=lambda e: [("precision", f"{e['precision']:.4f}"), ("recall", f"{e['recall']:.4f}")]),
    Metric("dc", "density and coverage", (Score("density", False, "Density and coverage"),
                                          Score("coverage", False, "Density and coverage")),
           lambda inp: density_coverage(inp.real.features, inp.fake.features, k=5), in_auto=IMAGES,
           rows=lambda e: [("density", f"{e['density']:.4f}"), ("coverage", f"{e['coverage']:.4f}")]),
    Metric("modes", "mode metrics",
           (Score("modes", False, "Modes covered"), Score("kl", True, "KL of the mode histogram"),
            Score("hq", False, table=False, best=False), Score("confident", False, table=False, best=False),
            Score("jsd", True, "Divergences", table=False, best=False, log_y=True),
            Score("kl_forward", True, "Divergences", table=False, best=False, log_y=True),
            Score("kl_reverse", True, "Divergences", table=False, best=False, log_y=True)),
           _modes, needs=frozenset({"samples"}), in_auto=frozenset({"image", "vector"}), rows=_modes_rows, applies=_modes_applies,
           provenance=False),
    # opt-in only (never auto, never eval.best: a generator of noise copies nothing)
    Metric("memorization", "memorization", (Score("memorized", True, "Memorization (Alaa et al. authenticity)", best=False),
                                            Score("memorized_baseline", None, "Memorization (Alaa et al. authenticity)",
                                                  table=False, best=False)),
           memorization.compute, rows=memorization.rows),
    Metric("cmmd", "CMMD", (Score("cmmd", True, "CMMD"),), _cmmd, kinds=IMAGES, extractor="clip",
           rows=lambda e: [("CMMD", f"{e['value']:.4f}  (unbiased; {e['biased']:.4f} as the authors' code, "
                                     "with the diagonals)")]),
    # the image-to-image evaluation (metrics.translation); _ba: CycleGAN's B -> A direction
    Metric("pixel", "pixel scores", (Score("psnr", False, "PSNR", best=False), Score("psnr_ba", False, "PSNR", best=False),
                                     Score("ssim", False, best=False), Score("l1", True, table=False, best=False),
                                     Score("l1_ba", True, table=False, best=False),
                                     Score("ssim_ba", False, table=False, best=False)), None, selectable=False),
    Metric("acc", "label preservation", (Score("acc", False, "Label preservation", best=False),
                                         Score("acc_ba", False, "Label preservation", best=False),
                                         Score("acc_truth", None, table=False)), None, selectable=False),
    # class-conditional runs (evaluate.class_scores)
    Metric("conditional", "class-conditional scores", (Score("class_acc", False, table=False, best=False),
                                                        Score("fid_class", True, table=False, best=False)),
           None, selectable=False, rows=_conditional_rows),
):
    register_metric(record)
