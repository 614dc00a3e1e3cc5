"""Every entry of a loaded checkpoint checked against what the run expects, before any of it is used.

``torch.load(weights_only=True)`` runs no code, but what it returns may hold
anything a pickle of tensors and plain values can: a string where a counter
belongs, a tensor where a dict belongs, an RNG state of the wrong size, or an
Adam moment of another size than its parameter, which the fused CPU Adam
kernel reads and writes without checking (a segmentation fault, or worse).
So each entry is compared with a template, the run's own fresh state (the
trainer's ``state_dict()``, or a network's): dicts by their keys, tensors by
type, layout, shape, dtype and finiteness, counters as non-negative integers
(a bool is not one), numbers as finite floats, the optimizers' per-parameter
state against the shapes and dtypes of the parameters themselves, and the
RNG states by a scratch generator that must accept them. The first mismatch
is one ``UserError`` line naming the entry (``opt_g.state.3.exp_avg is (8, 4),
the run's parameter is (16, 4)``); a checkpoint with NaN or Inf weights is
refused the same way.
"""
from __future__ import annotations

import inspect
import math
from typing import Optional

import torch

from ..errors import UserError, shown

ANOTHER = "it comes from another run or was altered"
DIVERGED = ("the run had diverged when it was written, or the file was altered; "
            "use an earlier checkpoint")
_INT_MAX = 2 ** 63


def size(shape) -> str:
    """(16, 4) the way Python writes a tuple."""
    return str(tuple(int(s) for s in shape))


def describe(v) -> str:
    """What a value is, in a few words, for a line that says it is not what was expected."""
    if v is None:
        return "None"
    if isinstance(v, bool):
        return f"the bool {v}"
    if isinstance(v, int):
        return f"the integer {shown(v)}"
    if isinstance(v, float):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {shown(v)}"
    if isinstance(v, torch.Tensor):
        return f"a tensor {size(v.shape)}"
    if isinstance(v, dict):
        return f"a dict of {len(v)} entries"
    if isinstance(v, (list, tuple)):
        return f"a {type(v).__name__} of {len(v)} items"
    return f"a {type(v).__name__}"


def name(key) -> str:
    """A dict key as a line shows it: a short string as it is, anything else cut to a few dozen characters."""
    return key if isinstance(key, str) and len(key) <= 80 else shown(key)


def dense(t: torch.Tensor) -> bool:
    """Whether the tensor covers its elements' memory once each (contiguous in some order of its dimensions,
    channels-last included): a kernel that walks ``numel`` elements from its first stays inside it."""
    if t.numel() == 0:
        return True
    expect = 1
    for stride, n in sorted((s, n) for s, n in zip(t.stride(), t.shape) if n != 1):
        if stride != expect:
            return False
        expect *= n
    return True


class Maybe:
    """A template entry that may be missing (or None) in what was loaded; when present it must match ``like``."""

    def __init__(self, like):
        self.like = like


class Rows:
    """A template entry that is None or a tensor of up to ``most`` rows of ``shape`` (CycleGAN's image pools)."""

    def __init__(self, shape, most: int, dtype=torch.float32):
        self.shape, self.most, self.dtype = tuple(shape), most, dtype


class Checker:
    """The checks of one loaded file; ``where`` (its path) starts every line."""

    def __init__(self, where, model: Optional[str] = None, why: str = ANOTHER):
        self.where, self.model, self.why = str(where), model, why
        self.theirs = f"the run's {model} model" if model else "the run's model"

    def fail(self, entry: str, what: str, why: Optional[str] = None) -> UserError:
        return UserError(f"{self.where}: {entry} {what}; {why or self.why}")

    def misfit(self, what: str) -> UserError:
        """The line for weights that do not fit the run's model: another family, other keys or other sizes."""
        return UserError(f"{self.where} {what}: it comes from another run; put back this run's own checkpoint, "
                         "or train a new run")

    # ------------------------------------------------------------ plain values
    def mapping(self, entry: str, v) -> dict:
        if not isinstance(v, dict):
            raise self.fail(entry, f"is {describe(v)}, not a dict")
        return v

    def count(self, entry: str, v, low: int = 0) -> int:
        """A counter: an int (not a bool) from ``low`` up, small enough for a 64-bit integer."""
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(entry, f"is {describe(v)}, not an integer")
        if not low <= v < _INT_MAX:
            raise self.fail(entry, f"is {shown(v)}, not an integer from {low} to 2**63-1")
        return v

    def number(self, entry: str, v, low: Optional[float] = None, above: Optional[float] = None) -> float:
        """A finite int or float (not a bool), at least ``low`` / above ``above`` when given."""
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(entry, f"is {describe(v)}, not a number")
        if not math.isfinite(v) or (low is not None and v < low) or (above is not None and v <= above):
            bound = f" >= {low:g}" if low is not None else f" > {above:g}" if above is not None else ""
            raise self.fail(entry, f"is {shown(v)}, not a finite number{bound}")
        return v

    def dims(self, entry: str, v, empty: bool = False) -> tuple:
        """The shape of a sample: a list of one to three positive integers (``empty``: or none)."""
        ok = isinstance(v, (list, tuple)) and (empty or len(v) >= 1) and len(v) <= 3 \
            and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n < 2 ** 31 for n in v)
        if not ok:
            raise self.fail(entry, f"is {shown(v)}, not a list of one to three positive integers")
        return tuple(v)

    def text(self, entry: str, v) -> str:
        if not isinstance(v, str):
            raise self.fail(entry, f"is {describe(v)}, not a string")
        return v

    # ------------------------------------------------------------ tensors
    def tensor(self, entry: str, v, shape=None, dtype=None, finite: bool = True, whose: str = "the run's") -> torch.Tensor:
        """A plain dense CPU-readable tensor of ``shape`` and ``dtype`` (when given), finite when floating."""
        if not isinstance(v, torch.Tensor):
            raise self.fail(entry, f"is {describe(v)}, not a tensor")
        if v.layout != torch.strided or v.is_quantized:
            kind = "quantized" if v.layout == torch.strided else str(v.layout).replace("torch.", "")
            raise self.fail(entry, f"is a {kind} tensor, not a plain one")
        if v.device.type == "meta":
            raise self.fail(entry, "is a tensor without data (on the meta device)")
        if shape is not None and tuple(v.shape) != tuple(shape):
            raise self.fail(entry, f"is {size(v.shape)}, {whose} is {size(shape)}")
        if dtype is not None and v.dtype != dtype:
            raise self.fail(entry, f"is {str(v.dtype).replace('torch.', '')}, {whose} is "
                                   f"{str(dtype).replace('torch.', '')}")
        if not dense(v):
            raise self.fail(entry, f"is a view with strides {tuple(v.stride())} that do not cover its memory once")
        if finite and (v.is_floating_point() or v.is_complex()) and v.numel():
            bad = int((~torch.isfinite(v)).sum())
            if bad:
                raise self.fail(entry, f"holds {bad} NaN or Inf value{'s' if bad > 1 else ''} of {v.numel()}", DIVERGED)
        return v

    def scalar(self, entry: str, v, low: float = 0.0, zero_d: bool = True) -> None:
        """A number or a 0-d tensor (``zero_d`` False: any one-element one) holding a finite number >= ``low``
        (an optimizer's step, a statistic's running sum)."""
        if isinstance(v, torch.Tensor):
            self.tensor(entry, v)
            if (v.dim() != 0 if zero_d else v.numel() != 1) or v.is_complex() or v.dtype == torch.bool:
                raise self.fail(entry, f"is a {str(v.dtype).replace('torch.', '')} tensor {size(v.shape)}, "
                                       "not a number")
            v = v.item()
        self.number(entry, v, low=low)

    def net(self, entry: str, v, template: dict) -> None:
        """A network's state_dict: the template's keys, each tensor of its shape and dtype, finite."""
        v = self.mapping(entry, v)
        missing = [k for k in template if k not in v]
        extra = [k for k in v if k not in template]
        if missing or extra:
            keys, words = (missing, "Missing") if missing else (extra, "Unexpected")
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            raise self.misfit(f"does not fit {self.theirs} ({words} key(s) in state_dict: "
                              f"\"{entry}.{name(keys[0])}\"{more})")
        for k, want in template.items():
            got = v[k]
            if isinstance(got, torch.Tensor) and tuple(got.shape) != tuple(want.shape):
                raise self.misfit(f"does not fit {self.theirs} ({entry}.{k} is "
                                  f"{size(got.shape)}, the run's is {size(want.shape)})")
            self.tensor(f"{entry}.{k}", got, want.shape, want.dtype)

    def family(self, state: dict, model: str) -> None:
        """A checkpoint whose config names another model family: the misfit line."""
        saved = state.get("config")
        saved = saved.get("model") if isinstance(saved, dict) else None
        other = saved.get("name") if isinstance(saved, dict) else None
        if isinstance(other, str) and other != model:
            raise self.misfit(f"holds model {shown(other)[1:-1]}, but the run's config.yaml says model {model}")

    def rng(self, entry: str, v, current: torch.Tensor, device="cpu") -> None:
        """A generator state: a uint8 tensor of the size the run's generator has, that a scratch generator
        of the same kind accepts (the global one is never touched)."""
        self.tensor(entry, v, current.shape, torch.uint8, whose="the run's generator state")
        try:
            torch.Generator(device=device).set_state(v.cpu())
        except (RuntimeError, TypeError, ValueError) as e:
            raise self.fail(entry, f"is not a valid generator state ({str(e).splitlines()[0][:80]})") from None

    # ------------------------------------------------------------ structures
    def tree(self, entry: str, v, template) -> None:
        """``v`` against a template of dicts, counters, numbers, strings, bools, tensors, Maybe and Rows."""
        if isinstance(template, Maybe):
            if v is not None:
                self.tree(entry, v, template.like)
        elif isinstance(template, Rows):
            if v is not None:
                self.tensor(entry, v, dtype=template.dtype)
                if v.dim() != 1 + len(template.shape) or tuple(v.shape[1:]) != template.shape \
                        or len(v) > template.most:
                    raise self.fail(entry, f"is {size(v.shape)}, the run keeps up to {template.most} samples of "
                                           f"{size(template.shape)}")
        elif isinstance(template, dict):
            v = self.mapping(entry, v)
            for k, like in template.items():
                if k not in v and not isinstance(like, Maybe):
                    raise self.fail(entry, f"lacks {name(k)}")
                self.tree(f"{entry}.{k}", v.get(k), like)
        elif isinstance(template, bool):
            if not isinstance(v, bool):
                raise self.fail(entry, f"is {describe(v)}, not a bool")
        elif isinstance(template, int):
            self.count(entry, v)
        elif isinstance(template, float):
            self.number(entry, v)
        elif isinstance(template, str):
            self.text(entry, v)
        elif isinstance(template, torch.Tensor):
            self.tensor(entry, v, template.shape, template.dtype)
        elif template is not None:
            raise TypeError(f"no check for a template entry of type {type(template).__name__}")

    def optimizer(self, entry: str, v, opt: torch.optim.Optimizer) -> None:
        """An optimizer's state_dict for ``opt``: its groups' parameter lists equal the run's, their settings
        finite numbers (flags as the run's), and each parameter's state of the keys ``opt`` keeps, every
        tensor of the parameter's shape and dtype, its step a finite number; no two sharing memory."""
        v = self.mapping(entry, v)
        for k in ("state", "param_groups"):
            if k not in v:
                raise self.fail(entry, f"lacks {k}")
        mine = opt.state_dict()["param_groups"]
        groups = v["param_groups"]
        if not isinstance(groups, (list, tuple)) or len(groups) != len(mine):
            raise self.fail(f"{entry}.param_groups", f"is {describe(groups)}, the run has a list of {len(mine)}")
        for i, (got, want) in enumerate(zip(groups, mine)):
            self.group(f"{entry}.param_groups.{i}", got, want)
        params = {i: p for g_mine, g in zip(mine, opt.param_groups) for i, p in zip(g_mine["params"], g["params"])}
        keys = state_keys(opt)
        state = self.mapping(f"{entry}.state", v["state"])
        seen: dict = {}
        for i, per in state.items():
            at = f"{entry}.state.{name(i)}"
            if isinstance(i, bool) or i not in params:
                raise self.fail(at, f"is there, but the run's {entry} has parameters 0 to {len(params) - 1}")
            per, p = self.mapping(at, per), params[i]
            if per and keys is not None and set(per) != keys:
                odd = sorted(map(str, set(per) ^ keys))[0]
                raise self.fail(at, f"{'lacks' if odd in keys else 'has'} {odd} "
                                      f"(the run's optimizer keeps {', '.join(sorted(keys))})")
            for k, t in per.items():
                if k == "step":
                    self.scalar(f"{at}.step", t)
                    continue
                if t is None and k == "momentum_buffer":
                    continue
                self.tensor(f"{at}.{k}", t, p.shape, p.dtype, whose="the run's parameter")
                if t.numel():
                    ptr = t.untyped_storage().data_ptr()
                    if ptr in seen:
                        raise self.fail(f"{at}.{k}", f"shares its memory with {seen[ptr]}")
                    seen[ptr] = f"{at}.{k}"

    def group(self, entry: str, got, want: dict) -> None:
        got = self.mapping(entry, got)
        if not isinstance(got.get("params"), list) or got["params"] != list(want["params"]):
            raise self.fail(f"{entry}.params", f"is {describe(got.get('params'))}, the run's is the list "
                                               f"{shown(want['params'])}")
        for k, x in got.items():
            if k in ("params", "param_names"):
                continue
            mine = want.get(k, x)
            if isinstance(mine, bool) or mine is None or isinstance(mine, str):
                if type(x) is not type(mine) or x != mine:
                    raise self.fail(f"{entry}.{k}", f"is {describe(x)}, the run's is {mine!r}")
            elif isinstance(mine, torch.Tensor):
                self.tensor(f"{entry}.{k}", x, mine.shape, mine.dtype)
            elif isinstance(mine, (tuple, list)):
                if not isinstance(x, (tuple, list)) or len(x) != len(mine):
                    raise self.fail(f"{entry}.{k}", f"is {describe(x)}, the run's is {mine!r}")
                for j, xj in enumerate(x):
                    self.number(f"{entry}.{k}.{j}", xj, low=0.0)
            else:
                self.number(f"{entry}.{k}", x, low=0.0)


def state_keys(opt: torch.optim.Optimizer) -> Optional[set]:
    """The keys ``opt`` keeps for a parameter it has stepped (Adam: step, exp_avg, exp_avg_sq), learned from a
    scratch copy of it stepped once on a two-element parameter; None when that cannot be made."""
    group = opt.param_groups[0]
    takes = inspect.signature(type(opt).__init__).parameters
    kw = {k: v for k, v in group.items()
          if k in takes and k not in ("params", "fused", "foreach", "capturable", "differentiable")}
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.zeros(2)
    try:
        scratch = type(opt)([p], **kw)
        scratch.step()
        return set(scratch.state[p])
    except Exception:               # an optimizer that cannot be copied this way: shapes are still checked
        return None


def training_state(where, s, template: dict, optimizers: dict, model: str,
                   device="cpu") -> None:
    """A trainer's checkpoint ``s`` against the trainer's own ``template`` (its fresh ``state_dict()``, the
    game's entry as its ``state_spec()`` when it has one); ``optimizers``: {"opt_g": ..., "opt_d": ...}."""
    c = Checker(where, model)
    if not isinstance(s, dict):
        raise UserError(f"{where} is {describe(s)}, not a ganforge checkpoint (a dict)")
    need = ("step", "images", "time", "G", "D", "opt_g", "opt_d", "batches", "z", "aux", "game", "torch_rng", "acc")
    for k in need:
        if k not in s:
            raise c.fail(k, "is missing", "it is not a whole ganforge checkpoint")
    if "config" in s:
        c.mapping("config", s["config"])
    c.family(s, model)
    c.count("step", s["step"])
    c.count("images", s["images"])
    c.number("time", s["time"], low=0.0)
    c.net("G", s["G"], template["G"])
    c.net("D", s["D"], template["D"])
    if s.get("G_ema") is not None:
        if template.get("G_ema") is None:
            raise c.fail("G_ema", "is there, but the run keeps no moving average of G (ema.enabled=false)")
        c.net("G_ema", s["G_ema"], template["G_ema"])
    for k, opt in optimizers.items():
        c.optimizer(k, s[k], opt)
    for k in ("batches", "z", "aux", "game"):
        c.tree(k, s[k], template[k])
    c.tree("precision", s.get("precision", {}), {k: Maybe(v) for k, v in template["precision"].items()})
    c.rng("torch_rng", s["torch_rng"], template["torch_rng"])
    if "cuda_rng" in template and "cuda_rng" in s:
        c.rng("cuda_rng", s["cuda_rng"], template["cuda_rng"], device)
    for k, pair in c.mapping("acc", s["acc"]).items():
        at = f"acc.{name(k)}"
        if not isinstance(k, str) or not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise c.fail(at, f"is {describe(pair)}, not a [sum, count] pair of a named statistic")
        c.scalar(f"{at}.0", pair[0], low=-math.inf, zero_d=False)
        c.count(f"{at}.1", pair[1], low=1)
    best = s.get("best")
    if best is not None:        # its value may be inf or nan (a metric that failed): it is only compared
        c.tree("best", best, {"metric": "", "step": 0})
        value = best.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise c.fail("best.value", f"is {describe(value)}, not a number")
    if s.get("lr_scale") is not None:
        c.number("lr_scale", s["lr_scale"], above=0.0)
    if s.get("data") is not None:
        c.mapping("data", s["data"])


def nets(where, state, templates: dict, model: str, ema: bool = True) -> None:
    """The nets of a checkpoint opened for use (api.load_run, export): each of ``templates`` ({"G": state_dict,
    ...}; G_ema's is G's), and its step; ``ema``: whether the run keeps a G_ema."""
    c = Checker(where, model)
    if "config" in state:
        c.mapping("config", state["config"])
    c.family(state, model)
    if not ema and state.get("G_ema") is not None:
        raise c.fail("G_ema", "is there, but the run keeps no moving average of G (ema.enabled=false)")
    for k, t in templates.items():
        if k not in state or (k == "G_ema" and state[k] is None):
            raise c.fail(k, "is missing", "it is not a whole ganforge checkpoint")
        c.net(k, state[k], t)
    c.count("step", state.get("step"))
