"""report/: the diagnostics on logs of known shape, the SVG charts, and the report and compare pages of real runs."""
import math
import re
from html.parser import HTMLParser


from conftest import run_cli
from ganforge.report.diagnose import diagnose, first_sustained, swings
from ganforge.report.page import MARKER, render
from ganforge.report.svg import line_chart, nice_ticks


def rows_of(n=40, every=50, **series):
    """n log rows at steps every, 2*every, ...; each keyword is a function of the row index."""
    return [{"step": (i + 1) * every, **{k: f(i) for k, f in series.items()}} for i in range(n)]


HEALTHY = dict(d_real=lambda i: 0.7 + 0.01 * math.sin(i), d_fake=lambda i: 0.3 + 0.02 * math.cos(i),
               loss_d=lambda i: 1.2, loss_g=lambda i: 0.9 + 0.05 * math.sin(i), grad_g=lambda i: 2.0, grad_d=lambda i: 3.0)


def test_a_healthy_log_has_no_finding():
    rows = rows_of(**HEALTHY)
    for r, m in zip(rows[9::10], (3, 5, 7, 8)):
        r["modes"] = m
    assert diagnose(rows, "nonsaturating") == []


def test_overpowering_with_a_vanishing_gradient_is_found_where_it_began():
    rows = rows_of(d_real=lambda i: 0.7 if i < 10 else 0.99, d_fake=lambda i: 0.3 if i < 10 else 0.01,
                   grad_g=lambda i: 2.0 if i < 10 else 0.02, loss_d=lambda i: 1.0, loss_g=lambda i: 1.0)
    (f,) = diagnose(rows, "minimax")
    assert f.kind == "overpowering" and f.step == 550 and "vanished" in f.evidence
    assert "loss=nonsaturating" in f.suggestion
    (f,) = diagnose(rows, "nonsaturating")                 # the same log under another loss: another remedy
    assert "penalty=r1" in f.suggestion and "loss=nonsaturating" not in f.suggestion
    assert diagnose(rows, "wasserstein") == []             # no fixed scale: not judged


def test_a_brief_dip_of_d_fake_is_not_overpowering():
    rows = rows_of(**{**HEALTHY, "d_fake": lambda i: 0.01 if 10 <= i < 13 else 0.3,
                      "d_real": lambda i: 0.99 if 10 <= i < 13 else 0.7})
    assert diagnose(rows, "nonsaturating") == []


def test_non_finite_values_name_the_key_and_the_step():
    rows = rows_of(**HEALTHY)
    rows[6]["loss_d"] = float("nan")
    rows[7]["loss_d"] = float("inf")
    (f,) = diagnose(rows, "hinge")
    assert f.kind == "nonfinite" and f.step == 350 and "loss_d" in f.evidence and "1.2 at step 300" in f.evidence


def test_mode_collapse_is_a_sustained_fall_from_the_best():
    rows = rows_of(n=8, every=500, d_real=lambda i: 0.6, d_fake=lambda i: 0.4)
    for r, m in zip(rows, (2, 5, 8, 8, 4, 3, 3, 3)):
        r["modes"] = m
    (f,) = diagnose(rows, "nonsaturating")
    assert f.kind == "collapse" and f.step == 2500 and "from 8 at step 1500 to 4" in f.evidence
    rows[5]["modes"] = rows[6]["modes"] = rows[7]["modes"] = 8        # a dip that recovered
    assert diagnose(rows, "nonsaturating") == []


def test_oscillation_is_repeated_large_swings_of_d_fake():
    rows = rows_of(**{**HEALTHY, "d_fake": lambda i: 0.45 + 0.3 * math.sin(i / 2)})
    found = diagnose(rows, "nonsaturating")
    assert [f.kind for f in found] == ["oscillation"]
    assert found[0].step == 200                            # the first crest, index 3: sin(1.5)
    assert swings([0.5, 0.45, 0.55, 0.5], 0.2) == [] and swings([0, 1, 0, 1], 0.5) == [1, 2]


def test_first_sustained():
    assert first_sustained([False, True, False, False, True, True, True]) == 4
    assert first_sustained([False, True, False, True, True, True, True]) == 1         # 5 of the 6 from there
    assert first_sustained([True, True]) is None and first_sustained([False] * 5) is None


def test_nice_ticks_and_the_svg_chart():
    assert [round(t, 9) for t in nice_ticks(0, 1)] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert [round(t) for t in nice_ticks(0, 1000)] == [0, 200, 400, 600, 800, 1000]
    svg = line_chart([("<script>x</script>", [1, 2, 3, 4, 5], [1.0, 2.0, float("nan"), 3.0, 4.0]),
                      ("b", [1, 2], [0.5, 0.7])], title="a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg
    assert svg.count("<polyline") == 3                     # the NaN breaks the first line in two
    assert line_chart([("x", [1, 2], [float("nan"), None])]) == ""
    assert "(log)" in line_chart([("g", [1, 2, 3], [1e-3, 1.0, 10.0])], ylabel="norm", log_y=True)
    one = line_chart([("fid", [3000], [110.0])])           # one evaluation: one point, one x tick
    assert one.count("<circle") == 1 and one.count(">3000</text>") == 1 and ">2999<" not in one


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.urls = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def _check_self_contained(html: str):
    p = _Tags()
    p.feed(html)
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    assert all(u.startswith("data:") for u in p.urls), [u[:40] for u in p.urls if not u.startswith("data:")]
    assert html.count("<svg") == html.count("</svg>") > 0
    return p


def test_render_escapes_every_text_from_the_run():
    run = {"dir": None, "name": "<img src=x onerror=alert(1)>", "config_text": "name: </pre><script>", "cfg": {},
           "info": {}, "rows": rows_of(**HEALTHY), "loss": "<b>", "samples": []}
    html = render(run)
    assert "<img src=x" not in html and "</pre><script>" not in html and "&lt;b&gt;" in html
    _check_self_contained(html)


def _toy(tmp_path, name, *extra):
    r = run_cli("train", "toy-ring", "steps=80", "batch_size=64", "log.every=10", "log.samples_every=20",
                "eval.every=40", f"name={name}", "log.progress=off", *extra, "--out", tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    return tmp_path / name


def test_training_writes_a_self_contained_report_and_compare_puts_runs_side_by_side(tmp_path):
    a, b = _toy(tmp_path, "a"), _toy(tmp_path, "b", "optim.d.lr=0.003")
    html = (a / "report.html").read_text()                 # written at the end of training
    assert html.startswith("<!DOCTYPE html>\n" + MARKER)
    p = _check_self_contained(html)
    pngs = [u for u in p.urls if u.startswith("data:image/png;base64,")]
    assert len(pngs) == 5 and any(u.startswith("data:image/gif;base64,") for u in p.urls)   # steps 20..80, the GIF
    assert "Diagnostics" in html and "loss_d" in html and "modes" in html and "steps: 80" in html
    assert re.search(r'<polyline class="series"', html)

    (a / "report.html").unlink()
    r = run_cli("report", a)
    assert r.returncode == 0 and (a / "report.html").read_text().startswith("<!DOCTYPE html>\n" + MARKER)

    out = tmp_path / "cmp.html"
    r = run_cli("compare", a, b, "--out", out)
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    _check_self_contained(page)
    assert "optim.d.lr" in page and page.count("<tr><td class='l'>a</td>") == 1 and ">b</td>" in page

    # mistakes: one line, exit 2, nothing overwritten
    mine = tmp_path / "mine.html"
    mine.write_text("my notes")
    for args in (("compare", a, "--out", out), ("compare", a, b, "--out", mine), ("report", tmp_path),
                 ("report", a, "--out", mine), ("compare", a, b, "--out", tmp_path / "x.png")):
        r = run_cli(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    assert mine.read_text() == "my notes"
