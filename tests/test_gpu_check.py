"""benchmarks/gpu_check.py --smoke: every section of the GPU check runs at toy sizes on this machine (on a CPU,
fp16 and compile are skipped and the tests are collected, not run), so that the script the GPU run depends on
does not rot between GPU runs."""
import json
import subprocess
import sys

from conftest import ROOT

SECTIONS = ("tests", "speed", "fp16", "loader", "quality")


def _errors(node, path="gpu_check"):
    """Every "error" entry anywhere in the JSON, with where it is."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "error":
                yield path, v
            else:
                yield from _errors(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _errors(v, f"{path}[{i}]")


def test_gpu_check_smoke_runs_every_section(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["machine"]["torch"] and res["machine"]["cores"] >= 1
    for s in SECTIONS:
        assert s in res, s
        assert "error" not in res[s], (s, res[s]["error"])
        assert res[s].get("skipped") or set(res[s]) - {"section_s", "share_s", "warnings"}, (s, res[s])
    assert not list(_errors(res)), list(_errors(res))[:3]
    assert res["tests"]["collected"] >= 8 and "tests/test_cuda_paths.py" in " ".join(res["tests"]["ids"])
    assert (tmp_path / "tests.log").is_file()
    groups = {g["group"]: g for g in res["speed"]["groups"]}
    assert {"dcgan-64", "dcgan-64-b256", "sngan-64", "stylegan-64", "stylegan-256", "biggan-128"} <= set(groups)
    for g in groups.values():
        assert any(row.get("img_s", 0) > 0 for row in g["rows"]) and g["step_gflop"] > 0, g
    if res["device"] == "cpu":
        assert res["fp16"]["skipped"] == "needs CUDA" and res["fp16"]["dry_run_bf16_cpu"]["steps"] > 0
    assert res["loader"]["streamed"]["img_s"] > 0 and "data_wait" in res["loader"]["streamed"]
    assert [(q["precision"], q["seed"]) for q in res["quality"]["rows"]] == [("fp32", 0), ("bf16", 0), ("fp32", 1),
                                                                               ("bf16", 1)]
    assert all(q["fid"] > 0 for q in res["quality"]["rows"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "tests.log"]
