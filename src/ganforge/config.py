"""The run configuration: typed defaults, YAML presets and dotted overrides.

``load_config("toy-grid", ["loss=hinge", "optim.d.lr=1e-4"])`` starts from the defaults below (the textbook
DCGAN on the embedded MNIST digits, ``mnist-dcgan``), applies a preset (a YAML file, or the name of one in
``configs/``), then the overrides, and checks every value. A section with a ``name`` accepts a bare value
(``data=ring``, ``model=mlp``, ``penalty=r1``). The model section is open: beyond its common keys it takes the
options of the chosen family (``model.g_width`` for dcgan); changing the family drops the old family's options,
changing the penalty drops the old penalty's weight and interval, and of ``steps`` and ``minutes`` the later
set sizes the run. Mistakes raise :class:`~ganforge.errors.UserError` with one line.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from .augment.options import AugmentConfig  # noqa: F401  (the augment section, owned by ganforge.augment)
from .data.options import DataConfig  # noqa: F401  (the data section, owned by ganforge.data)
from .nets.transfer import InitConfig  # noqa: F401  (the init section, owned by ganforge.nets.transfer)
from .errors import UserError
from .metrics.options import EvalConfig  # noqa: F401  (the eval section, owned by ganforge.metrics)
from .schedule import ScheduleConfig  # noqa: F401  (the schedule section, owned by ganforge.schedule)
from .schedule import check as schedule_check
from .schema import coerce, dotted_keys, field_type, is_none, is_section, opt, read_yaml, section, unknown_key

PRESET_DIR = Path(__file__).parent / "configs"
MAIN_JOB = "mnist-main"                  # the preset of a new run given none (job_preset)


def _loss_names():
    from .losses import LOSSES
    return sorted(LOSSES)


def _family_names():
    from .nets import FAMILIES
    return sorted(FAMILIES)


@dataclass
class ModelConfig:
    """The network family and its options (family options: see ganforge.nets)."""
    name: str = opt("dcgan", "network family", choices=_family_names)
    z_dim: int = opt(100, "size of the latent vector z", min=1)
    spectral_norm: bool = opt(False, "spectral normalization on every layer of D (Miyato et al. 2018)")
    g_spectral_norm: bool = opt(False, "spectral normalization on every layer of G")
    conditional: bool = opt(False, "condition G and D on the data's class labels (class-conditional GAN)")
    g_cond: str = opt("cbn", "conditional G: cbn (class-conditional batch norm, de Vries et al. 2017) or "
                      "concat (label embedding joined to z, Mirza & Osindero 2014)", choices=("cbn", "concat"))
    d_cond: str = opt("projection", "conditional D: projection (Miyato & Koyama 2018), concat (one-hot label "
                      "channels) or acgan (auxiliary classifier, Odena et al. 2017)",
                      choices=("projection", "concat", "acgan"))
    embed_dim: int = opt(32, "size of the label embedding joined to z (g_cond=concat)", min=1)
    ac_weight: float = opt(1.0, "weight of the auxiliary classifier's cross-entropy (d_cond=acgan)", min=0.0)
    freeze_d: int = opt(0, "FreezeD (Mo et al. 2020): D's first N blocks from the input keep their weights; 0: none", min=0)

    def __post_init__(self):
        self.arch = _family_options(self.name)()      # the family's defaults; _build replaces them


@dataclass
class OptimConfig:
    """One optimizer."""
    name: str = opt("adam", "optimizer", choices=("adam", "rmsprop", "sgd"))
    lr: float = opt(1e-3, "learning rate", gt=0.0)
    beta1: float = opt(0.0, "Adam beta1 (sgd: momentum)", min=0.0, lt=1.0)
    beta2: float = opt(0.99, "Adam beta2 (rmsprop: alpha)", min=0.0, lt=1.0)
    weight_decay: float = opt(0.0, "L2 weight decay", min=0.0)


@dataclass
class OptimPair:
    """Separate optimizers for G and D (two time-scale updates, Heusel et al. 2017)."""
    g: OptimConfig = section(OptimConfig)
    d: OptimConfig = section(OptimConfig)
    schedule: str = opt("constant", "learning-rate schedule of both: constant, linear or cosine decay",
                        choices=("constant", "linear", "cosine"))
    decay_start: float = opt(0.0, "fraction of the steps after which the decay begins", min=0.0, lt=1.0)
    final_lr: float = opt(0.0, "learning rate at the last step, as a fraction of the initial one", min=0.0, max=1.0)


@dataclass
class PenaltyConfig:
    """A regularizer on D: gradient penalty, R1, R2, or R1 and R2 together (R3GAN)."""
    name: str = opt("r1", "auto (the loss's own: gp for wgan-gp, else none), none, gp, r1, r2 or r1+r2 (both, "
                    "R3GAN's gamma/2 (R1 + R2))", choices=("auto", "none", "gp", "r1", "r2", "r1+r2"))
    weight: Optional[float] = opt(None, "lambda for gp, gamma for r1/r2 (and for both terms of r1+r2); null: 10 for "
                                  "gp, 1 for r1/r2", min=0.0)
    r2_weight: Optional[float] = opt(None, "with penalty=r1+r2: R2's own gamma; null: penalty.weight (R3GAN)", min=0.0)
    every: Optional[int] = opt(None, "apply every N discriminator steps, scaled by N (lazy regularization, "
                               "Karras et al. 2020); null: 1 for gp, 4 for r1/r2", min=1)


@dataclass
class EmaConfig:
    """Exponential moving average of G's weights (used for samples and evaluation)."""
    enabled: bool = opt(True, "keep an EMA copy of G")
    half_life_kimg: float = opt(10.0, "half-life of the average in thousands of images", gt=0.0)
    rampup: Optional[float] = opt(0.05, "early on, cap the half-life at this fraction of images seen; null: off", gt=0.0)


@dataclass
class LogConfig:
    """What the run writes, and how often (in generator steps)."""
    every: int = opt(50, "write a line to metrics.jsonl every N steps", min=1)
    samples_every: int = opt(500, "write fixed-z sample grids every N steps", min=1)
    checkpoint_every: int = opt(500, "write a full checkpoint every N steps", min=1)
    keep_last: int = opt(3, "checkpoints kept on disk, the newest (best.pt apart)", min=1)
    samples_keep: Optional[int] = opt(None, "sample dumps (.png grid and .npz array) kept on disk, the newest; "
                                      "null: every one, the run's record", min=1)
    n_samples: Optional[int] = opt(None, "fixed-z samples per dump; null: 64 images or 1000 toy points", min=1)
    tb: bool = opt(True, "write TensorBoard event files to tb/")
    progress: str = opt("auto", "auto (a bar on a terminal, lines otherwise), bar, lines or off",
                        choices=("auto", "bar", "lines", "off"))


@dataclass
class GuardConfig:
    """What the loop does when a loss or a gradient is NaN or infinite (train.guard)."""
    nonfinite: str = opt("skip", "skip: drop that update (weights and optimizer state stay as they were); rollback: "
                         "go back to the last checkpoint with lower learning rates; stop; off: no check (one host "
                         "sync per update less)", choices=("skip", "rollback", "stop", "off"))
    lr_factor: float = opt(0.5, "rollback: multiply both learning rates by this at each rollback", gt=0.0, max=1.0)
    max_failures: int = opt(5, "stop after this many non-finite updates (skipped or rolled back) between two "
                            "checkpoints", min=1)


@dataclass
class Config:
    """A whole run."""
    name: Optional[str] = opt(None, "run folder under --out; null: the preset's name (<data>-<model> if data=/model= given), -N if taken")
    seed: int = opt(0, "seed of every random stream in the run")
    steps: int = opt(3000, "generator steps to train", min=1)
    minutes: Optional[float] = opt(None, "size the run by wall time instead: the steps that fill this many minutes "
                                   "of the command, from a timing of its first steps (train.minutes); null: steps", gt=0.0)
    batch_size: int = opt(64, "samples per batch, real and fake (with --nproc N: the global batch, split over N)", min=1)
    d_steps: int = opt(1, "discriminator updates per generator update (k in Goodfellow et al. 2014)", min=1)
    loss: str = opt("nonsaturating", "the objective", choices=_loss_names)
    clip: Optional[float] = opt(None, "clip D's weights to [-c, c]; null: 0.01 for wasserstein, off otherwise; 0: off", min=0.0)
    precision: str = opt("auto", "auto (CPU: fp32 or bf16, whichever a timed step of the run's nets says is faster, "
                         "cached per machine; CUDA: bf16 where supported), fp32, bf16 or fp16 (CUDA)",
                         choices=("auto", "fp32", "bf16", "fp16"))
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    threads: int = opt(0, "CPU threads for torch; 0: torch's default (data-parallel: the cores shared by the processes)", min=0)
    channels_last: bool = opt(True, "channels-last memory format for convolutional families")
    sync_bn: bool = opt(True, "with --nproc N: batch norm statistics over all N processes, as one process would compute")
    compile: bool = opt(False, "run G and D through torch.compile; falls back to eager with one warning where it fails")
    resume: bool = opt(False, "continue the run in the named folder if it exists")
    init: InitConfig = section(InitConfig)
    data: DataConfig = section(DataConfig)
    model: ModelConfig = section(ModelConfig)
    penalty: PenaltyConfig = section(PenaltyConfig)
    augment: AugmentConfig = section(AugmentConfig)
    optim: OptimPair = section(OptimPair)
    schedule: ScheduleConfig = section(ScheduleConfig)
    ema: EmaConfig = section(EmaConfig)
    log: LogConfig = section(LogConfig)
    eval: EvalConfig = section(EvalConfig)
    guard: GuardConfig = section(GuardConfig)

    def to_dict(self) -> dict:
        """Nested plain dict; the model section flattened with its family options."""
        return _to_dict(self)

    def get(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            node = node.arch if (isinstance(node, ModelConfig) and not hasattr(node, part)) else node
            node = getattr(node, part)
        return node


def _to_dict(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = _to_dict(v) if dataclasses.is_dataclass(v) else v
    if isinstance(obj, ModelConfig):
        out.update(dataclasses.asdict(obj.arch))
    return out


# ---------------------------------------------------------------- building

def _family_options(name: str):
    from .nets import FAMILIES
    return FAMILIES[name].options


def _build(cls, raw: dict, prefix: str):
    if not isinstance(raw, dict):
        raise UserError(f"{prefix.rstrip('.') or 'config'} must be a mapping of keys to values, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra_cls = None
    values = {}
    for name, f in fields.items():
        tp = field_type(cls, f)
        key = prefix + name
        if is_section(tp):
            values[name] = _build(tp, raw.get(name, {}), key + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            values[name] = coerce(key, raw.get(name, default), tp, f.metadata)
    if cls is ModelConfig:
        extra_cls = _family_options(values["name"])
    allowed = set(fields) | ({f.name for f in dataclasses.fields(extra_cls)} if extra_cls else set())
    for k in raw:
        if k not in allowed:
            valid = [prefix + v for v in sorted(allowed)] + dotted_keys(Config)
            raise unknown_key(prefix + str(k), valid)
    obj = cls(**values)
    if extra_cls is not None:
        arch = {}
        for f in dataclasses.fields(extra_cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            arch[f.name] = coerce(prefix + f.name, raw.get(f.name, default), field_type(extra_cls, f), f.metadata)
        obj.arch = extra_cls(**arch)
    return obj


RENAMED = {"log.keep": "log.keep_last"}      # old key -> its name now; runs written before still load and resume


def _set(raw: dict, dotted: str, value: Any, where: str) -> None:
    """Put one value into the raw tree, following sections and shorthands (and old key names)."""
    dotted = RENAMED.get(dotted, dotted)
    parts = dotted.split(".")
    cls: Any = Config
    node = raw
    for i, part in enumerate(parts):
        key = ".".join(parts[: i + 1])
        fields = {f.name: f for f in dataclasses.fields(cls)} if cls is not None else {}
        if cls is not None and part not in fields and cls is not ModelConfig:
            raise unknown_key(key, dotted_keys(Config) + _model_keys(raw))
        tp = field_type(cls, fields[part]) if part in fields else None
        last = i == len(parts) - 1
        if tp is not None and is_section(tp):
            if last:
                if isinstance(value, dict):
                    for k, v in value.items():
                        _set(raw, f"{key}.{k}", v, where)
                    return
                if "name" not in {f.name for f in dataclasses.fields(tp)}:
                    raise UserError(f"{key} is a section; set one of its keys, e.g. {key}.{dataclasses.fields(tp)[0].name}=...")
                _set(raw, key + ".name", value, where)
                return
            node = node.setdefault(part, {})
            cls = tp
            continue
        if not last:
            raise UserError(f"{'.'.join(parts[:i + 1])} is a value, not a section (in {where})")
        if part == "name" and cls in (ModelConfig, PenaltyConfig) and node.get("name", value) != value:
            # options of the old family / weight of the old penalty do not carry over
            keep = {f.name for f in dataclasses.fields(ModelConfig)} if cls is ModelConfig else set()
            for k in [k for k in node if k not in keep]:
                del node[k]
        if cls is Config and part in ("steps", "minutes") and (part == "steps" or not is_none(value)):
            node.pop("minutes" if part == "steps" else "steps", None)     # the later of the two sizes the run
        node[part] = value
        return


def _model_keys(raw: dict) -> list:
    name = raw.get("model", {}).get("name", ModelConfig.name) if isinstance(raw.get("model"), dict) else ModelConfig.name
    try:
        return ["model." + f.name for f in dataclasses.fields(_family_options(name))]
    except (KeyError, TypeError):          # no such family, or a name that is no string (a YAML list or mapping)
        return []


def parse_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise UserError(f"expected key=value, got {text!r} (e.g. loss=hinge or optim.g.lr=1e-4)")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"expected key=value, got {text!r}")
    return key, value


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def find_preset(spec: str) -> Path:
    """A YAML path as given, else a preset of that name in configs/."""
    p = Path(spec)
    if p.is_file():
        return p
    if p.suffix in (".yaml", ".yml") or "/" in spec:
        if p.exists():
            raise UserError(f"config {spec} is not a file")
        raise UserError(f"config file {spec} does not exist; presets: {', '.join(presets())}")
    q = PRESET_DIR / f"{spec}.yaml"
    if q.is_file():
        return q
    raise UserError(f"no config file or preset named {spec!r}; presets: {', '.join(presets())}")


def raw_from(preset: Optional[str] = None, overrides: tuple = (), base: Optional[dict] = None) -> dict:
    """The raw tree of values set by a preset and overrides, on top of ``base``."""
    raw = copy.deepcopy(base) if base else {}
    if preset is not None:
        path = find_preset(preset)
        for k, v in read_yaml(path).items():
            _set(raw, str(k), v, str(path))
    for text in overrides:
        k, v = parse_override(text)
        _set(raw, k, v, "command line")
    return raw


def job_preset(preset: Optional[str], overrides: tuple = ()) -> Optional[str]:
    """The preset a new run trains (``ganforge train``, ``ganforge.train()``, ``ganforge config``): the one given; with
    none, the main job (MAIN_JOB), unless the overrides pick other data or another family (``data=folder:my300``,
    ``model=stylegan``), which start from the Config defaults (mnist-dcgan), as StyleGAN2-ADA's ``--cfg=auto``."""
    if preset is not None:
        return preset
    own, main = raw_from(None, overrides), raw_from(MAIN_JOB)
    return None if any(str(own.get(s, {}).get("name", main[s]["name"])) != main[s]["name"] for s in ("data", "model")) else MAIN_JOB


def _is_set(raw: dict, dotted: str) -> bool:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def family_defaults(raw: dict) -> dict:
    """The raw tree with the chosen family's defaults (nets.Family.defaults) where nothing set those keys."""
    from .nets import FAMILIES
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    name = model.get("name", ModelConfig.name)
    family = FAMILIES.get(name) if isinstance(name, str) else None     # a list or mapping: _build names the mistake
    if family is None or not family.defaults:
        return raw
    raw = copy.deepcopy(raw)
    for key, value in family.defaults:
        if not _is_set(raw, key):
            _set(raw, key, value, "family defaults")
    return raw


def complete(cfg: Config) -> Config:
    """A copy of ``cfg`` with every 'auto'/null default of the loss and penalty replaced by the value it stands
    for (``precision`` stays: the trainer decides it on the machine it runs on)."""
    from .losses import LOSSES
    from .penalties import DEFAULT_EVERY, DEFAULT_WEIGHT
    cfg = copy.deepcopy(cfg)
    loss = LOSSES[cfg.loss]
    if cfg.penalty.name == "auto":
        cfg.penalty.name = loss.penalty
    if loss.penalty != "none" and cfg.penalty.name != loss.penalty:
        raise UserError(f"loss={cfg.loss} includes penalty {loss.penalty}, but the config sets penalty.name="
                        f"{cfg.penalty.name}: add penalty={loss.penalty}, or use loss=wasserstein with your penalty")
    schedule_check(cfg)
    if cfg.penalty.r2_weight is not None and cfg.penalty.name != "r1+r2":
        raise UserError(f"penalty.r2_weight is R2's gamma beside R1's in penalty=r1+r2; this run's penalty is "
                        f"{cfg.penalty.name} (use penalty.weight)")
    if cfg.penalty.name != "none" and cfg.penalty.weight is None:
        cfg.penalty.weight = DEFAULT_WEIGHT[cfg.penalty.name]
    if cfg.penalty.every is None:
        cfg.penalty.every = DEFAULT_EVERY.get(cfg.penalty.name, 1)
    if cfg.clip is None:
        cfg.clip = loss.clip or 0.0
    return cfg


def build(raw: dict) -> Config:
    return _build(Config, family_defaults(raw), "")


def load_config(preset: Optional[str] = None, overrides: tuple = ()) -> Config:
    """Defaults, then the preset, then ``key=value`` overrides; all checked."""
    return build(raw_from(preset, overrides))


def raw_from_dict(d: dict) -> dict:
    """The raw tree of a plain dict (e.g. a run's config.yaml), keys checked and old names renamed."""
    raw: dict = {}
    for k, v in d.items():
        _set(raw, str(k), v, "config")
    return raw


def from_dict(d: dict) -> Config:
    """A config from a plain dict (e.g. a run's config.yaml)."""
    return build(raw_from_dict(d))


def dump(cfg: Config, header: str = "") -> str:
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=False)
    return (header + text) if header else text
