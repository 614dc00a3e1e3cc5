"""``ganforge lab``: the seeds' claims about GANs as experiments that measure them.

Each experiment is one module in this package (see ``base`` for what it
provides); this registry maps its command-line name to the module, in the
order the docs present them.
"""
from __future__ import annotations

import importlib

EXPERIMENTS = {
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


def available() -> list[str]:
    """The experiments whose module exists, in registry order."""
    return [n for n in EXPERIMENTS if importlib.util.find_spec(f"{__name__}.{EXPERIMENTS[n]}") is not None]


def get(name: str):
    return importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")
