"""Reference implementations to check ganforge against, imported safely.

torch-fidelity (Obukhov et al. 2020) is the reference for the FID Inception
network, and torchmetrics builds its FID/KID on it. Its package ``__init__``
imports torchvision, which is absent on a CPU-only install (or a CUDA build
that fails to load next to CPU torch), and torchmetrics then fails to import
too. :func:`install_torch_fidelity_shim` registers torch-fidelity as a bare
package, so that its modules that need only torch (the Inception feature
extractor, the metric helpers) import on their own. Used by the tests and
the benchmarks; ganforge itself never needs torch-fidelity.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def install_torch_fidelity_shim() -> bool:
    """Make ``torch_fidelity.<module>`` importable without its package __init__; False if not installed."""
    if "torch_fidelity" in sys.modules:
        return True
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or not spec.submodule_search_locations:
        return False
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["torch_fidelity"] = pkg
    return True


def torch_fidelity_inception():
    """torch-fidelity's ``feature_extractor_inceptionv3`` module, or None when it is not installed."""
    if not install_torch_fidelity_shim():
        return None
    return importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
