"""``ganforge lab``: the seeds' claims about GANs as experiments that measure them.

Each experiment is one module in this package (see ``base`` for what it
provides); this registry maps its command-line name to the module, in the
order the docs present them. :func:`register_experiment` adds one from
outside the package.
"""
from __future__ import annotations

import importlib
from types import ModuleType

EXPERIMENTS: dict[str, str | ModuleType] = {
    "optimal-d": "optimal_d",
    "value-jsd": "value_jsd",
    "equilibrium": "equilibrium",
    "saturation": "saturation",
    "collapse": "collapse",
    "flow": "flow",
    "ranking": "ranking",
    "evolution": "evolution",
    "ae-vs-d": "ae_vs_d",
}


def register_experiment(name: str, module: ModuleType) -> None:
    """Add ``ganforge lab NAME``: ``module`` has ``SUMMARY``, ``CLAIM``, ``PAGE`` and ``run(lab) -> Outcome`` (lab.base)."""
    if not all(hasattr(module, a) for a in ("SUMMARY", "CLAIM", "run")):
        raise TypeError(f"experiment {name}: its module needs SUMMARY, CLAIM and run(lab)")
    EXPERIMENTS[name] = module


def available() -> list[str]:
    """The experiments whose module exists, in registry order."""
    return [n for n, m in EXPERIMENTS.items()
            if isinstance(m, ModuleType) or importlib.util.find_spec(f"{__name__}.{m}") is not None]


def get(name: str):
    m = EXPERIMENTS[name]
    return m if isinstance(m, ModuleType) else importlib.import_module(f"{__name__}.{m}")
