"""``ganforge report RUN``: RUN/report.html, one self-contained page about a run (ganforge.report)."""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub):
    r = sub.add_parser("report", help="write RUN/report.html: curves, grids, evolution, config and diagnostics "
                       "in one self-contained file")
    r.add_argument("run")
    r.add_argument("--out", default=None, help="the HTML file (default: RUN/report.html)")
    return r


def run(a) -> int:
    from ..report import diagnose, write_report
    from ..report.page import read_run
    run = read_run(Path(a.run))
    out = write_report(Path(a.run), Path(a.out) if a.out else None, run)
    for f in diagnose(run["rows"], run["loss"]):
        print(f"{f.title} from step {f.step}: {f.evidence}", file=sys.stderr)
    print(f"report: {out}")
    return 0


def report_after_training(run_dir: Path) -> None:
    """Regenerate RUN/report.html at the end of a training run; a failure costs one line, never the run."""
    try:
        from ..report import write_report
        write_report(run_dir)
    except Exception as e:          # the run is saved; its report is a convenience
        print(f"ganforge: warning: {run_dir}/report.html not written: {e}", file=sys.stderr)
