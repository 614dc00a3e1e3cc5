"""What several commands share: a config and its ``key=value`` overrides, counts checked as argparse reads them,
and ``--insist`` (go on past a memory estimate, ganforge.memory)."""
from __future__ import annotations

import argparse
import math
import os

from ..errors import UserError


def add_config_items(parser) -> None:
    """The positional CONFIG (a preset or YAML file) and ``key=value`` overrides of train and config."""
    parser.add_argument("items", nargs="*", metavar="CONFIG|key=value", help="a preset or YAML file (none: the main job, mnist-main, "
                        "unless data= or model= picks others), then overrides")


def split_args(items: list[str]) -> tuple[str | None, list[str]]:
    """The optional CONFIG (first item without '=') and the key=value overrides."""
    preset, overrides = None, []
    for i, item in enumerate(items):
        if "=" in item:
            overrides.append(item)
        elif i == 0 and preset is None:
            preset = item
        else:
            raise UserError(f"unexpected argument {item!r}: after the config, give key=value overrides")
    return preset, overrides


def count(low: int = 1, high: int | None = None):
    """An argparse type: a whole number in [low, high] (``-n -5``, ``--nrow 0`` are one line and exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text[:40]!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value
    parse.__name__ = "count"
    return parse


SEED = count(0, 2**63 - 1)


def positive(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text[:40]!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text[:40]}")
    return value


def add_insist(parser) -> None:
    parser.add_argument("--insist", action="store_true",
                        help="go on even when the memory estimate exceeds what the machine has free")


def apply_insist(args) -> None:
    """--insist reaches ganforge.memory.check through the environment (and so every rank of --nproc)."""
    if getattr(args, "insist", False):
        from ..memory import INSIST_ENV
        os.environ[INSIST_ENV] = "1"
