"""The training loop: one run from its config to its last checkpoint.

Each iteration is one call of the game's ``step`` (D phase x d_steps, then
the G phase), one EMA update, and, at their intervals, a metrics line, an
evaluation, fixed-z samples and a checkpoint. Everything that shapes the
numbers (weights, optimizer moments, EMA, RNG counters, the running sums of
the current log interval) is in the checkpoint, so a run killed at any
moment and resumed from its last checkpoint writes the same metrics and
ends with the same weights, bit for bit on the CPU. Ctrl-C (SIGINT) and
SIGTERM (what a scheduler sends before preempting a job) stop after the
current step and write a checkpoint first; a second Ctrl-C stops at once.
"""
from __future__ import annotations

import copy
import io
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..config import Config
from ..data import load_dataset
from ..data.batches import Batches
from ..errors import DISK_ERRORS, UserError
from ..games.gan import GANGame, Regularizer
from ..losses import LOSSES
from ..metrics.modes import mode_metrics
from ..nets import FAMILIES, build_nets
from ..rng import Stream, derive
from ..viz.grid import grid, png_bytes
from ..viz.scatter import toy_png
from . import checkpoint, distributed
from .ema import EMA
from .log import MetricsLog, Progress
from .precision import Precision
from .run import hold_lock, prune_samples
from .setup import deterministic_cuda, lr_factor, make_optimizer, pick_device
from .tb import EventWriter


def flat_scores(result: dict) -> dict:
    """An evaluation result as flat numbers for metrics.jsonl: fid, kid, is, precision, ..., modes, kl."""
    m, out = result["metrics"], {}
    for key in ("fid", "kid", "is"):
        if key in m:
            out[key] = m[key]["value"]
    for part in ("pr", "dc"):
        out.update({k: v for k, v in m.get(part, {}).items() if k in ("precision", "recall", "density", "coverage")})
    if "modes" in m:
        out.update({k: m["modes"][k] for k in ("modes", "kl", "hq", "confident", "kl_reverse", "kl_forward", "jsd")
                    if k in m["modes"]})
    return out


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, progress=None):
        """``progress``: a Progress, a mode name ('bar', 'lines', 'off'), or None for the config's."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.dist = distributed.from_env(cfg.device)
        self.device = torch.device(self.dist.device) if self.dist.active else pick_device(cfg.device)
        if self.device.type == "cuda":
            deterministic_cuda()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif self.dist.active and self.device.type == "cpu":
            torch.set_num_threads(distributed.threads_per_rank())
        check = "off" if cfg.guard.nonfinite == "off" else "grads" if self.dist.active else "all"
        self.precision = Precision(cfg.precision, self.device, check)
        self.data = load_dataset(cfg.data)
        self.data_print = self.data.fingerprint()
        family = FAMILIES[cfg.model.name]
        pack = getattr(cfg.model.arch, "pack", 1)
        if cfg.batch_size % pack:
            raise UserError(f"batch_size={cfg.batch_size} must be a multiple of model.pack={pack}")
        distributed.check_batch(cfg.batch_size, self.dist, pack)
        torch.manual_seed(derive(cfg.seed, "init"))
        G, D = build_nets(cfg.model, self.data.shape, len(self.data.classes or ()), self.data.shape_a)
        if self.dist.active and cfg.sync_bn:
            from .syncbn import convert
            G, D = convert(G), convert(D)
        self.G, self.D = G.to(self.device), D.to(self.device)
        if family.convolutional and cfg.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optim.g)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optim.d)
        self.ema = EMA(self.G, cfg.ema.half_life_kimg, cfg.ema.rampup) if cfg.ema.enabled else None
        self.setup_game()
        self.step, self.images, self.train_time = 0, 0, 0.0
        self.acc: dict = {}         # key -> [sum, count] over the current log interval
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        if not self.dist.main:
            progress = "off"                    # one progress line: rank 0's
        self.progress = progress if isinstance(progress, Progress) else Progress(cfg.steps, progress or cfg.log.progress)
        self.resumed = False
        self.tb = None
        self._asked = False         # a stop was requested (set by the signal handler, on this rank only)
        self._stop = False          # the stop every rank agreed on (read only where the ranks agree)
        self._evaluator = None      # built at the first evaluation
        self.best = None            # {"metric", "value", "step"} of checkpoints/best.pt
        self.lr_scale = 1.0         # the product of guard.lr_factor over the rollbacks so far
        self.failures = 0           # non-finite updates since the last checkpoint (train.guard)
        self.dropped = 0            # ... since the last metrics line
        self.recent: list = []      # the last few metrics records, for the guard's diagnosis
        self._start_state = None    # rollback target before the first checkpoint
        self._lock = None           # the run folder's lock (train.run.hold_lock), held by rank 0 while training

    def setup_game(self) -> None:
        """The real batches, the random streams, the game and the fixed inputs of sample grids."""
        cfg = self.cfg
        self.batches = Batches(self.data, cfg.batch_size, cfg.seed, self.device, rows=self.dist.rows(cfg.batch_size))
        self.z_stream = Stream(cfg.seed, "z", self.device)
        self.aux_stream = Stream(cfg.seed, "aux", self.device)
        reg = Regularizer(cfg.penalty.name, cfg.penalty.weight or 0.0, cfg.penalty.every or 1)
        G_run, D_run = self.G, self.D              # what the game calls: the nets, or their compiled forms
        if cfg.compile:
            from .precision import compiled
            G_run = compiled(self.G, self._warn)
            if reg.name in ("none",) or not reg.weight:
                D_run = compiled(self.D, self._warn)
            else:                                   # aot_autograd has no double backward (torch 2.13)
                self._warn(f"compile=true: D stays eager because penalty {reg.name} needs a double backward, "
                           "which torch.compile does not support; G is compiled")
        self.game = GANGame(G_run, D_run, LOSSES[cfg.loss], reg, cfg.clip or 0.0, self.opt_g, self.opt_d,
                            self.batches, self.z_stream, self.aux_stream, cfg.d_steps, cfg.batch_size, self.precision,
                            self.dist, classes=self.G.n_classes,
                            acgan=cfg.model.conditional and cfg.model.d_cond == "acgan", ac_weight=cfg.model.ac_weight)
        C = self.G.n_classes
        n_fixed = cfg.log.n_samples or (8 * C if C and self.data.kind == "image" else 64 if self.data.kind == "image"
                                         else 1000)
        self.fixed_z = torch.randn(n_fixed, cfg.model.z_dim, generator=Stream(cfg.seed, "fixed-z").next()).to(self.device)
        # conditional: the fixed samples' labels in blocks, so that an image grid has one row per class
        self.fixed_per = max(1, n_fixed // C) if C else None
        self.fixed_y = (torch.arange(n_fixed) // self.fixed_per).clamp(max=C - 1).to(self.device) if C else None

    def _warn(self, message: str) -> None:
        if self.dist.main:
            print(f"ganforge: warning: {message}", file=sys.stderr)

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict:
        s = {
            "step": self.step, "images": self.images, "time": self.train_time,
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.ema.module.state_dict() if self.ema else None,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "batches": self.batches.state_dict(), "z": self.z_stream.state_dict(),
            "aux": self.aux_stream.state_dict(), "game": self.game.state_dict(),
            "precision": self.precision.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "acc": {k: [v[0].detach().cpu(), v[1]] for k, v in self.acc.items()},
            "best": self.best, "lr_scale": self.lr_scale,
            "shape": list(self.data.shape), "config": self.cfg.to_dict(), "version": __version__,
            "data": self.data_print,
        }
        if self.device.type == "cuda":
            s["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return s

    def load_state_dict(self, s: dict, where="the checkpoint") -> None:
        try:
            self.G.load_state_dict(s["G"])
            self.D.load_state_dict(s["D"])
            if self.ema and s.get("G_ema") is not None:
                self.ema.module.load_state_dict(s["G_ema"])
        except RuntimeError as e:
            raise checkpoint.misfit(where, s, self.cfg.model.name, e) from None
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.batches.load_state_dict(s["batches"])
        self.z_stream.load_state_dict(s["z"])
        self.aux_stream.load_state_dict(s["aux"])
        self.game.load_state_dict(s["game"])
        self.precision.load_state_dict(s.get("precision", {}))
        torch.set_rng_state(s["torch_rng"].cpu())                # generator states are CPU byte tensors
        if self.device.type == "cuda" and "cuda_rng" in s:
            torch.cuda.set_rng_state(s["cuda_rng"].cpu(), self.device)
        self.acc = {k: [v[0].to(self.device), int(v[1])] for k, v in s["acc"].items()}
        self.step, self.images, self.train_time = int(s["step"]), int(s["images"]), float(s["time"])
        self.best = s.get("best")
        self.lr_scale = float(s.get("lr_scale", 1.0))

    def resume_from_checkpoint(self) -> bool:
        # on the CPU: load_state_dict copies weights and optimizer state to the nets' device, and the
        # generator states must stay CPU tensors (on a GPU, map_location=cuda broke every resume)
        found = checkpoint.latest(self.run_dir / "checkpoints", map_location="cpu")
        if found is None:
            return False
        self.load_state_dict(found[1], found[0])
        then = found[1].get("data")            # None: a checkpoint written before fingerprints
        if then is not None and then != self.data_print and self.dist.main:
            n0, n1 = then.get("n"), self.data_print["n"]
            how = f"{n0} items then, {n1} now" if n0 != n1 else f"the same {n1} items in number, other contents"
            print(f"ganforge: warning: the data changed since {found[0]} ({how}); training goes on with the data "
                  "as it is now, so the run will not match one that never stopped", file=sys.stderr)
        return True

    # ------------------------------------------------------------ outputs
    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor:
        """G's samples for codes z (and labels y, for a conditional G), in chunks of 256."""
        net = self.ema.module if (ema and self.ema) else self.G
        was = net.training
        net.eval()
        try:
            with self.precision.autocast():
                if y is None:
                    return torch.cat([net(c).float() for c in z.split(256)])
                return torch.cat([net(c, yc).float() for c, yc in zip(z.split(256), y.split(256))])
        finally:
            net.train(was)

    def write_samples(self) -> None:
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        x = self.generate(self.fixed_z, self.fixed_y)
        stem = folder / f"step-{self.step:07d}"
        if self.data.kind == "image":
            arr = grid(x, nrow=self.fixed_per)
            png = png_bytes(arr)
            arrays = {"x": x.cpu().numpy().astype(np.float16)}
        else:
            png = toy_png(x, self.data.x[: len(x)], f"step {self.step}")
            arr = np.asarray(Image.open(io.BytesIO(png)))
            arrays = {"x": x.cpu().numpy()}
        checkpoint.atomic_savez(stem.with_suffix(".npz"), **arrays)
        checkpoint.atomic_write_bytes(png, stem.with_suffix(".png"))
        prune_samples(self.run_dir, self.cfg.log.samples_keep)
        if self.tb is not None:
            self.tb.image(self.step, "samples", png, arr.shape[0], arr.shape[1], 1 if arr.ndim == 2 else arr.shape[2])

    def evaluate(self) -> dict:
        """The evaluation's numbers for the log line (flat keys); may update checkpoints/best.pt."""
        ev = self.evaluator()
        if ev is None:
            return {}
        z = torch.randn(self.cfg.eval.n, self.cfg.model.z_dim,
                        generator=Stream(self.cfg.eval.seed, "eval-z").next()).to(self.device)
        y = eval_labels(len(z), self.G.n_classes, self.device)
        if ev == "modes":                                  # toy default: the cheap VEEGAN/PacGAN counts
            if not self.dist.main:
                return {}
            m = mode_metrics(self.generate(z, y), self.data.density.means, self.data.density.std)
            return {"modes": m["modes"], "hq": m["hq"], "kl": m["kl"]}
        got = self.extract_everywhere(ev, z, y) if self.dist.active else None
        if not self.dist.main:
            return {}

        def source(start, count):
            return self.generate(z[start:start + count], None if y is None else y[start:start + count])
        out = flat_scores(ev(source, len(z), extracted=got))
        if y is not None:
            from ..metrics.evaluate import class_scores
            out.update(class_scores(ev, source, y))
        self.keep_best(out)
        return out

    def extract_everywhere(self, ev, z: torch.Tensor, y: torch.Tensor | None = None):
        """Under data-parallel training: each rank draws its contiguous share of the evaluation's samples and
        runs them through the extractor; rank 0 receives every share, in order (None on the other ranks)."""
        from ..metrics.extract import Extracted, extract
        from ..metrics.fid import FeatureStats
        part = z.tensor_split(self.dist.world)[self.dist.rank]
        part_y = None if y is None else y.tensor_split(self.dist.world)[self.dist.rank]
        logits = ev.extractor.has_logits and ("is" in ev.metrics or ev.digit_net is ev.extractor)
        mine = extract(ev.extractor, lambda start, count: self.generate(
                           part[start:start + count], None if part_y is None else part_y[start:start + count]), len(part),
                       ev.s.batch, keep_features=True, keep_logits=logits, device=self.device)
        shares = self.dist.gather_to_main((mine.features, mine.logits, mine.seconds))
        if shares is None:
            return None
        feats = torch.cat([f for f, _, _ in shares])
        return Extracted(FeatureStats(feats.shape[1]).update(feats), feats,
                         torch.cat([lg for _, lg, _ in shares]) if logits else None, len(feats),
                         max(sec for _, _, sec in shares))

    def evaluator(self):
        """None (nothing to measure), "modes" (toy default), or an Evaluator built on first use."""
        if self._evaluator is not None:
            return self._evaluator or None           # False: nothing to measure (decided at the first call)
        e = self.cfg.eval
        if e.metrics == "none":
            self._evaluator = False
        elif e.metrics == "auto" and self.data.density is not None:
            self._evaluator = "modes"
        elif e.metrics == "auto" and self.data.kind == "image" and tuple(self.data.shape) != (1, 28, 28):
            self._evaluator = False                       # images other than digits: only when asked
        else:
            from ..metrics.evaluate import Evaluator, Settings
            from ..metrics.sources import from_data_config
            metrics = () if e.metrics == "auto" else tuple(m.strip() for m in e.metrics.split(",") if m.strip())
            if e.metrics == "auto":
                metrics = ("fid", "modes") if self.cfg.data.name == "mnist" else ("fid",)
            real = from_data_config(self.cfg.data)
            self._evaluator = Evaluator(real, Settings(metrics=metrics, features=e.features, seed=e.seed,
                                                       device=self.device, kid_subsets=20))
        if e.best and self._evaluator not in (False, "modes"):
            from ..metrics.evaluate import SCORES
            if SCORES[e.best][0] not in self._evaluator.metrics:
                raise UserError(f"eval.best={e.best} needs the metric {SCORES[e.best][0]} in eval.metrics "
                                f"({','.join(self._evaluator.metrics)})")
        return self._evaluator or None

    def keep_best(self, scores: dict) -> None:
        """Write checkpoints/best.pt when the chosen score improved."""
        name = self.cfg.eval.best
        if not name or scores.get(name) is None:
            return
        from ..metrics.evaluate import SCORES
        lower = SCORES[name][1]
        v = float(scores[name])
        b = self.best
        if b is None or (v < b["value"] if lower else v > b["value"]):
            self.best = {"metric": name, "value": v, "step": self.step}
            checkpoint.atomic_save({"format": checkpoint.FORMAT, **self.state_dict()},
                                   self.run_dir / "checkpoints" / "best.pt")
            checkpoint.atomic_write_bytes((json.dumps(self.best) + "\n").encode(), self.run_dir / "best.json")

    def grad_norms(self) -> dict:
        out = {}
        for key, net in (("grad_g", self.G), ("grad_d", self.D)):
            grads = [p.grad.detach().float().norm() for p in net.parameters() if p.grad is not None]
            out[key] = float(torch.stack(grads).norm()) if grads else 0.0
        return out

    def accumulate(self, stats: list) -> None:
        """Add one iteration's statistics (no host sync: sums stay tensors until a log line)."""
        for part in stats:
            for k, v in part.items():
                if k in self.acc:
                    self.acc[k][0] = self.acc[k][0] + v
                    self.acc[k][1] += 1
                else:
                    self.acc[k] = [v, 1]

    def log_line(self, img_s: float) -> dict:
        """The means of the interval's statistics, each over the updates that computed it."""
        rec = {"step": self.step, "kimg": round(self.images / 1000, 3), "time": round(self.train_time, 3),
               "img_s": round(img_s, 1)}
        rec.update(self.dist.mean({k: float(total / n) for k, (total, n) in self.acc.items()}))
        rec.update(self.grad_norms())
        rec["lr_g"] = self.opt_g.param_groups[0]["lr"]
        rec["lr_d"] = self.opt_d.param_groups[0]["lr"]
        if self.ema:
            rec["ema_beta"] = self.ema.beta(self.cfg.batch_size, self.images)
        return rec

    # ------------------------------------------------------------ loop
    def set_lr(self) -> None:
        o = self.cfg.optim
        if o.schedule == "constant" and self.lr_scale == 1.0:
            return
        f = self.lr_scale * lr_factor(o.schedule, self.step, self.cfg.steps, o.decay_start, o.final_lr)
        for opt, c in ((self.opt_g, o.g), (self.opt_d, o.d)):
            for group in opt.param_groups:
                group["lr"] = c.lr * f

    # ------------------------------------------------------------ non-finite values (train.guard)
    def on_nonfinite(self, stats: list) -> None:
        """An update of this iteration was dropped: skip it, roll back, or stop, as guard.nonfinite says."""
        from .guard import Diverged, describe, likely_cause
        g, failed = self.cfg.guard, self.precision.failed
        what = describe(failed, stats)
        self.failures += 1
        self.dropped += 1
        newest = checkpoint.list_checkpoints(self.run_dir / "checkpoints")
        since = f"the checkpoint of step {checkpoint.step_of(newest[-1])}" if newest else "the start"
        if g.nonfinite == "stop" or self.failures >= g.max_failures:
            count = ("" if g.nonfinite == "stop" else
                     f"{self.failures} non-finite updates since {since} (last: ") + what
            cause = likely_cause(self.cfg, failed, self.recent, {"G": self.G, "D": self.D})
            keep = (f"checkpoint {newest[-1].name} is intact" if newest else "no checkpoint was written")
            raise Diverged(f"stopped at step {self.step}: {count}{'' if g.nonfinite == 'stop' else ')'}; "
                           f"likely cause: {cause}; {keep}")
        tally = f"({self.failures} of {g.max_failures} allowed between checkpoints)"
        if g.nonfinite == "skip":
            self._say(f"step {self.step}: {what}; update skipped {tally}")
            return
        found = checkpoint.latest(self.run_dir / "checkpoints", map_location="cpu") if newest else None
        state = found[1] if found else self._start_state
        failures, scale = self.failures, self.lr_scale * g.lr_factor
        at = self.step
        self.load_state_dict(state)
        self.failures, self.lr_scale, self.dropped = failures, scale, 0
        if self.dist.main:
            self.metrics.truncate_after(self.step)
        self.set_lr()
        self._say(f"step {at}: {what}; rolled back to step {self.step} with learning rates x{scale:g} "
                  f"(G {self.opt_g.param_groups[0]['lr']:.3g}, D {self.opt_d.param_groups[0]['lr']:.3g}) {tally}")

    def _say(self, message: str) -> None:
        if self.dist.main:
            self.progress.say(f"ganforge: {message}", always=True)

    def save_checkpoint(self) -> None:
        self.failures = 0
        if self.dist.main:
            checkpoint.save(self.run_dir / "checkpoints", self.state_dict(), self.step, self.cfg.log.keep_last)
        self._start_state = None

    def _on_signal(self, signum, frame):
        if self._asked and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._asked = True

    def _agree_stop(self) -> bool:
        """Whether to stop now: the request read once, then agreed on by every rank. The handler may set
        the request at any bytecode, so the loop never reads it twice: a rank that saw it after the
        others agreed to go on would leave the loop a step early and hang the next collective."""
        asked = self._asked
        return self.dist.any(asked) if self.dist.active else asked

    def run(self) -> dict:
        cfg = self.cfg
        main = self.dist.main                  # only rank 0 writes the run folder
        old = {}
        if threading.current_thread() is threading.main_thread():
            old = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.progress.start(self.step)
        last: dict = {}
        try:
            if main:
                self.run_dir.joinpath("checkpoints").mkdir(parents=True, exist_ok=True)
                if self._lock is None:
                    self._lock = hold_lock(self.run_dir)
                for folder in ("", "checkpoints", "samples"):     # "": config.yaml, run.json, metrics.jsonl
                    checkpoint.remove_stale(self.run_dir / folder)
                self.metrics.truncate_after(self.step)
            if cfg.guard.nonfinite == "rollback" and not checkpoint.list_checkpoints(self.run_dir / "checkpoints"):
                self._start_state = copy.deepcopy(self.state_dict())
            if cfg.log.tb and main:
                self.tb = EventWriter(self.run_dir / "tb")
                self.tb.session_start(self.step)
            if self.step == 0 and main:
                self.write_samples()
            t_mark, img_mark = time.time(), self.images
            self._stop = self._agree_stop()
            while self.step < cfg.steps and not self._stop:
                t0 = time.time()
                self.set_lr()
                stats = self.game.step()
                self.step += 1
                self.images += cfg.batch_size
                if self.ema:
                    self.ema.update(cfg.batch_size, self.images)
                if self.precision.failed:
                    self.on_nonfinite(stats)
                    self.precision.failed = []
                    if cfg.guard.nonfinite == "rollback":
                        t_mark, img_mark = time.time(), self.images
                        continue
                else:
                    self.accumulate(stats)
                self.train_time += time.time() - t0
                self._stop = self._agree_stop()        # every rank stops at the same step
                final = self.step == cfg.steps
                eval_due = (cfg.eval.every and self.step % cfg.eval.every == 0) or final
                if self.step % cfg.log.every == 0 or eval_due:
                    now = time.time()
                    rec = self.log_line((self.images - img_mark) / max(now - t_mark, 1e-9))
                    t_mark, img_mark = now, self.images
                    if self.dropped:
                        rec["nonfinite"], self.dropped = self.dropped, 0
                    if eval_due:
                        rec.update(self.evaluate())     # every rank extracts its share; rank 0 scores
                    self.dist.barrier()
                    if main:
                        self.metrics.write(rec)
                    if self.tb is not None:
                        self.tb.scalars(self.step, {k: v for k, v in rec.items()
                                                    if k != "step" and isinstance(v, (int, float))})
                    self.acc, last = {}, rec
                    self.recent = (self.recent + [rec])[-5:]
                    self.progress.update(self.step, rec, force=final)
                if main and (self.step % cfg.log.samples_every == 0 or final):
                    self.write_samples()
                if self.step % cfg.log.checkpoint_every == 0 or final:
                    self.save_checkpoint()
            if self._stop and self.step < cfg.steps:
                self.save_checkpoint()
            self.dist.barrier()
        except OSError as e:
            if e.errno not in DISK_ERRORS:
                raise
            newest = checkpoint.list_checkpoints(self.run_dir / "checkpoints")
            keep = f"checkpoint {newest[-1].name} is intact" if newest else "no checkpoint was written yet"
            raise UserError(f"cannot write to the run folder {self.run_dir} ({e.strerror}{': ' + str(e.filename) if e.filename else ''}) "
                            f"at step {self.step}; {keep}: make room and continue with ganforge train --resume "
                            f"{self.run_dir}") from None
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self.progress.close()
            if self.tb is not None:
                try:
                    self.tb.close()
                except OSError:
                    pass
            if self._lock is not None:
                self._lock.release()
                self._lock = None
        return {"run": str(self.run_dir), "step": self.step, "stopped": self._stop and self.step < cfg.steps,
                "last": last}




def eval_labels(n: int, classes: int, device) -> torch.Tensor | None:
    """Balanced labels for a conditional evaluation (0, 1, ..., C-1, 0, 1, ...); None if unconditional."""
    return torch.arange(n, device=device) % classes if classes else None


def write_run_info(trainer: Trainer) -> None:
    info = {"version": __version__, "shape": list(trainer.data.shape), "kind": trainer.data.kind,
            "classes": trainer.data.classes, "data": trainer.cfg.data.name, "n_data": len(trainer.data)}
    if trainer.data.translation:
        info.update(shape_a=list(trainer.data.shape_a), n_data_a=len(trainer.data.a), paired=trainer.data.paired)
    checkpoint.atomic_write_bytes((json.dumps(info, indent=1) + "\n").encode(), trainer.run_dir / "run.json")
