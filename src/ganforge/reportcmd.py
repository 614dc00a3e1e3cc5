"""``ganforge report RUN`` and ``ganforge compare RUN RUN ... --out PAGE``: the HTML pages of report/."""
from __future__ import annotations

import sys
from pathlib import Path


def cmd_report(a) -> int:
    from .report import diagnose, write_report
    from .report.page import read_run
    out = write_report(Path(a.run), Path(a.out) if a.out else None)
    run = read_run(Path(a.run))
    for f in diagnose(run["rows"], run["loss"]):
        print(f"{f.title} from step {f.step}: {f.evidence}", file=sys.stderr)
    print(f"report: {out}")
    return 0


def cmd_compare(a) -> int:
    from .report import write_compare
    print(f"compare: {write_compare(a.runs, Path(a.out))}")
    return 0


def add_parsers(sub) -> None:
    r = sub.add_parser("report", help="write RUN/report.html: curves, grids, evolution, config and diagnostics "
                       "in one self-contained file")
    r.add_argument("run")
    r.add_argument("--out", default=None, help="the HTML file (default: RUN/report.html)")
    r.set_defaults(fn=cmd_report)
    c = sub.add_parser("compare", help="one self-contained HTML page comparing runs side by side")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument("--out", default="compare.html", help="the HTML file (default: compare.html)")
    c.set_defaults(fn=cmd_compare)


def report_after_training(run_dir: Path) -> None:
    """Regenerate RUN/report.html at the end of a training run; a failure costs one line, never the run."""
    try:
        from .report import write_report
        write_report(run_dir)
    except Exception as e:          # the run is saved; its report is a convenience
        print(f"ganforge: warning: {run_dir}/report.html not written: {e}", file=sys.stderr)
