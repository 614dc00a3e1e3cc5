"""``ganforge lab``: every experiment end to end at its quick size, and the command's rules."""
import json
import os

import pytest

from conftest import run_cli
from ganforge.cli import build_parser
from ganforge.lab import EXPERIMENTS, available, get
from ganforge.cli.lab import run as run_lab

# one worker runs the whole module, so its module fixture runs once (under -n 2 a module's tests are otherwise
# spread over both workers, each running the fixture): scripts/test.sh runs pytest with --dist loadgroup
pytestmark = pytest.mark.xdist_group("lab")


def test_every_experiment_is_built_and_listed():
    assert available() == list(EXPERIMENTS)
    r = run_cli("lab", "list")
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(EXPERIMENTS)
    for name in EXPERIMENTS:
        m = get(name)
        assert m.NAME == name and m.SUMMARY and m.CLAIM and len(m.PAGE.split()) > 30 and m.__doc__


@pytest.fixture(scope="module")
def quick_all(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    r = run_cli("lab", "all", "--size", "quick", "--out", base / "runs", "--docs", base / "docs", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return base, r


def test_lab_all_writes_results_figures_pages_and_the_table(quick_all):
    base, r = quick_all
    table = (base / "docs" / "README.md").read_text()
    for name in EXPERIMENTS:
        res = json.loads((base / "runs" / name / "result.json").read_text())
        assert res["name"] == name and res["size"] == "quick" and res["headline"]
        assert res["held"] in (True, False, None)
        pngs = [f for f in res["figures"] if f.endswith(".png")]
        assert pngs, name
        for f in res["figures"]:
            assert (base / "runs" / name / f).stat().st_size > 1000, f
        page = (base / "docs" / f"{name}.md").read_text()
        assert res["headline"] in page and f"figures/{name}/" in page
        assert f"[{name}]({name}.md)" in table
    assert not [p for p in (base / "runs").iterdir() if p.name.startswith(".")]      # no temporary folders left


def test_lab_moving_experiments_write_gif_and_mp4(quick_all):
    base, _ = quick_all
    from PIL import Image
    from ganforge.viz.movie import read_mp4
    with Image.open(base / "runs" / "flow" / "figures" / "flow-split.gif") as im:
        assert im.n_frames > 3
    frames = read_mp4(base / "runs" / "evolution" / "figures" / "evolution.mp4")
    assert len(frames) == json.loads((base / "runs" / "evolution" / "result.json").read_text())["numbers"]["frames"]


def test_quick_claims_that_must_hold_even_small(quick_all):
    base, _ = quick_all
    res = {n: json.loads((base / "runs" / n / "result.json").read_text()) for n in EXPERIMENTS}
    assert res["value-jsd"]["held"] is True
    assert abs(res["value-jsd"]["numbers"]["difference"]) < 1e-12
    assert res["optimal-d"]["numbers"]["mean_abs"] < 0.05                 # 300 steps: already close to D*
    assert res["flow"]["numbers"]["ring"]["mean_cosine_move_vs_grad_d"] > 0.3
    table = res["collapse"]["numbers"]["table"]
    assert set(table) == {"ring", "grid"} and len(table["grid"]) == len(res["collapse"]["numbers"]["settings"])
    for r in res["ranking"]["numbers"]["spearman"].values():
        assert -1 <= r <= 1


def _args(*argv):
    return build_parser().parse_args(["lab", *map(str, argv)])


def test_existing_result_is_refused_and_kept_then_replaced_with_force(tmp_path, capsys):
    out = tmp_path / "runs"
    assert run_lab(_args("value-jsd", "--size", "quick", "--out", out)) == 0
    result = out / "value-jsd" / "result.json"
    before = result.read_bytes()
    os.utime(result, (1, 1))
    r = run_cli("lab", "value-jsd", "--size", "quick", "--out", out)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--force" in r.stderr
    assert result.read_bytes() == before and result.stat().st_mtime == 1
    assert run_lab(_args("value-jsd", "--size", "quick", "--out", out, "--force")) == 0
    assert result.stat().st_mtime > 1


def test_a_failing_run_with_force_keeps_the_old_result(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    assert run_lab(_args("value-jsd", "--size", "quick", "--out", out)) == 0
    before = (out / "value-jsd" / "result.json").read_bytes()
    module = get("value-jsd")

    def boom(lab):
        (lab.figures / "half.png").write_bytes(b"x")
        raise RuntimeError("killed")
    monkeypatch.setattr(module, "run", boom)
    with pytest.raises(RuntimeError):
        run_lab(_args("value-jsd", "--size", "quick", "--out", out, "--force"))
    assert (out / "value-jsd" / "result.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["value-jsd"]


@pytest.mark.parametrize("argv,needle", [
    (["lab", "bogus"], "unknown experiment"),
    (["lab", "flow", "--run", "nowhere"], "--run applies to"),
    (["lab", "ranking", "--run", "nowhere"], "not a ganforge run folder"),
])
def test_lab_mistakes_are_one_line_exit_2(argv, needle, tmp_path):
    r = run_cli(*argv, "--out", tmp_path / "o")
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_ranking_and_evolution_use_a_given_run(quick_all, tmp_path):
    base, _ = quick_all
    run = base / "runs" / "evolution" / "run"
    r = run_cli("lab", "ranking", "--size", "quick", "--run", run, "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-1000:]
    res = json.loads((tmp_path / "ranking" / "result.json").read_text())
    assert res["numbers"]["run"] == str(run) and not (tmp_path / "ranking" / "run").exists()
