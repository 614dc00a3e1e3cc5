"""The extension points: docs/extending.md's example runs as written, and a registered metric reaches everything.

The example registers a loss, a family, a feature extractor and a metric in one process, trains with them,
evaluates through the command line and writes a report and a comparison; the test reads what it wrote. The
registry test adds a metric in one place (the registry, undone afterwards) and sees the config, the parser,
the evaluator, metrics.jsonl's flat numbers, the printed table and the pages' charts and tables take it.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganforge.metrics import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def test_the_documented_example_runs_and_its_metric_is_everywhere(tmp_path):
    code = "\n".join(re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S))
    (tmp_path / "example.py").write_text(code)
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "meangap" in r.stdout and "features: pooled-pixels" in r.stdout          # the printed tables
    cfg = (tmp_path / "runs" / "tiny-1" / "config.yaml").read_text()
    assert "name: tiny" in cfg and "loss: soft-hinge" in cfg and "width: 64" in cfg
    rows = [json.loads(x) for x in (tmp_path / "runs" / "tiny-1" / "metrics.jsonl").read_text().splitlines()]
    logged = [row["meangap"] for row in rows if "meangap" in row]
    assert len(logged) == 3 and all(v >= 0 for v in logged)                       # eval.every=100 of 300 steps
    best = json.loads((tmp_path / "runs" / "tiny-1" / "best.json").read_text())
    assert best["metric"] == "meangap" and best["value"] == min(logged)            # lower is better
    pair = json.loads((tmp_path / "eval.json").read_text())["evaluations"][-1]["metrics"]
    assert pair["meangap"]["extractor"] == "pooled-pixels" and pair["meangap"]["value"] > 0.1
    run_eval = json.loads((tmp_path / "runs" / "tiny-1" / "eval.json").read_text())["evaluations"][-1]["metrics"]
    assert set(run_eval) == {"modes", "meangap"}
    report = (tmp_path / "runs" / "tiny-1" / "report.html").read_text()
    assert "Mean gap" in report and "<th>meangap</th>" in report                   # a chart and the last-value table
    compare = (tmp_path / "compare.html").read_text()
    assert "Mean gap" in compare and "<th>meangap</th>" in compare


@pytest.fixture
def toy_metric(monkeypatch):
    """A metric registered for one test: the largest feature value of the generated samples (higher is better)."""
    metric = registry.Metric("maxfeat", "the largest feature", (registry.Score("maxfeat", lower=False, chart="Max"),),
                             lambda inp: {"value": float(inp.fake.features.max())})
    monkeypatch.setitem(registry.METRICS, "maxfeat", metric)
    return metric


def test_a_metric_registered_in_one_place_is_known_everywhere(toy_metric, tmp_path, capsys):
    from ganforge.cli import build_parser
    from ganforge.cli.eval import table
    from ganforge.config import load_config
    from ganforge.metrics.evaluate import Evaluator, RealSet, Settings
    assert load_config(None, ("eval.best=maxfeat",)).eval.best == "maxfeat"
    help_text = [a for a in build_parser()._subparsers._group_actions[0].choices["eval"]._actions
                 if "--metrics" in a.option_strings][0].help
    assert "maxfeat" in help_text
    real = RealSet("points", torch.randn(300, 2))
    ev = Evaluator(real, Settings(metrics=("maxfeat", "fid")))
    assert ev.metrics == ("fid", "maxfeat")                                           # registry order
    fake = torch.randn(200, 2) * 2
    result = ev(fake, 200)
    assert result["metrics"]["maxfeat"]["value"] == pytest.approx(float(fake.max()))
    assert result["metrics"]["maxfeat"]["n_fake"] == 200                              # provenance added
    assert registry.flat_scores(result)["maxfeat"] == pytest.approx(float(fake.max()))
    result.update(n=200)
    assert re.search(r"maxfeat\s+\d", table(result))
    assert ("Max", ("maxfeat",), False) in registry.charts() and "maxfeat" in registry.table_keys()
    assert not registry.lower_is_better("maxfeat") and registry.lower_is_better("fid")


def test_a_wrong_metric_is_one_line_naming_the_choices():
    from ganforge.errors import UserError
    with pytest.raises(UserError, match=r"unknown metric 'fidd'; choose from fid,kid,is,pr,dc,modes"):
        registry.parse("fid,fidd", "image", None)
    with pytest.raises(ValueError):
        registry.register_metric(registry.Metric("a,b", "bad", (), None))
