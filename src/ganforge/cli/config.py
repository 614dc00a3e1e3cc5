"""``ganforge config``: the resolved config of a preset with overrides, or ``--keys``, every key with its meaning.

``--keys`` prints the Markdown table of docs/config.md (a test checks that the page matches it)."""
from __future__ import annotations

import dataclasses
import sys

from .common import add_config_items, split_args


def add_parser(sub):
    c = sub.add_parser("config", help="print the resolved config of a preset with overrides")
    add_config_items(c)
    c.add_argument("--keys", action="store_true", help="list every key with its default, range and meaning")
    return c


def run(a) -> int:
    from ..config import dump, job_preset, load_config
    if a.keys:
        sys.stdout.write(key_table())
        return 0
    preset, overrides = split_args(a.items)
    sys.stdout.write(dump(load_config(job_preset(preset, tuple(overrides)), tuple(overrides))))
    return 0


def key_table() -> str:
    """Every config key with its default, what it allows and its help, as a Markdown table."""
    from ..config import Config
    from ..nets import FAMILIES
    from ..schema import describe, field_type, is_section

    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]

    def walk(cls, prefix: str, obj, label: str = "") -> None:
        for f in dataclasses.fields(cls):
            tp = field_type(cls, f)
            if is_section(tp):
                walk(tp, prefix + f.name + ".", getattr(obj, f.name))
                continue
            v = getattr(obj, f.name)
            shown = "null" if v is None else str(v).lower() if isinstance(v, bool) else v
            rows.append(f"| {label}`{prefix}{f.name}` | `{shown}` | {describe(tp, f.metadata)} | {f.metadata.get('help', '')} |")

    walk(Config, "", Config())
    for name in sorted(FAMILIES):
        walk(FAMILIES[name].options, "model.", FAMILIES[name].options(), f"({name}) ")
    notes = [f"- `model.name={name}` also sets " + ", ".join(f"`{k}={str(v).lower() if isinstance(v, bool) else v}`"
                                                          for k, v in FAMILIES[name].defaults)
             + " unless the preset or command line sets them." for name in sorted(FAMILIES) if FAMILIES[name].defaults]
    return "\n".join(rows) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
