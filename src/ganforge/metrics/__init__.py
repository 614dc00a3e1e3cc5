"""Evaluation: metrics on features, the feature extractors, and the evaluator that ties them to runs.

Metric functions take feature tensors (N, D) (logits (N, C) for the
Inception Score); :func:`get_extractor` turns images into features;
:class:`Evaluator` runs a whole evaluation with provenance (see
ganforge.metrics.evaluate). Each metric is a record of the registry
(metrics.registry; ganforge's own in metrics.builtin): :func:`register_metric`
adds one, :func:`register_extractor` a feature extractor.
"""
from . import builtin  # noqa: F401  (registers the built-in metrics)
from .digits import class_histogram, stacked_modes  # noqa: F401
from .divergence import divergences  # noqa: F401
from .evaluate import Evaluator, RealSet, Settings  # noqa: F401
from .features import Extractor, get_extractor, register_extractor, wrap_module  # noqa: F401
from .fid import FeatureStats, fid, frechet_distance  # noqa: F401
from .inception_score import inception_score  # noqa: F401
from .kid import kid  # noqa: F401
from .modes import mode_metrics  # noqa: F401
from .pixel import l1, pixel_scores, psnr, ssim  # noqa: F401
from .prdc import density_coverage, precision_recall  # noqa: F401
from .registry import Inputs, Metric, Score, register_metric  # noqa: F401
