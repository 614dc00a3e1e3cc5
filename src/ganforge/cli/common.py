"""What several commands share: a config and its ``key=value`` overrides on the command line."""
from __future__ import annotations

from ..errors import UserError


def add_config_items(parser) -> None:
    """The positional CONFIG (a preset or YAML file) and ``key=value`` overrides of train and config."""
    parser.add_argument("items", nargs="*", metavar="CONFIG|key=value", help="a preset or YAML file, then overrides")


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
