"""``ganforge report RUN``: one self-contained HTML page about a run.

Everything is inside the file: curves as inline SVG (report.svg), sample
grids and the fixed-z evolution as base64 PNG and GIF, the resolved config
as text, and the diagnostics (report.diagnose) in plain words. No script, no
stylesheet or font from a network: the page opens offline and can be mailed
or archived with the run. What a TensorBoard shows, in one file, plus the
reading of the numbers that TensorBoard leaves to the user.
"""
from __future__ import annotations

import base64
import io
import math
import time
from html import escape
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UserError
from ..metrics import registry
from ..runs import atomic, folder, regular
from ..runs.metrics_log import read_metrics
from .diagnose import Finding, diagnose, series
from .memorization import section as memorization_section
from .svg import line_chart

MARKER = "<!-- ganforge report -->"
CSS = """body{font-family:sans-serif;margin:24px auto;max-width:1000px;color:#222}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
.charts{display:flex;flex-wrap:wrap;gap:8px}.grids{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0}figcaption{font-size:12px;color:#555;text-align:center}
img.px{image-rendering:pixelated}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
.finding{border-left:4px solid #c00;background:#fff5f5;padding:6px 12px;margin:8px 0}
.ok{border-left:4px solid #2a2;background:#f5fff5;padding:6px 12px}pre{background:#f7f7f7;padding:8px;
font-size:12px;overflow:auto;max-height:420px}"""
# (title, keys, log y) of the training curves; a chart is drawn only for keys the run logged
TRAINING = (("Losses", ("loss_d", "loss_g"), False),
            ("D's outputs: D(x) and D(G(z))", ("d_real", "d_fake", "d_fake_g"), False),
            ("Gradient norms", ("grad_d", "grad_g"), True),
            ("Learning rates", ("lr_d", "lr_g"), False),
            ("Augmentation: ADA's p and r_t = E[sign D(x)]", ("aug_p", "rt"), False))


def _b64(kind: str, data: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def charts(rows: list[dict], groups, marks=()) -> list[str]:
    out = []
    for title, keys, log_y in groups:
        lines = [(k, *series(rows, k)) for k in keys]
        lines = [line for line in lines if line[1]]
        if lines:
            svg = line_chart(lines, title=title, log_y=log_y, marks=marks)
            if svg:
                out.append(svg)
    return out


def spread(items: list, k: int) -> list:
    """About k items evenly over the list, always with the first and the last."""
    if len(items) <= k:
        return list(items)
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def evolution_gif(samples: list[tuple[int, Path]], most: int = 40) -> Optional[bytes]:
    """The fixed-z grids as one looping GIF (frames of one size only), or None with fewer than 2."""
    from PIL import Image
    from ..viz.movie import write_gif
    frames = []
    for _, p in spread(samples, most):
        try:
            with Image.open(p) as im:
                frames.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError):       # a damaged grid: the movie goes on without it
            continue
    frames = [f for f in frames if f.shape == frames[-1].shape] if frames else []
    if len(frames) < 2:
        return None
    buf = io.BytesIO()
    write_gif(frames, buf, fps=4)
    return buf.getvalue()


def findings_html(found: list[Finding]) -> str:
    if not found:
        return ('<div class="ok">No failure found: no non-finite values, D did not overpower G, no fall in the '
                'modes covered or recall, no oscillation of D(G(z)) (see the rules in ganforge.report.diagnose).</div>')
    return "".join(f'<div class="finding"><b>{escape(f.title)}</b>, from step {f.step}. {escape(f.evidence)}<br>'
                   f'<i>Try:</i> {escape(f.suggestion)}</div>' for f in found)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return escape(str(v))


def final_metrics(rows: list[dict]) -> dict:
    """The last logged value of every number (wall-clock fields aside)."""
    out: dict = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("img_s",):
                out[k] = v
    return out


def last_table(last: dict) -> str:
    """The 'Last evaluation' heading and table of the metrics in ``last`` (empty when none was logged)."""
    shown = [k for k in registry.table_keys() if k in last]
    if not shown:
        return ""
    return ("<h2>Last evaluation</h2><table><tr>" + "".join(f"<th>{escape(k)}</th>" for k in shown)
            + "</tr><tr>" + "".join(f"<td>{_fmt(last[k])}</td>" for k in shown) + "</tr></table>")


def read_run(run_dir: Path) -> dict:
    """What a page shows of a run folder: its config (text and dict), run.json, metrics.jsonl, sample grids."""
    run_dir = Path(run_dir)
    config_text, cfg = folder.read_config_text(run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl")
    return {"dir": run_dir, "name": run_dir.name, "config_text": config_text, "cfg": cfg,
            "info": folder.read_info_if_any(run_dir), "rows": rows, "loss": str(cfg.get("loss", "")),
            "samples": folder.sample_files(run_dir, ".png")}


def render(run: dict) -> str:
    rows, cfg = run["rows"], run["cfg"]
    found = diagnose(rows, run["loss"])
    marks = [(f.step, f.title) for f in found]
    last = final_metrics(rows)
    model = cfg.get("model", {}).get("name", "?") if isinstance(cfg.get("model"), dict) else cfg.get("model", "?")
    data = cfg.get("data", {}).get("name", "?") if isinstance(cfg.get("data"), dict) else cfg.get("data", "?")
    parts = [f"<!DOCTYPE html>\n{MARKER}\n<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{escape(run['name'])}: ganforge report</title><style>{CSS}</style></head><body>",
             f"<h1>{escape(run['name'])}</h1>",
             f"<p>{escape(str(model))} on {escape(str(data))}, loss {escape(run['loss'])}; "
             f"step {last.get('step', 0)} of {escape(str(cfg.get('steps', '?')))}, "
             f"{last.get('kimg', 0)} kimg, {last.get('time', 0):.0f} s of training. "
             f"Written {time.strftime('%Y-%m-%d %H:%M')} by ganforge report.</p>",
             "<h2>Diagnostics</h2>", findings_html(found)]
    train = charts(rows, TRAINING, marks)
    if train:
        parts += ["<h2>Training</h2><div class='charts'>", *train, "</div>"]
    ev = charts(rows, registry.charts(), marks)
    if ev:
        parts += ["<h2>Evaluation over time</h2><div class='charts'>", *ev, "</div>"]
    parts.append(last_table(last))
    samples = run["samples"]
    if samples:
        parts.append("<h2>Samples of the fixed codes</h2><div class='grids'>")
        for step, p in spread(samples, 6):
            parts.append(f"<figure><img class='px' src='{_b64('image/png', p.read_bytes())}' "
                         f"alt='samples at step {step}'><figcaption>step {step}</figcaption></figure>")
        parts.append("</div>")
        gif = evolution_gif(samples)
        if gif:
            parts.append(f"<h2>Evolution</h2><figure><img class='px' src='{_b64('image/gif', gif)}' "
                         f"alt='the fixed codes over training'><figcaption>the same codes z at "
                         f"{min(len(samples), 40)} stages, steps {samples[0][0]} to {samples[-1][0]}</figcaption>"
                         "</figure>")
    parts.append(memorization_section(run.get("dir")))
    parts += ["<h2>Config</h2>", f"<pre>{escape(run['config_text'])}</pre>", "</body></html>\n"]
    return "".join(parts)


def write_report(run_dir: Path, out: Optional[Path] = None, run: Optional[dict] = None) -> Path:
    """RUN/report.html (or ``out``), replacing an earlier report; returns its path. ``run``: the folder as
    read_run read it already (its warnings said once)."""
    run = run or read_run(Path(run_dir))
    out = Path(out) if out else run["dir"] / "report.html"
    old = regular.read_bytes(out)          # a FIFO or folder there: one line, no hang
    if old is not None and MARKER not in old[:200].decode(errors="replace"):
        raise UserError(f"{out} exists and is not a ganforge report; choose another --out")
    atomic.write_text(out, render(run))
    return out
