"""``ganforge compare RUN RUN ...``: runs side by side on one self-contained page.

Every curve the runs share is drawn once with one line per run (shared axes:
one scale, so differences are not an artefact of autoscaling), a table
gives each run's last value of every evaluation metric with the best one in
bold (in the direction the metric registry gives: lower for FID, KID and KL,
higher for precision, recall, density, coverage, IS and modes), then each
run's diagnostics, its last sample grid, and the config keys that differ.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

from ..errors import UserError
from ..metrics import registry
from ..runs import atomic, regular
from ..runs.folder import flat_keys
from .diagnose import diagnose, series
from .page import CSS, TRAINING, _b64, _fmt, final_metrics, read_run
from .svg import line_chart

MARKER = "<!-- ganforge compare -->"


def render(runs: list[dict]) -> str:
    names = [r["name"] for r in runs]
    if len(set(names)) < len(names):                 # two runs of one name from different folders
        names = [str(r["dir"]) for r in runs]
    parts = [f"<!DOCTYPE html>\n{MARKER}\n<html lang='en'><head><meta charset='utf-8'>",
             f"<title>ganforge compare: {escape(', '.join(names))}</title><style>{CSS}</style></head><body>",
             f"<h1>{len(runs)} runs compared</h1>"]
    lasts = [final_metrics(r["rows"]) for r in runs]
    keys = [k for k in ("step", *registry.table_keys()) if any(k in last for last in lasts)]
    parts.append("<h2>Last values</h2><table><tr><th class='l'>run</th>"
                 + "".join(f"<th>{escape(k)}</th>" for k in keys) + "</tr>")
    best = {}
    for k in keys[1:]:
        vals = [last[k] for last in lasts if isinstance(last.get(k), (int, float))]
        if len(vals) > 1:
            best[k] = min(vals) if registry.lower_is_better(k) else max(vals)
    for name, last in zip(names, lasts):
        cells = []
        for k in keys:
            v = last.get(k)
            text = _fmt(v) if v is not None else "–"
            cells.append(f"<td><b>{text}</b></td>" if v is not None and best.get(k) == v else f"<td>{text}</td>")
        parts.append(f"<tr><td class='l'>{escape(name)}</td>{''.join(cells)}</tr>")
    parts.append("</table>")
    for heading, groups in (("Training", TRAINING), ("Evaluation over time", registry.charts())):
        svgs = []
        for title, group_keys, log_y in groups:
            for k in group_keys:
                lines = [(n, *series(r["rows"], k)) for n, r in zip(names, runs)]
                lines = [line for line in lines if line[1]]
                if not lines:
                    continue
                svg = line_chart(lines, title=k if len(group_keys) > 1 else title, log_y=log_y)
                if svg:
                    svgs.append(svg)
        if svgs:
            parts += [f"<h2>{heading}</h2><div class='charts'>", *svgs, "</div>"]
    parts.append("<h2>Diagnostics</h2>")
    for name, r in zip(names, runs):
        found = diagnose(r["rows"], r["loss"])
        text = "; ".join(f"{f.title} from step {f.step}" for f in found) or "no failure found"
        parts.append(f"<p><b>{escape(name)}</b>: {escape(text)}</p>")
    grids = [(n, r["samples"][-1]) for n, r in zip(names, runs) if r["samples"]]
    if grids:
        parts.append("<h2>Last samples</h2><div class='grids'>")
        for n, (step, p) in grids:
            parts.append(f"<figure><img class='px' src='{_b64('image/png', p.read_bytes())}' alt='{escape(n)}'>"
                         f"<figcaption>{escape(n)}, step {step}</figcaption></figure>")
        parts.append("</div>")
    flats = [flat_keys(r["cfg"]) for r in runs]
    differ = sorted(k for k in set().union(*flats) if k != "name" and len({repr(f.get(k)) for f in flats}) > 1)
    if differ:
        parts.append("<h2>Config keys that differ</h2><table><tr><th class='l'>key</th>"
                     + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr>")
        for k in differ:
            parts.append(f"<tr><td class='l'>{escape(k)}</td>"
                         + "".join(f"<td>{escape(str(f.get(k, '–')))}</td>" for f in flats) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_compare(run_dirs: list, out: Path) -> Path:
    if len(run_dirs) < 2:
        raise UserError("compare needs at least two run folders")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out must end in .html, got {out.name}")
    old = regular.read_bytes(out)          # a FIFO or folder there: one line, no hang
    if old is not None and MARKER not in old[:200].decode(errors="replace"):
        raise UserError(f"{out} exists and is not a ganforge compare page; choose another --out")
    runs = [read_run(Path(d)) for d in run_dirs]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, render(runs))
    return out
