"""The training loop: one run from its config to its last checkpoint.

Each iteration is one call of the game's ``step`` (D phase x d_steps, then
the G phase), one EMA update, and, at their intervals, a metrics line, an
evaluation (train.evaluation), fixed-z samples and a checkpoint. Everything
that shapes the numbers (weights, optimizer moments, EMA, RNG counters, the
running sums of the current log interval) is in the checkpoint, so a run
killed at any moment and resumed from its last checkpoint writes the same
metrics and ends with the same weights, bit for bit on the CPU. Ctrl-C
(SIGINT) and SIGTERM (what a scheduler sends before preempting a job) stop
after the current step and write a checkpoint first; a second Ctrl-C stops
at once. The run folder is written through ganforge.runs; the game is built
by train.build; NaN and Inf are train.guard's.
"""
from __future__ import annotations

import contextlib
import copy
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data import load_dataset
from ..errors import DISK_ERRORS, UserError
from ..runs import atomic, checkpoint, folder, verify
from ..runs.metrics_log import MetricsLog
from ..version import __version__
from ..viz.grid import grid, png_bytes
from . import budget, build
from .ema import EMA
from .evaluation import Evaluation
from .guard import Guard
from . import minutes, precision_auto, schedules
from .precision import Precision
from .progress import Progress
from .tb import EventWriter


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, progress=None):
        """``progress``: a Progress, a mode name ('bar', 'lines', 'off'), or None for the config's."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.dist, self.device = build.placement(cfg)
        check = "off" if cfg.guard.nonfinite == "off" else "grads" if self.dist.active else "all"
        self.data = load_dataset(cfg.data)
        self._data_print = None
        budget.check_run(cfg, self.data, self.device)      # before any net or batch is allocated
        self.batches = None
        if not getattr(self.data.samples, "in_memory", True):
            self.batches = build.batches(cfg, self.data, self.device, self.dist)
            self.batches.read_ahead()       # a streamed archive's workers fork now, before the nets exist
        self.precision_choice = None        # what precision=auto measured on a CPU (train.precision_auto)
        if cfg.precision == "auto":
            cfg.precision, self.precision_choice = precision_auto.choose(cfg, self.data, self.device, self.dist)
        self.precision = Precision(cfg.precision, self.device, check)
        self.G, self.D = build.nets(cfg, self.data, self.dist, self.device)
        self.opt_g = build.make_optimizer(self.G.parameters(), cfg.optim.g)
        self.opt_d = build.make_optimizer(self.D.parameters(), cfg.optim.d)
        self.ema = EMA(self.G, cfg.ema.half_life_kimg, cfg.ema.rampup) if cfg.ema.enabled else None
        self.schedules = schedules.build(cfg)
        self.setup_game()
        self.step, self.images, self.train_time = 0, 0, 0.0
        self.acc: dict = {}         # key -> [sum, count] over the current log interval
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        if not self.dist.main:
            progress = "off"                    # one progress line: rank 0's
        self.progress = progress if isinstance(progress, Progress) else Progress(cfg.steps, progress or cfg.log.progress)
        self.resumed = False
        self.tb = None
        self.guard = Guard(cfg)
        self.evaluation = self.make_evaluation()
        self.resize_plan = None     # minutes=M: when and from what to size the steps again (train.minutes)
        self.lock = None            # the run folder's lock (runs.folder.hold_lock), held by rank 0 while training
        self._asked = False         # a stop was requested (set by the signal handler, on this rank only)
        self._stop = False          # the stop every rank agreed on (read only where the ranks agree)

    @property
    def data_print(self) -> dict:
        """The data's fingerprint (data.Dataset.fingerprint), made when a checkpoint or a resume first needs it:
        for a streamed archive it decodes 1,024 images, a second that need not delay the first step."""
        if self._data_print is None:
            self._data_print = self.data.fingerprint()
        return self._data_print

    def setup_game(self) -> None:
        """The real batches, the random streams, the game and the fixed inputs of sample grids."""
        self.batches, self.z_stream, self.aux_stream = build.streams(self.cfg, self.data, self.device, self.dist,
                                                                     self.batches)
        self.game = build.gan_game(self)
        self.fixed_z, self.fixed_y, self.fixed_per = build.fixed_codes(self.cfg, self.G.n_classes, self.data.kind,
                                                                       self.device)

    def make_evaluation(self):
        return Evaluation(self.cfg, self.data, self.device, self.dist)

    def warn(self, message: str) -> None:
        if self.dist.main:
            print(f"ganforge: warning: {message}", file=sys.stderr)

    def say(self, message: str) -> None:
        """A line the user must see, even with progress off (the guard's events)."""
        if self.dist.main:
            self.progress.say(f"ganforge: {message}", always=True)

    def run_info(self) -> dict:
        """run.json: what the data looked like."""
        d = self.data
        info = {"shape": list(d.shape), "kind": d.kind, "classes": d.classes, "data": self.cfg.data.name,
                "n_data": len(d)}
        if d.translation:
            info.update(shape_a=list(d.shape_a), n_data_a=len(d.a), paired=d.paired)
        if self.precision_choice:
            info["precision_auto"] = {k: v for k, v in self.precision_choice.items() if k != "cached"}
        return info

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
            "best": self.evaluation.best, "lr_scale": self.guard.lr_scale,
            "shape": list(self.data.shape), "config": self.cfg.to_dict(), "version": __version__,
            "data": self.data_print,
        }
        if self.device.type == "cuda":
            s["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return s

    def check_state(self, where, s: dict) -> None:
        """Every entry of a loaded checkpoint against this run's own state (runs.verify), before any is used."""
        template = self.state_dict()
        template["game"] = getattr(self.game, "state_spec", self.game.state_dict)()
        verify.training_state(where, s, template, {"opt_g": self.opt_g, "opt_d": self.opt_d}, self.cfg.model.name,
                              self.device)

    def load_state_dict(self, s: dict, where="the checkpoint") -> None:
        """The trainer set to a checkpoint's state, every entry checked first (check_state)."""
        self.check_state(where, s)
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        if self.ema and s.get("G_ema") is not None:
            self.ema.module.load_state_dict(s["G_ema"])
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
        self.evaluation.best = s.get("best")
        self.guard.lr_scale = float(s.get("lr_scale", 1.0))

    def resume_from_checkpoint(self) -> bool:
        # on the CPU: load_state_dict copies weights and optimizer state to the nets' device, and the
        # generator states must stay CPU tensors (on a GPU, map_location=cuda broke every resume)
        found = checkpoint.latest(self.run_dir / "checkpoints", map_location="cpu")
        if found is None:
            return False
        self.load_state_dict(found[1], found[0])         # checked first: a mismatch is one line naming the entry
        then = found[1].get("data")            # None: a checkpoint written before fingerprints
        if then is not None and then != self.data_print and self.dist.main:
            n0, n1 = then.get("n"), self.data_print["n"]
            how = f"{n0} items then, {n1} now" if n0 != n1 else f"the same {n1} items in number, other contents"
            print(f"ganforge: warning: the data changed since {found[0]} ({how}); training goes on with the data "
                  "as it is now, so the run will not match one that never stopped", file=sys.stderr)
        return True

    def save_checkpoint(self) -> None:
        self.guard.failures = 0
        if self.dist.main:
            checkpoint.save(self.run_dir / "checkpoints", self.state_dict(), self.step, self.cfg.log.keep_last)
        self.guard.start_state = None

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

    def samples_picture(self) -> tuple[np.ndarray, bytes, dict]:
        """The fixed inputs' samples as (picture array, its PNG, the arrays of the .npz)."""
        x = self.generate(self.fixed_z, self.fixed_y)
        if self.data.kind == "image":
            arr = grid(x, nrow=self.fixed_per)
            return arr, png_bytes(arr), {"x": x.cpu().numpy().astype(np.float16)}
        import io

        from PIL import Image

        from ..viz.scatter import toy_png
        png = toy_png(x, self.data.x[: len(x)], f"step {self.step}")
        return np.asarray(Image.open(io.BytesIO(png))), png, {"x": x.cpu().numpy()}

    def write_samples(self) -> None:
        arr, png, arrays = self.samples_picture()
        folder.write_samples(self.run_dir, self.step, png, arrays, self.cfg.log.samples_keep)
        if self.tb is not None:
            self.tb.image(self.step, "samples", png, arr.shape[0], arr.shape[1], 1 if arr.ndim == 2 else arr.shape[2])

    def evaluate(self) -> dict:
        """The evaluation's numbers for the log line; checkpoints/best.pt when eval.best's score improved."""
        scores = self.evaluation.measure(self)
        if self.dist.main and self.evaluation.improved(scores, self.step):
            checkpoint.save_as(self.run_dir / "checkpoints" / "best.pt", self.state_dict())
            atomic.write_json(self.run_dir / "best.json", self.evaluation.best)
        return scores

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
        rec.update(schedules.logged(self), **self.precision.logged())
        return rec

    def set_lr(self) -> None:
        """The learning rates (with the guard's rollback scale) and every other scheduled value for this step."""
        schedules.apply(self)

    # ------------------------------------------------------------ loop
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
        self.last: dict = {}
        with self._session():
            self._mark = (time.time(), self.images)
            self._waited = getattr(self.batches, "waited", 0.0)
            self._stop = self._agree_stop()
            while self.step < cfg.steps and not self._stop:
                self.iteration()
            if self._stop and self.step < cfg.steps:
                self.save_checkpoint()
            self.dist.barrier()
        return {"run": str(self.run_dir), "step": self.step, "stopped": self._stop and self.step < cfg.steps,
                "last": self.last}

    def iteration(self) -> None:
        """One step of the game, then whatever falls due at this step."""
        t0 = time.time()
        self.set_lr()
        stats = self.game.step()
        self.step += 1
        self.images += self.cfg.batch_size
        if self.ema:
            self.ema.update(self.cfg.batch_size, self.images)
        if self.precision.failed:
            rolled_back = self.guard.on_nonfinite(self, stats)
            self.precision.failed = []
            if rolled_back:
                self._mark = (time.time(), self.images)
                return
        else:
            self.accumulate(stats)
        self.train_time += time.time() - t0
        self._stop = self._agree_stop()        # every rank stops at the same step
        self.cadence()
        if self.resize_plan and self.step == self.resize_plan["at"]:
            minutes.resize(self)                # minutes=M: the steps again, from this run's own pace

    def cadence(self) -> None:
        """The metrics line (with an evaluation when due), the sample grid and the checkpoint of this step."""
        cfg, main = self.cfg, self.dist.main
        final = self.step == cfg.steps
        eval_due = self.evaluation.due(self.step)
        if self.step % cfg.log.every == 0 or eval_due:
            now = time.time()
            rec = self.log_line((self.images - self._mark[1]) / max(now - self._mark[0], 1e-9))
            if getattr(self.batches, "streaming", False):   # the share of the interval spent waiting for images
                waited = self.batches.waited
                rec["data_wait"] = round((waited - self._waited) / max(now - self._mark[0], 1e-9), 4)
                self._waited = waited
            self._mark = (now, self.images)
            self.guard.note(rec)
            if eval_due:
                rec.update(self.evaluate())     # every rank extracts its share; rank 0 scores
            self.dist.barrier()
            if main:
                self.metrics.write(rec)
            if self.tb is not None:
                self.tb.scalars(self.step, {k: v for k, v in rec.items() if k != "step" and isinstance(v, (int, float))})
            self.acc, self.last = {}, rec
            self.progress.update(self.step, rec, force=final)
        if main and (self.step % cfg.log.samples_every == 0 or final):
            self.write_samples()
        if self.step % cfg.log.checkpoint_every == 0 or final:
            self.save_checkpoint()

    @contextlib.contextmanager
    def _session(self):
        """Around the loop: signal handlers, the folder opened (lock, stale temporaries, metrics.jsonl cut to
        the step resumed from), TensorBoard, the first samples; after it, all undone, and a full or read-only
        disk told in one line that names the intact checkpoint."""
        main = self.dist.main                  # only rank 0 writes the run folder
        old = {}
        if threading.current_thread() is threading.main_thread():
            old = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.progress.start(self.step)
        try:
            if main:
                if self.lock is None:
                    self.lock = folder.hold_lock(self.run_dir)
                folder.open_for_training(self.run_dir)
                self.metrics.truncate_after(self.step)
            if self.cfg.guard.nonfinite == "rollback" and not checkpoint.list_checkpoints(self.run_dir / "checkpoints"):
                self.guard.start_state = copy.deepcopy(self.state_dict())
            if self.cfg.log.tb and main:
                self.tb = EventWriter(self.run_dir / "tb")
                self.tb.session_start(self.step)
            if self.step == 0 and main:
                self.write_samples()
            yield
        except OSError as e:
            if e.errno not in DISK_ERRORS:
                raise
            raise self._disk_error(e) from None
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self.progress.close()
            if hasattr(self.batches, "close"):
                self.batches.close()
            if self.tb is not None:
                with contextlib.suppress(OSError):
                    self.tb.close()
            self.release_lock()

    def _disk_error(self, e: OSError) -> UserError:
        newest = checkpoint.list_checkpoints(self.run_dir / "checkpoints")
        keep = f"checkpoint {newest[-1].name} is intact" if newest else "no checkpoint was written yet"
        where = f": {e.filename}" if e.filename else ""
        return UserError(f"cannot write to the run folder {self.run_dir} ({e.strerror}{where}) at step {self.step}; "
                         f"{keep}: make room and continue with ganforge train --resume {self.run_dir}")

    def release_lock(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
