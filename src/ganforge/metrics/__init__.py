"""Metrics on features: FID, KID, Inception Score, precision/recall, density/coverage, toy mode coverage.

Functions take feature tensors (N, D) (logits (N, C) for the Inception
Score); feature extractors come in a later part of issue 3.
"""
from .fid import FeatureStats, fid, frechet_distance  # noqa: F401
from .inception_score import inception_score  # noqa: F401
from .kid import kid  # noqa: F401
from .modes import mode_metrics  # noqa: F401
from .prdc import density_coverage, precision_recall  # noqa: F401
