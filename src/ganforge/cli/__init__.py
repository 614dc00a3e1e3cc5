"""The ``ganforge`` command: one module per command in this package, each with the same two functions.

``add_parser(sub)`` adds the command's arguments (and returns its parser);
``run(args)`` does the work and returns the exit code. :data:`COMMANDS`
lists them in the order ``ganforge --help`` shows; :func:`register_command`
adds one from outside the package. User mistakes print one line,
``ganforge: error: ...``, and exit with code 2; Ctrl-C or SIGTERM during
training stops cleanly after writing a checkpoint (exit 130); a run that
keeps producing NaN or Inf stops with exit code 3 (train.guard); a full or
read-only disk is one line, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from types import ModuleType

from ..errors import DISK_ERRORS, UserError, one_line

COMMANDS: dict[str, str | ModuleType] = {name: f"{__name__}.{name}" for name in (
    "train", "sample", "eval", "data", "lab", "truncation", "stylemix", "interpolate", "translate", "report",
    "compare", "serve", "export", "config")}


def register_command(name: str, module: ModuleType) -> None:
    """Add ``ganforge NAME``: ``module`` has ``add_parser(sub)`` (returning its parser) and ``run(args)``."""
    if not all(hasattr(module, f) for f in ("add_parser", "run")):
        raise TypeError(f"command {name}: its module needs add_parser(sub) and run(args)")
    COMMANDS[name] = module


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage too)
        sys.stderr.write(f"ganforge: error: {one_line(message)} (see {self.prog} --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="ganforge", description="Train, measure and understand GANs.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    for module in COMMANDS.values():
        module = importlib.import_module(module) if isinstance(module, str) else module
        module.add_parser(sub).set_defaults(fn=module.run)
    return p


def process_started() -> float:
    """The time.time() at which this process started (Linux: /proc; else now): a command's clock starts before
    Python and torch load (3-6 s here)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])         # field 22, starttime, in clock ticks
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        return time.time() - max(0.0, up - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (ganforge train toy-grid --out x steps=5)
    if extra and hasattr(args, "items") and all("=" in e and not e.startswith("-") for e in extra):
        args.items += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.started = process_started() if argv is None else time.time()     # where minutes= counts from
    try:
        return args.fn(args)
    except UserError as e:
        print(f"ganforge: error: {one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:   # past the estimate (--insist), or one that erred low
        if not (isinstance(e, MemoryError) or "can't allocate memory" in str(e) or "out of memory" in str(e)):
            raise
        print("ganforge: error: out of memory: the machine could not hold what this command needs "
              f"({one_line(str(e), 160) or type(e).__name__}); ask for less", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno in DISK_ERRORS:
            print(f"ganforge: error: {e.strerror} writing {e.filename or 'a file'}; nothing earlier was overwritten",
                  file=sys.stderr)
            return 2
        raise
