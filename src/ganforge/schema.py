"""Typed fields for dataclass schemas: coercion, range checks, one-line errors.

A config value arrives either typed (from YAML) or as a string (from a
``key=value`` override). :func:`coerce` turns either into the field's declared
type and checks the field's choices and range; anything else raises a
:class:`~ganforge.errors.UserError` whose message names the key, what is
allowed and what was given. :func:`read_yaml` reads the YAML files values come
from (presets, config files, a run's config.yaml) with the same one-line errors.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import yaml

from .errors import UserError, shown

_NONE_WORDS = {"null", "none", "~", ""}


def is_none(value: Any) -> bool:
    """Whether a raw value (from YAML or the command line) stands for null."""
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)
_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}


def opt(default: Any, help: str = "", *, choices: Union[Iterable, Callable, None] = None,
        min: Optional[float] = None, max: Optional[float] = None,
        gt: Optional[float] = None, lt: Optional[float] = None):
    """A dataclass field with a help text, allowed choices and a range."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "gt": gt, "lt": lt}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls):
    """A nested dataclass section field."""
    return dataclasses.field(default_factory=cls, metadata={"help": cls.__doc__ or ""})


def field_type(cls, f: dataclasses.Field):
    """The resolved annotation of ``f`` (annotations are strings here)."""
    return _hints(cls)[f.name]


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)       # evaluates every annotation string: once per class, not per field


def is_section(tp) -> bool:
    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def describe(tp, meta) -> str:
    """What a field allows, in words: 'an integer >= 1', 'one of a, b'."""
    base, nullable = _unwrap_optional(tp)
    choices = choice_list(meta)
    if choices is not None:
        text = "one of " + ", ".join(str(c) for c in choices)
    else:
        text = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(base, str(base))
        bounds = [f"{sym} {meta[k]:g}" for k, sym in (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<"))
                  if meta.get(k) is not None]
        if bounds:
            text += " " + " and ".join(bounds)
    if nullable:
        text += " (or null)"
    return text


def choice_list(meta):
    choices = meta.get("choices")
    if callable(choices):
        choices = choices()
    return None if choices is None else list(choices)


def coerce(key: str, value: Any, tp, meta) -> Any:
    """Turn ``value`` (typed or a string) into ``tp``; check choices and range."""
    base, nullable = _unwrap_optional(tp)

    def bad(extra: str = "") -> UserError:
        return UserError(f"{key} must be {describe(tp, meta)}, got {shown(value)}{extra}")

    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS and base is not str):
        if nullable:
            return None
        raise bad()
    if isinstance(value, str) and base is str and nullable and value.strip().lower() in _NONE_WORDS - {""}:
        return None
    if base is bool:
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            out = value.strip().lower() in _TRUE_WORDS
        else:
            raise bad()
    elif base is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            out = value
        elif isinstance(value, float) and value.is_integer():
            out = int(value)
        elif isinstance(value, str):
            try:
                out = int(value.strip())
            except ValueError:
                try:
                    f = float(value)
                except ValueError:
                    raise bad() from None
                if not f.is_integer():
                    raise bad() from None
                out = int(f)
        else:
            raise bad()
    elif base is float:
        if isinstance(value, bool):
            raise bad()
        try:
            out = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError, OverflowError):    # OverflowError: an int beyond any float (YAML 9999...)
            raise bad() from None
        if not math.isfinite(out):
            raise bad()
    elif base is str:
        if isinstance(value, bool):     # YAML 1.1 reads off/on/no/yes as booleans: the word, where it is a choice
            words = [w for w in (("on", "yes", "true") if value else ("off", "no", "false"))
                     if w in (choice_list(meta) or ())]
            if not words:
                raise bad()
            value = words[0]
        if not isinstance(value, (str, int, float)):
            raise bad()
        out = str(value)
    else:  # pragma: no cover - schema author error
        raise TypeError(f"unsupported field type {tp} for {key}")

    choices = choice_list(meta)
    if choices is not None and out not in choices:
        hint = ""
        if isinstance(out, str):
            close = difflib.get_close_matches(out, [str(c) for c in choices], n=1)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
        raise bad(hint)
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        if meta.get("min") is not None and out < meta["min"]:
            raise bad()
        if meta.get("max") is not None and out > meta["max"]:
            raise bad()
        if meta.get("gt") is not None and not out > meta["gt"]:
            raise bad()
        if meta.get("lt") is not None and not out < meta["lt"]:
            raise bad()
    return out


def closest_key(key: str, valid: Iterable[str]) -> Optional[str]:
    """The valid dotted key closest to ``key`` (whole key, then last part)."""
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return close[0]
    last = key.rsplit(".", 1)[-1]
    by_last = {v.rsplit(".", 1)[-1]: v for v in valid}
    close = difflib.get_close_matches(last, list(by_last), n=1, cutoff=0.7)
    return by_last[close[0]] if close else None


def unknown_key(key: str, valid: Iterable[str]) -> UserError:
    near = closest_key(key, valid)
    if near:
        return UserError(f"unknown config key {key!r}; did you mean {near!r}?")
    tops = sorted({v.split(".", 1)[0] for v in valid})
    return UserError(f"unknown config key {key!r}; valid top-level keys: {', '.join(tops)}")


def dotted_keys(cls, prefix: str = "") -> list[str]:
    """Every leaf key of a schema, dotted (sections recurse)."""
    out = []
    for f in dataclasses.fields(cls):
        tp = field_type(cls, f)
        if is_section(tp):
            out += dotted_keys(tp, prefix + f.name + ".")
        else:
            out.append(prefix + f.name)
    return out


class _NoAliases(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: a 300-byte file of nested ``*name`` references (the "billion
    laughs") would otherwise stand for billions of values, hanging whatever walks or prints them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"an alias (*{event.anchor}): configs do not accept "
                                              "YAML aliases; write the value out", event.start_mark)
        return super().compose_node(parent, index)


def load_yaml_text(text: str, source: str) -> object:
    """The value of a YAML text (a config) without aliases; a UserError names ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_NoAliases)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = f" ({e.problem})" if getattr(e, "problem", None) else ""
        raise UserError(f"{source} is not valid YAML{at}{problem}; a config file maps keys to values, one "
                        "'key: value' a line (ganforge config --keys lists the keys)") from None
    except RecursionError:
        raise UserError(f"{source} nests its values too deeply to be a config") from None
    except Exception as e:     # PyYAML's constructors fail plainly on some values (2001-13-45, !!bool maybe, !!int '')
        why = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise UserError(f"{source} is not valid YAML: a value it cannot read ({why})") from None


def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    data = load_yaml_text(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of config keys, not a {type(data).__name__}: one 'key: value' "
                        "a line, e.g. 'steps: 1000'" + (", without a leading '- '" if isinstance(data, list) else ""))
    return data
