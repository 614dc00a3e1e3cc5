"""``precision=auto`` on a CPU: fp32 or bf16, chosen by timing the run's own networks in both, once per machine.

Whether bf16 autocast (Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep Learning Training") beats fp32 on a
CPU is not told by a flag: AMX tiles make bf16 matrix products several times faster; AVX512-BF16 alone made the
28 px DCGAN's step 1.35x faster on an AMD EPYC (Zen 4) but 0.74-0.79x on an Intel Xeon (benchmarks/throughput.py);
and small networks spend their time in autocast's casts, not in products. So ``auto`` times what a training step
computes (G's forward, D on the generated batch and on a real one, the backward through all of it) with a
fresh build of the run's own G and D (plain batch norm, not the synchronised one of --nproc) at this process's
batch, in rounds that alternate fp32 and bf16 (after warm-up steps), and takes bf16 when the median of
the rounds' fp32/bf16 time ratios is at least ``MARGIN``. ``MIN_ROUNDS`` rounds far from the margin either way
settle it, and so does bf16 at under half fp32's speed in the warm-up and the first round alike, or a warm-up
bf16 step of over a second at under a quarter of fp32's speed (fp32 is the safe side: bf16 ran 15x slower than fp32 for the main job's DCGAN on an AMD EPYC without AVX-512, where bf16
convolutions fall back to PyTorch's reference kernels); otherwise rounds go on for at least ``MIN_SECONDS``.
A measurement taken while other processes used more than ``BUSY`` of the CPUs (read from /proc/stat), or whose
rounds disagree by more than ``NOISY``, is not trusted: that run takes fp32, the safe side, and the next start
measures again (on a shared 2-core machine, a tiny MLP's bf16 step measured 2x faster than its fp32 one while
three other jobs ran, and 7x slower alone). Nothing of the run is touched: the measured nets are discarded and torch's global
random state restored, so a run whose ``auto`` chose bf16 is bit-identical to one given ``precision=bf16``.

The choice is cached (``$GANFORGE_CACHE/precision.json``) by machine (CPU model and flags, cores, torch's threads,
torch's version) and by networks (family, their options, the data's shape and classes, the batch per process,
channels-last), so a later run of the same networks on the same machine takes it without measuring and a
choice never flips between runs. The run records it in config.yaml (a resume keeps it) and its figures in
run.json. Under ``--nproc N`` rank 0 decides and tells the others. ``GANFORGE_PRECISION_AUTO=fp32`` (or ``bf16``)
says what auto means without measuring (the test suite sets fp32, so that its figures do not depend on the CPU). On CUDA ``auto`` is bf16 wherever the GPU
supports it, unmeasured (train.precision.resolve).
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import time

import torch

from ..cachedir import cache_root
from ..device import cpu_info
from ..nets import FAMILIES, build_nets
from ..errors import UserError
from ..runs import atomic
from .precision import Precision

MARGIN = 1.10           # bf16 must be this much faster than fp32 to be chosen
MIN_ROUNDS, MAX_ROUNDS, MIN_SECONDS = 3, 15, 1.0
CLEAR = 1.5             # rounds whose ratios are all this far past the margin, either way, settle it at MIN_ROUNDS
FAR = 0.5               # bf16 at under half fp32's speed in the warm-up and the first round: fp32 at once
NOISY = 2.0             # rounds whose ratios differ by more than this factor (a busy machine) are not cached
BUSY = 0.25             # nor a measurement while other processes used more than this share of the CPUs
VERSION = 1
ENV = "GANFORGE_PRECISION_AUTO"     # fp32 or bf16: what auto means here, unmeasured (a cluster without a home cache)


def machine_key() -> dict:
    name, flags = cpu_info()
    return {"cpu": name, "flags": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16],
            "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__}


def nets_key(cfg, data, rows: int) -> dict:
    return {"model": cfg.to_dict()["model"],
            "shape": list(data.shape), "shape_a": list(data.shape_a or ()), "classes": len(data.classes or ()),
            "rows": rows, "channels_last": bool(cfg.channels_last)}


def _entry_id(key: dict) -> str:
    return hashlib.sha256(json.dumps({"v": VERSION, **key}, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _cache_file():
    return cache_root() / "precision.json"


def _read_cache() -> dict:
    try:
        entries = json.loads(_cache_file().read_text()).get("entries", {})
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError, AttributeError):     # none yet, or damaged: measured again (and rewritten)
        return {}


def _write_cache(entry_id: str, entry: dict) -> None:
    entries = _read_cache()
    entries[entry_id] = entry
    try:
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(_cache_file(), {"version": VERSION, "entries": entries}, indent=1)
    except OSError:             # a read-only home: the choice holds for this run and is measured again next time
        pass


def _step_work(cfg, data, G, D, rows: int, device):
    """A function doing one step's computation with G and D (forward and backward), and the nets' parameters."""
    g = torch.Generator(device="cpu").manual_seed(0)
    channels_last = FAMILIES[cfg.model.name].convolutional and cfg.channels_last and len(data.shape) == 3

    def image(shape):
        t = (torch.rand((rows, *shape), generator=g) * 2 - 1).to(device)
        return t.to(memory_format=torch.channels_last) if channels_last else t
    x = image(data.shape)
    if FAMILIES[cfg.model.name].game != "gan":              # image-to-image: G(a); D(a, G(a)) or D(G(a))
        a = image(data.shape_a)
        judge = _first_call(D, lambda fake: (a, fake), lambda fake: (fake,), probe=G(a).detach())

        def work():
            fake = G(a)
            out = fake.float().mean()
            if judge is not None:
                out = out + D(*judge(fake)).float().mean() + D(*judge(x)).float().mean()
            out.backward()
        return work
    z = torch.randn(rows, cfg.model.z_dim, generator=g).to(device)
    y = (torch.randint(0, len(data.classes), (rows,), generator=g).to(device),) if getattr(G, "n_classes", 0) else ()

    def work():
        fake = G(z, *y)
        (D(fake, *y).float().mean() + D(x, *y).float().mean()).backward()
    return work


def _first_call(D, *forms, probe):
    """The first argument form that D takes (pix2pix's D(a, b); a plain D(b)); None: D is a container (CycleGAN's
    two Ds) and only G is timed."""
    for form in forms:
        try:
            with torch.no_grad():
                D(*form(probe))
            return form
        except (TypeError, RuntimeError, NotImplementedError):
            continue
    return None


def _cpu_ticks() -> tuple[int, int, int]:
    """(busy ticks of every core, all ticks, this process's ticks) from /proc; zeros where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            t = [int(v) for v in f.readline().split()[1:9]]
        with open("/proc/self/stat") as f:
            mine = f.read().rsplit(")", 1)[1].split()
        return sum(t) - t[3] - t[4], sum(t), int(mine[11]) + int(mine[12])
    except (OSError, ValueError, IndexError):
        return 0, 0, 0


def others_share(before: tuple, after: tuple) -> float:
    """The share of the machine's CPU time that other processes used between two _cpu_ticks readings."""
    busy, total, mine = (a - b for a, b in zip(after, before))
    return max(busy - mine, 0) / total if total > 0 else 0.0


def measure(cfg, data, rows: int, device) -> dict:
    """Milliseconds of one step's work in fp32 and in bf16 (medians over alternating rounds) and their ratio."""
    modes = {m: Precision(m, device) for m in ("fp32", "bf16")}
    with torch.random.fork_rng(devices=[]):
        G, D = build_nets(cfg.model, data.shape, len(data.classes or ()), data.shape_a)
        G, D = G.to(device), D.to(device)
        if FAMILIES[cfg.model.name].convolutional and cfg.channels_last:
            G.to(memory_format=torch.channels_last)
            D.to(memory_format=torch.channels_last)
        params = [p for p in (*G.parameters(), *D.parameters()) if p.requires_grad]
        work = _step_work(cfg, data, G, D, rows, device)

        def timed(mode: str) -> float:
            t0 = time.perf_counter()
            with modes[mode].autocast():
                work()
            for p in params:
                p.grad = None
            return time.perf_counter() - t0
        ticks = _cpu_ticks()
        warm = {m: timed(m) for m in ("fp32", "bf16")}  # first calls: oneDNN primitives, autocast's weight casts
        warm["fp32"] = timed("fp32")                     # fp32 once more, without its first call's costs
        slow = sum(warm.values()) > 20.0                 # a step of 10 s or more: one round
        times = {"fp32": [], "bf16": []}
        t_start = time.perf_counter()
        n, ratios = 0, [warm["fp32"] / warm["bf16"]]
        settled = warm["bf16"] > 1.0 and ratios[0] <= FAR / 2     # a second-long bf16 step at 4x fp32's: no
        if settled:                                                 # start-up cost explains that; fp32, no rounds
            times = {m: [t] for m, t in warm.items()}
        while not settled:
            n = len(times["fp32"])
            for mode in (("fp32", "bf16") if n % 2 == 0 else ("bf16", "fp32")):
                times[mode].append(timed(mode))
            n += 1
            ratios = [a / b for a, b in zip(times["fp32"], times["bf16"])]
            clear = all(r <= MARGIN / CLEAR for r in ratios) or all(r >= MARGIN * CLEAR for r in ratios)
            hopeless = max(ratios + [warm["fp32"] / warm["bf16"]]) <= FAR      # fp32, the safe side: no more rounds
            if n >= MAX_ROUNDS or slow or hopeless or (n >= MIN_ROUNDS and (clear or time.perf_counter() - t_start
                                                                               >= MIN_SECONDS)):
                break
    return {"fp32_ms": round(1e3 * statistics.median(times["fp32"]), 3),
            "bf16_ms": round(1e3 * statistics.median(times["bf16"]), 3),
            "ratio": round(statistics.median(ratios), 4), "rounds": n,
            "spread": round(max(ratios) / min(ratios), 3), "others_cpu": round(others_share(ticks, _cpu_ticks()), 3)}


def choose(cfg, data, device, dist) -> tuple[str, dict]:
    """(fp32 or bf16, the record of why) for a run whose config says precision=auto on a CPU."""
    rows = dist.rows(cfg.batch_size)
    rows = rows.stop - rows.start
    record = None
    told = os.environ.get(ENV, "")
    if told:
        if told not in ("fp32", "bf16"):
            raise UserError(f"{ENV}={told}: give fp32 or bf16 (what precision=auto means on this machine), or unset it")
        return told, {"precision": told, "set_by": ENV}
    if dist.main:
        entry_id = _entry_id({**machine_key(), **nets_key(cfg, data, rows)})
        record = _read_cache().get(entry_id)
        if not isinstance(record, dict) or record.get("precision") not in ("fp32", "bf16"):
            record = measure(cfg, data, rows, device)
            busy = record.get("spread", 1.0) > NOISY or record.get("others_cpu", 0.0) > BUSY
            record.update(precision="bf16" if record["ratio"] >= MARGIN and not busy else "fp32", margin=MARGIN,
                          measured=time.strftime("%Y-%m-%d %H:%M:%S"), cpu=cpu_info()[0])
            if not busy:                # a busy machine's figures decide this run only, and on the safe side
                _write_cache(entry_id, record)
            record = {**record, "cached": False}
        else:
            record = {**record, "cached": True}
    record = dist.broadcast_object(record)
    return record["precision"], record


def why(record: dict) -> str:
    """The choice in a few words, for the run's first line."""
    if "set_by" in record:
        return f"auto: set by {record['set_by']}"
    how = "cached" if record.get("cached") else "measured now"
    if record.get("spread", 1.0) > NOISY or record.get("others_cpu", 0.0) > BUSY:
        how += (f", while other processes used {100 * record.get('others_cpu', 0.0):.0f}% of the CPUs and the rounds "
                f"varied {record.get('spread', 1.0):.1f}x: fp32 for this run, measured again at the next start")
    return (f"auto: a step of these nets took {record['fp32_ms']:.1f} ms in fp32 and {record['bf16_ms']:.1f} ms in "
            f"bf16 here ({record['ratio']:.2f}x; bf16 needs {record.get('margin', MARGIN):.2f}x), {how}")
