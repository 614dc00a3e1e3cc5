"""``ganforge compare RUN RUN ... --out PAGE``: runs side by side on one self-contained page (report.compare)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    c = sub.add_parser("compare", help="one self-contained HTML page comparing runs side by side")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument("--out", default="compare.html", help="the HTML file (default: compare.html)")
    return c


def run(a) -> int:
    from ..report import write_compare
    print(f"compare: {write_compare(a.runs, Path(a.out))}")
    return 0
