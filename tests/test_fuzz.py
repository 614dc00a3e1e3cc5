"""Property-based tests (hypothesis) of the config parser and the file loaders (issue 9).

Each property is one sentence: a ``key=value`` override, a YAML config file, an image folder or an npz file
either gives a well-formed result or a one-line :class:`~ganforge.errors.UserError`, never another exception;
a config obeys every field's declared type, range and choices and survives ``dump`` -> ``from_dict``; a
folder gives exactly its decodable images. A failure found here is kept as a plain ``@example``.

Under CI (the ``CI`` environment variable set) the examples are derandomized, so a CI run is reproducible;
locally they are random and hypothesis remembers failures in ``.hypothesis/``.
"""
import collections
import dataclasses
import io
import math
import operator
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from ganforge.config import Config, build, dump, from_dict, load_config, presets, raw_from
from ganforge.data import folder as files, load_dataset
from ganforge.errors import UserError
from ganforge.nets import FAMILIES
from ganforge.schema import _unwrap_optional, choice_list, field_type, is_section

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# ------------------------------------------------------------------ the schema, walked

def leaves(cls, prefix=""):
    """(dotted key, type, metadata) of every leaf field of a schema class."""
    out = []
    for f in dataclasses.fields(cls):
        tp = field_type(cls, f)
        if is_section(tp):
            out += leaves(tp, prefix + f.name + ".")
        else:
            out.append((prefix + f.name, tp, f.metadata))
    return out


GENERAL = leaves(Config)
ARCH = {name: leaves(fam.options, "model.") for name, fam in FAMILIES.items()}
SECTIONS = ["data", "model", "penalty", "optim", "optim.g", "optim.d", "ema", "log", "eval", "guard"]
REAL_KEYS = sorted({k for k, _, _ in GENERAL} | {k for ls in ARCH.values() for k, _, _ in ls} | set(SECTIONS))
NAME_KEYS = {"model", "model.name", "penalty", "penalty.name"}    # changing these drops the old family's options
PRESETS = [None] + presets()
NONE_WORDS = ["null", "Null", "NULL", "~", "none", "None", " null "]
BOOL_WORDS = {True: ["true", "True", "TRUE", "yes", "on", "1", " true "], False: ["false", "False", "no", "off", "0"]}
YAML_SPECIAL = ["", " ", "~", "null", "None", ".inf", "-.inf", ".nan", "inf", "-inf", "nan", "NaN", "1e999", "-1e999",
                "1e-999", "0x10", "0o17", "0b11", "010", "1_000", "+5", "-0", "-0.0", "0.0", "1.", ".5", "5e-1", "1E3",
                "1e3", "3.0", "2.5", "yes", "no", "on", "off", "y", "n", "true", "False", "1", "0", "-1", "[1, 2]",
                "{a: 1}", "[]", "{}", "'q'", '"dq"', "2001-12-14", "2001-13-45", "12:30:00", "190:20:30", "&a x",
                "*a", "!!int 3", "!!float x", "!!binary AAA", "\t1", "1\n", "\u0663", "\uff11", "1 000", "9" * 400,
                "-" + "9" * 400, "1e308", "1.7976931348623157e309", "4.9e-324", "=", "a=b", "#", "- 1", ":", "? x"]
ALL_CHOICES = sorted({str(c) for _, _, m in GENERAL + [x for ls in ARCH.values() for x in ls]
                      for c in (choice_list(m) or [])})


def satisfies(v, tp, meta) -> bool:
    """Whether ``v`` is a value the field declares: its type (None where optional), range and choices."""
    base, nullable = _unwrap_optional(tp)
    if v is None:
        return nullable
    if type(v) is not base or (base is float and not math.isfinite(v)):
        return False
    choices = choice_list(meta)
    if choices is not None and v not in choices:
        return False
    if base in (int, float):
        for k, op in (("min", operator.ge), ("max", operator.le), ("gt", operator.gt), ("lt", operator.lt)):
            if meta.get(k) is not None and not op(v, meta[k]):
                return False
    return True


def check_config(cfg: Config) -> None:
    """Every field of ``cfg`` (the family's options included) obeys its declaration."""
    for key, tp, meta in GENERAL + ARCH[cfg.model.name]:
        v = cfg.get(key)
        assert satisfies(v, tp, meta), f"{key}={v!r} breaks its declaration"
    assert type(cfg.model.arch) is FAMILIES[cfg.model.name].options


def same(a, b) -> bool:
    """Equal with equal types all the way down (1, 1.0 and True are three different values here)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def round_trips(cfg: Config) -> None:
    back = from_dict(yaml.safe_load(dump(cfg)))
    assert same(back.to_dict(), cfg.to_dict()), (cfg.to_dict(), back.to_dict())


def one_line(e: UserError) -> None:
    assert str(e) and "\n" not in str(e), repr(str(e))


def outcome(preset, overrides):
    try:
        return "ok", build(raw_from(preset, overrides)).to_dict()
    except UserError as e:
        one_line(e)
        return "error", str(e)


def same_outcome(a, b) -> bool:
    return a[0] == b[0] and (a[1] == b[1] if a[0] == "error" else same(a[1], b[1]))


# ------------------------------------------------------------------ overrides

def _mutate(key: str, how: str, i: int, ch: str) -> str:
    i = i % (len(key) + 1)
    return {"drop": key[:i] + key[i + 1:], "insert": key[:i] + ch + key[i:], "upper": key.upper(),
            "dots": key.replace(".", ".."), "lead": "." + key, "trail": key + ".", "space": f" {key} ",
            "child": key + ".x", "parent": "x." + key, "dash": key.replace("_", "-")}[how]


keys = st.one_of(
    st.sampled_from(REAL_KEYS),
    st.builds(_mutate, st.sampled_from(REAL_KEYS),
              st.sampled_from(["drop", "insert", "upper", "dots", "lead", "trail", "space", "child", "parent", "dash"]),
              st.integers(0, 40), st.characters(codec="utf-8", exclude_characters="=")),
    st.text(max_size=8).filter(lambda s: "=" not in s),
)
values = st.one_of(
    st.sampled_from(YAML_SPECIAL), st.sampled_from(ALL_CHOICES), st.sampled_from(NONE_WORDS),
    st.sampled_from([w for ws in BOOL_WORDS.values() for w in ws]),
    st.integers().map(str), st.integers(-(10 ** 30), 10 ** 30).map(str),
    st.floats().map(repr), st.floats(allow_nan=False).map(lambda x: f"{x:e}"),
    st.text(max_size=10),
)
overrides = st.one_of(st.builds(lambda k, v: f"{k}={v}", keys, values), st.text(max_size=10))


@settings(max_examples=600)
@given(preset=st.sampled_from(PRESETS), ovs=st.lists(overrides, max_size=4))
@example(preset=None, ovs=["optim.g.lr=1e999"])
@example(preset=None, ovs=["steps=1e300"])
@example(preset=None, ovs=["name=\x85"])
def test_overrides_give_a_valid_config_or_a_user_error(preset, ovs):
    try:
        cfg = build(raw_from(preset, ovs))
    except UserError as e:
        one_line(e)
        return
    check_config(cfg)
    round_trips(cfg)


@settings(max_examples=300)
@given(preset=st.sampled_from(PRESETS), base=st.lists(overrides, max_size=2), key=keys, v1=values, v2=values)
@example(preset=None, base=[], key="", v1="", v2=" ")
@example(preset="toy-grid", base=[], key="penalty.weight", v1="2", v2="null")
def test_repeating_an_override_changes_nothing_and_the_last_one_wins(preset, base, key, v1, v2):
    once = outcome(preset, base + [f"{key}={v2}"])
    assert same_outcome(once, outcome(preset, base + [f"{key}={v2}"] * 2))
    # a new family or penalty drops the options set for the old one; an empty key is refused at its first use
    if key.strip() not in NAME_KEYS | {""}:
        assert same_outcome(once, outcome(preset, base + [f"{key}={v1}", f"{key}={v2}"]))


@st.composite
def valid_settings(draw):
    """(family, key, text of a value, the value that text means) for one leaf of the schema."""
    family = draw(st.sampled_from(sorted(FAMILIES)))
    key, tp, meta = draw(st.sampled_from(GENERAL + ARCH[family]))
    base, nullable = _unwrap_optional(tp)
    choices = choice_list(meta)
    if nullable and draw(st.integers(0, 4)) == 0:
        words = NONE_WORDS + ([""] if base is not str else [])
        return family, key, draw(st.sampled_from(words)), None
    if choices is not None:
        v = draw(st.sampled_from(choices))
        return family, key, str(v), v
    if base is bool:
        v = draw(st.booleans())
        return family, key, draw(st.sampled_from(BOOL_WORDS[v])), v
    if base is int:
        lo = meta["min"] if meta.get("min") is not None else None
        v = draw(st.integers(min_value=lo))
        forms = [str(v), f" {v} ", f"{v:_}"] + ([f"+{v}"] if v >= 0 else [])
        if abs(v) < 2 ** 53:
            forms += [f"{v}.0", f"{v}e0"]
        return family, key, draw(st.sampled_from(forms)), v
    if base is float:
        lo = meta.get("min") if meta.get("min") is not None else meta.get("gt")
        hi = meta.get("max") if meta.get("max") is not None else meta.get("lt")
        x = draw(st.floats(min_value=lo, max_value=hi, exclude_min=meta.get("gt") is not None,
                           exclude_max=meta.get("lt") is not None, allow_nan=False, allow_infinity=False))
        text = draw(st.sampled_from([repr(x), f"{x:e}", f"{x:.3E}", f" {x!r} ", f"{x:.17g}", f"{x:.1f}"]))
        return family, key, text, float(text)      # what the text says; a rounding may leave the range
    assert base is str, key
    text = draw(st.text(max_size=12))
    is_none = nullable and text.strip().lower() in {"null", "none", "~"}
    return family, key, text, None if is_none else text


@settings(max_examples=500)
@given(setting=valid_settings())
@example(setting=("dcgan", "optim.g.lr", "1e-4", 1e-4))
@example(setting=("dcgan", "optim.d.beta1", f"{0.99999999:e}", 1.0))
@example(setting=("mlp", "steps", "12_000", 12000))
@example(setting=("dcgan", "penalty.weight", "~", None))
@example(setting=("dcgan", "name", "None", None))
@example(setting=("dcgan", "device", "", ""))
def test_valid_values_round_trip_exactly(setting):
    family, key, text, want = setting
    tp, meta = {k: (t, m) for k, t, m in GENERAL + ARCH[family]}[key]
    ovs = [f"model={family}", f"{key}={text}"]
    if not satisfies(want, tp, meta):             # e.g. 0.9999999 written as 1.000000e+00 where < 1 is required
        with pytest.raises(UserError):
            build(raw_from(None, ovs))
        return
    cfg = build(raw_from(None, ovs))
    got = cfg.get(key)
    assert type(got) is type(want) and got == want, (key, text, got)
    check_config(cfg)
    round_trips(cfg)


# ------------------------------------------------------------------ YAML config files

KEY_PARTS = sorted({p for k in REAL_KEYS for p in k.split(".")} | set(REAL_KEYS))
# scalars YAML itself reads into something odd, or fails on: bad dates, bad tags, ints beyond any float
YAML_TRAPS = ["2001-13-45", "2001-02-30", "2001-12-14 25:00:00", "!!float x", "!!int x", "!!bool maybe",
              "9" * 400, "-" + "9" * 400, "[1, 2]", "{a: 1}", "[[]]", "!!binary AAA", "!!set {a}", "&a [*a]",
              '!!int ""', "!!timestamp x", "2001-12-14t21:59:43.10+99:00"]
yaml_keys = st.one_of(st.sampled_from(KEY_PARTS), st.text(max_size=6), st.integers(-3, 3), st.booleans(), st.none())
yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10 ** 400), 10 ** 400), st.floats(),
                         st.text(max_size=8), st.sampled_from(YAML_SPECIAL + ALL_CHOICES), st.dates(),
                         st.binary(max_size=4))
yaml_trees = st.recursive(yaml_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                st.dictionaries(yaml_keys, inner, max_size=4)),
                          max_leaves=12)


def _nest(flat: dict, nested: bool) -> dict:
    """{'optim.g.lr': v} as it is, or as {'optim': {'g': {'lr': v}}} where no key is both a value and a section."""
    if not nested:
        return flat
    out: dict = {}
    for k, v in flat.items():
        *parents, last = k.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else None
            if node is None:
                break
        if node is not None and not isinstance(node.get(last), dict):
            node[last] = v
    return out


placed = st.builds(_nest, st.dictionaries(st.sampled_from(REAL_KEYS), yaml_trees, max_size=4), st.booleans())
dumped = st.one_of(placed, st.dictionaries(yaml_keys, yaml_trees, max_size=6), yaml_trees).map(
    lambda tree: yaml.safe_dump(tree, sort_keys=False))


def _line(key: str, value: str) -> str:
    *parents, last = key.split(".")
    return "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parents)) + f"{'  ' * len(parents)}{last}: {value}\n"


# hand-written lines: what YAML itself reads from unquoted scalars (dates, sexagesimals, tags, anchors)
lines = st.lists(st.builds(_line, st.sampled_from(REAL_KEYS),
                           st.one_of(st.sampled_from(YAML_TRAPS), st.sampled_from(YAML_SPECIAL + ALL_CHOICES))),
                 max_size=4).map("".join)
yaml_texts = st.one_of(lines, dumped, st.text(max_size=40))


@settings(max_examples=300)
@given(text=yaml_texts)
@example(text="model: [1, 2]\n")
@example(text="model:\n  name: {a: 1}\n")
@example(text="optim:\n  g:\n    lr: " + "9" * 400 + "\n")
@example(text="steps: 2001-13-45\n")
@example(text="seed: !!int x\n")
@example(text="batch_size: !!bool maybe\n")
@example(text='seed: !!float ""\n')
@example(text="name: !!timestamp x\n")
@example(text="a: " + "[" * 3000 + "]" * 3000 + "\n")
def test_a_yaml_config_gives_a_config_or_a_user_error(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            cfg = load_config(str(path))
        except UserError as e:
            one_line(e)
            return
    check_config(cfg)
    round_trips(cfg)


# ------------------------------------------------------------------ image folders

GRAY_MODES = files.GRAY_MODES      # what folder.folder_channels reads as one channel
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp", "TIFF": ".tif"}


def _savable():
    """(mode, format) pairs PIL writes and reads back here."""
    out = []
    for mode in ("1", "L", "LA", "RGB", "RGBA", "P", "PA", "I;16", "I", "CMYK", "YCbCr", "F"):
        for fmt in FORMATS:
            try:
                buf = io.BytesIO()
                Image.new(mode, (3, 2)).save(buf, fmt)
                buf.seek(0)
                Image.open(buf).load()
            except Exception:
                continue
            out.append((mode, fmt))
    return out


SAVABLE = _savable()
SUFFIXES = sorted(files.IMAGE_SUFFIXES) + [".PNG", ".JPG", ".tif", ".txt"]


def _image_bytes(mode, fmt, w, h, seed, transparency):
    rng = np.random.default_rng(seed)
    im = Image.new(mode, (w, h))
    im.frombytes(rng.bytes(len(im.tobytes())))
    if mode in ("P", "PA"):
        im.putpalette(rng.bytes(768))
    buf = io.BytesIO()
    extra = {"transparency": transparency} if transparency is not None and mode == "P" and fmt in ("PNG", "GIF") else {}
    im.save(buf, fmt, **extra)
    return buf.getvalue()


entries = st.lists(st.fixed_dictionaries({
    "kind": st.sampled_from(["image"] * 4 + ["junk", "empty", "truncated", "hidden", "hidden_dir", "loop"]),
    "mode_fmt": st.sampled_from(SAVABLE),
    "size": st.tuples(st.integers(1, 40), st.integers(1, 40)),
    "seed": st.integers(0, 2 ** 32 - 1),
    "transparency": st.none() | st.integers(0, 255),
    "suffix": st.none() | st.sampled_from(SUFFIXES),        # None: the format's own
    "folder": st.sampled_from(["", "a", "b", "a/deep"]),
    "junk": st.binary(max_size=64),
    "cut": st.floats(0.0, 0.99),
}), max_size=8)


def _write_folder(root: Path, items) -> None:
    originals = []
    for i, e in enumerate(items):
        mode, fmt = e["mode_fmt"]
        suffix = e["suffix"] or FORMATS[fmt]
        folder = root / e["folder"]
        if e["kind"] == "hidden_dir":
            folder = folder / ".cache"
        folder.mkdir(parents=True, exist_ok=True)
        name = (".h" if e["kind"] == "hidden" else "") + f"{i:02d}{suffix}"
        if e["kind"] == "loop":                    # a link back up the tree: each image must still count once
            up = ".." if e["folder"] and e["cut"] >= 0.5 else "."      # never above the temporary root
            os.symlink(up, folder / f"{i:02d}up", target_is_directory=True)
            continue
        if e["kind"] in ("image", "hidden", "hidden_dir"):
            data = _image_bytes(mode, fmt, *e["size"], e["seed"], e["transparency"])
            originals.append(data)
        elif e["kind"] == "junk":
            data = e["junk"]
        elif e["kind"] == "empty":
            data = b""
        else:
            data = originals[-1] if originals else _image_bytes(mode, fmt, *e["size"], e["seed"], None)
            data = data[:int(len(data) * e["cut"])]
        (folder / name).write_bytes(data)


def _expected(root: Path):
    """What the folder holds, by PIL alone: the listed files, the decodable ones, whether any is in colour."""
    listed = sorted(Path(d) / f for d, _, names in os.walk(root) for f in names     # links not followed
                    if Path(f).suffix.lower() in files.IMAGE_SUFFIXES
                    and not any(part.startswith(".") for part in (Path(d) / f).relative_to(root).parts))
    decodable, colour = [], False
    for p in listed:
        try:
            with Image.open(p) as im:
                colour |= im.mode not in GRAY_MODES
                im.load()
            decodable.append(p)
        except Exception:
            pass
    return listed, decodable, colour


def _entry(kind, mode_fmt=("L", "PNG"), folder="a", cut=0.5, size=(4, 4)):
    return {"kind": kind, "mode_fmt": mode_fmt, "size": size, "seed": 0, "transparency": None, "suffix": None,
            "folder": folder, "junk": b"", "cut": cut}


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")   # truncated TIFFs named .png
@settings(max_examples=150)
@given(items=entries, channels=st.sampled_from([None, 1, 3]), resolution=st.sampled_from([None, 1, 5, 8, 16]),
       labels=st.booleans())
@example(items=[_entry("image"), _entry("loop", cut=0.9)], channels=None, resolution=8, labels=True)
@example(items=[_entry("image", ("I;16", "PNG"), size=(1, 40)), _entry("truncated", cut=0.9)], channels=None,
         resolution=None, labels=True)
def test_an_image_folder_gives_its_decodable_images_or_a_user_error(items, channels, resolution, labels):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        _write_folder(root, items)
        listed, decodable, colour = _expected(root)
        ovs = [f"data=folder:{root}", f"data.labels={labels}"]
        ovs += [f"data.channels={channels}"] * (channels is not None) + [f"data.resolution={resolution}"] * (resolution is not None)
        cfg = load_config(None, ovs).data
        firsts = {p.relative_to(root).parts[0] for p in listed if len(p.relative_to(root).parts) > 1}
        loose = [p for p in listed if len(p.relative_to(root).parts) == 1]
        if not listed or not decodable or (labels and (loose or not firsts)):
            with pytest.raises(UserError) as e:
                load_dataset(cfg)
            one_line(e.value)
            event("folder: " + str(e.value).split(" ")[0 if "none" in str(e.value) else 1][:30])
            return
        ds = load_dataset(cfg)
        again = load_dataset(cfg)
    event(f"folder: loaded, {len(decodable)} of {len(listed)} decodable")
    side = resolution or 64
    c = channels or (3 if colour else 1)
    assert tuple(ds.x.shape) == (len(decodable), c, side, side)
    assert ds.x.dtype == torch.float32 and torch.isfinite(ds.x).all()
    assert ds.x.min() >= -1 and ds.x.max() <= 1
    assert torch.equal(ds.x, again.x)
    if labels:
        readable = {p.relative_to(root).parts[0] for p in decodable}         # a class of unreadable files only: left out
        assert ds.classes == sorted(readable) and torch.equal(ds.y, again.y)
        want = collections.Counter(ds.classes.index(p.relative_to(root).parts[0]) for p in decodable)
        assert collections.Counter(ds.y.tolist()) == want
    else:
        assert ds.y is None


# ------------------------------------------------------------------ npz files

TRIPPED = []


def _trip():
    TRIPPED.append(1)
    return "unpickled"


class Tripwire:
    """An object whose unpickling is recorded: no loader may ever unpickle it."""

    def __reduce__(self):
        return _trip, ()


DTYPES = ["uint8"] * 3 + ["float32"] * 3 + ["uint16", "int8", "int32", "int64", "uint64", "float16", "float64",
                                             "bool", "complex64", "U3", "m8[s]", "object"]
sides = st.integers(1, 5)
shapes = st.one_of(
    st.tuples(sides, sides), st.tuples(sides, sides, sides),                 # (N, d) and (N, H, W)
    st.tuples(sides, st.sampled_from([1, 3, 4]), sides, sides),              # (N, C, H, W)
    st.tuples(sides, sides, sides, st.sampled_from([1, 3, 4])),              # (N, H, W, C)
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5),         # anything, empty sides included
)


@st.composite
def npz_arrays(draw, shape=shapes):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(shape)
    if dtype == "object":
        a = np.empty(shape, dtype=object)
        for i in np.ndindex(shape):
            a[i] = draw(st.sampled_from([Tripwire(), 1, 0.5, "s", None]))
        return a
    dt = np.dtype(dtype)
    how = draw(st.sampled_from(["any", "pixels", "pixels"]))     # pixels: values an image loader takes
    if how == "pixels" and dt.kind == "f":
        lo, hi = draw(st.sampled_from([(0, 1), (-1, 1), (0, 255)]))
        return draw(hnp.arrays(dt, shape, elements=st.floats(lo, hi, width=8 * dt.itemsize)))
    if how == "pixels" and dt.kind in "iu":
        return draw(hnp.arrays(dt, shape, elements=st.integers(0, min(255, np.iinfo(dt).max))))
    return draw(hnp.arrays(dt, shape))


def _labels(n):
    length = st.integers(0, 6) if n is None else st.sampled_from([n, n, n, n + 1, max(n - 1, 0)])
    return st.one_of(
        length.flatmap(lambda k: hnp.arrays("int64", k, elements=st.integers(0, 9))),
        length.flatmap(lambda k: hnp.arrays(st.sampled_from(["int64", "uint8", "uint64", "int8"]), k)),
        npz_arrays(shape=st.tuples(st.sampled_from([n or 0, 1, 2]))))


@st.composite
def npz_files(draw):
    """The arrays of an npz file: mostly 'x', maybe 'y', maybe others under random names."""
    names = st.text("abcxyXY_.-0", min_size=1, max_size=4)
    arrays = draw(st.dictionaries(names, npz_arrays(shape=st.tuples(sides)), max_size=2))
    if draw(st.sampled_from([True, True, True, True, False])):
        arrays["x"] = x = draw(npz_arrays())
        if draw(st.booleans()):
            arrays["y"] = draw(_labels(x.shape[0] if x.ndim else None))
    return arrays


def _write_npz(path: Path, arrays: dict, cut) -> None:
    """np.savez's layout (one .npy member per array), written by hand so any name is allowed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, a in arrays.items():
            with zf.open(k + ".npy", "w") as f:
                np.lib.format.write_array(f, a, allow_pickle=True)
    data = buf.getvalue()
    path.write_bytes(data[:int(len(data) * cut)] if cut is not None else data)


@settings(max_examples=300)
@given(arrays=npz_files(), cut=st.sampled_from([None] * 5 + ["cut"]).flatmap(lambda c: st.floats(0, 0.99) if c else st.none()))
@example(arrays={"x": np.float64(3.0)}, cut=None)
@example(arrays={"x": np.zeros((3, 0, 5), np.float32)}, cut=None)
@example(arrays={"x": np.zeros((3, 0), np.float32)}, cut=None)
@example(arrays={"x": np.full((3, 2), 1e300)}, cut=None)
@example(arrays={"x": np.ones((3, 2, 2), "m8[s]")}, cut=None)
@example(arrays={"x": np.array([[Tripwire()]], dtype=object)}, cut=None)
@example(arrays={"x": np.zeros((2, 4, 4)), "y": np.array([Tripwire(), 1], dtype=object)}, cut=None)
@example(arrays={"x": np.zeros((1, 4, 4)), "y": np.array([2 ** 63 + 5], np.uint64)}, cut=None)
@example(arrays={"x": np.zeros((1, 4, 4)), "y": np.array([10 ** 12])}, cut=None)
def test_an_npz_file_gives_finite_data_or_a_user_error_and_never_unpickles(arrays, cut):
    TRIPPED.clear()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.npz"
        _write_npz(path, arrays, cut)
        cfg = load_config(None, [f"data=npz:{path}"]).data
        try:
            ds = load_dataset(cfg)
        except UserError as e:
            one_line(e)
            assert str(path) in str(e), str(e)
            event("npz: " + str(e).replace(str(path), "P").split(",")[0][:50])
            if cut is None and any(a.dtype == object for k, a in arrays.items() if k in ("x", "y")) and "x" in arrays:
                assert "object" in str(e) or "pickle" in str(e), str(e)
            ds = None
    assert not TRIPPED, "an object array was unpickled"
    x = arrays.get("x")
    good = (cut is None and x is not None and x.dtype == np.uint8 and x.ndim == 3 and x.size > 0 and "y" not in arrays)
    if ds is None:
        assert not good, "a plain uint8 (N, H, W) array was refused"
        return
    assert len(ds) == x.shape[0] and torch.isfinite(ds.x).all() and ds.x.dtype == torch.float32
    assert ds.x.numel() > 0
    if ds.x.dim() == 4:
        assert ds.x.shape[1] in (1, 3) and ds.x.min() >= -1 and ds.x.max() <= 1
    else:
        assert ds.x.dim() == 2
    if good:
        assert torch.equal(ds.x[:, 0], torch.from_numpy(x.astype(np.float32) / 255.0 * 2 - 1))
    event(f"npz: loaded {'images' if ds.x.dim() == 4 else 'vectors'}{'' if ds.y is None else ' with labels'}")
    if ds.y is not None:
        assert ds.y.dtype == torch.int64 and len(ds.y) == len(ds) and ds.y.min() >= 0
        assert len(ds.classes) == int(ds.y.max()) + 1
        assert torch.equal(ds.y, torch.from_numpy(arrays["y"].astype(np.int64)))
