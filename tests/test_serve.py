"""serve/: the playground's checks and game, the run watcher, the app's answers and streams, the serve command."""
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest
import torch

from conftest import ganforge_cmd, run_cli
from ganforge.serve import Server
from ganforge.serve import playground as pgmod
from ganforge.serve.params import BadInput, Settings, parse_count, parse_points, parse_settings
from ganforge.serve.playground import Playground
from ganforge.serve.runview import RunWatcher
from ganforge.serve.server import exposure_warning


def test_settings_are_checked_and_name_what_is_allowed():
    base = Settings()
    assert parse_settings({"lr_d": 0.002, "d_steps": 3.0}, base) == Settings(lr_d=0.002, d_steps=3)
    bad = [({"bogus": 1}, "unknown setting 'bogus'"), ({"lr_g": float("nan")}, "finite"),
           ({"lr_g": 5}, "between 1e-06 and 0.1"), ({"d_steps": 2.5}, "whole number"), ({"batch": True}, "a number"),
           ({"loss": "<b>"}, "loss must be one of minimax"), ({"data": 3}, "data must be one of"),
           ({"reg": "clip", "weight": 3}, "clipping bound"), ([1, 2], "JSON object")]
    for body, words in bad:
        with pytest.raises(BadInput, match=words):
            parse_settings(body, base)


def test_an_objective_brings_its_regularizer_unless_one_is_given():
    s = parse_settings({"loss": "wgan-gp"}, Settings(reg="r1", weight=1.0))
    assert (s.reg, s.weight) == ("gp", 10.0)
    assert (parse_settings({"loss": "wasserstein"}, Settings()).reg, parse_settings({"loss": "wasserstein"}, Settings()).weight) == ("clip", 0.01)
    s = parse_settings({"loss": "hinge", "reg": "r1", "weight": 2}, Settings())
    assert (s.reg, s.weight) == ("r1", 2.0)
    assert parse_settings({"seed": 3}, Settings(reg="r1", weight=1.0)).reg == "r1"     # other keys keep it


def test_points_and_step_counts_are_checked():
    assert parse_points({"points": [[0, 1], [-2.5, 3]]}) == [(0.0, 1.0), (-2.5, 3.0)]
    for body, words in [({"points": []}, "at least one"), ({"points": [[0, 4]]}, "must lie in"),
                        ({"points": [[0, "a"]]}, "two finite numbers"), ({"points": [[0, 0]] * 2001}, "at most 2000"),
                        (None, "at least one")]:
        with pytest.raises(BadInput, match=words):
            parse_points(body)
    assert parse_count(None) == 1 and parse_count({"steps": 7}) == 7
    for v in (0, 1001, 2.0, True, "3"):
        with pytest.raises(BadInput):
            parse_count({"steps": v})


@pytest.fixture
def game():
    torch.set_num_threads(1)
    g = Playground(Settings(data="ring", seed=0))
    yield g
    g.close()


def test_the_arrows_are_minus_the_gradient_of_g_loss_and_the_heatmap_is_d(game):
    game.advance(20)
    f = game.frame()
    x = torch.tensor(f["fake"][:5])                        # the samples as sent (rounded to 3 decimals)
    x.requires_grad_(True)
    torch.nn.functional.softplus(-game.D(x)).sum().backward()          # nonsaturating: -log sigmoid(D(x))
    assert torch.allclose(torch.tensor(f["arrows"][:5]), -x.grad, atol=2e-3, rtol=0.05)
    i = 7 * pgmod.HEAT + 30                                 # one heatmap cell: row 7 from the top, column 30
    lim, n = f["lim"], pgmod.HEAT
    cell = torch.tensor([[(30 + 0.5) / n * 2 * lim - lim, lim - (7 + 0.5) / n * 2 * lim]])
    with torch.no_grad():
        assert abs(f["heat"]["cells"][i] - float(torch.sigmoid(game.D(cell))) * 255) <= 0.5 + 1e-3
    assert f["heat"]["probability"] and len(f["real"]) == len(f["fake"]) == pgmod.SHOW


def test_the_game_is_seeded_and_learns_the_ring(game):
    first = game.frame()["modes"]["covered"]
    twin = Playground(Settings(data="ring", seed=0))
    try:
        game.advance(15)
        twin.advance(15)
        assert game.frame()["fake"] == twin.frame()["fake"] and game.history == twin.history
    finally:
        twin.close()
    game.advance(435)                                      # 450 steps: seeds 0 to 5 cover 1 to 8 modes here
    m = game.frame()["modes"]
    assert m["covered"] >= 6 > first and m["of"] == 8, (first, m)


def test_every_objective_and_regularizer_plays(game):
    for loss in ("minimax", "wasserstein", "wgan-gp", "least-squares", "hinge", "relativistic", "relativistic-average"):
        game.reset(parse_settings({"loss": loss, "d_steps": 2}, game.settings))
        game.advance(3)
        f = game.frame()
        assert f["step"] == 3 and f["error"] is None and f["heat"]["probability"] == (loss in (
            "minimax", "relativistic", "relativistic-average"))
    for reg, w in (("r1", 1.0), ("r2", 1.0), ("gp", 10.0), ("clip", 0.05)):
        game.reset(parse_settings({"loss": "hinge", "reg": reg, "weight": w}, game.settings))
        game.advance(2)
        if reg == "clip":
            assert max(float(p.detach().abs().max()) for p in game.D.parameters()) == pytest.approx(0.05)
    game.reset(parse_settings({"data": "grid"}, game.settings))
    assert game.frame()["modes"]["of"] == 25
    game.reset(parse_settings({"data": "drawn"}, game.settings), [(0.5, 0.5), (-1.0, 2.0)])
    assert game.frame()["modes"]["of"] == 2


def test_non_finite_losses_stop_the_game_with_a_message(game):
    with torch.no_grad():
        game.D.net[0].weight.fill_(float("nan"))
    game.advance(5)
    f = game.frame()
    assert "non-finite at step 1" in f["error"] and game.step == 1 and not f["running"]
    assert all(v == 0 for v in f["heat"]["cells"]) and json.dumps(f)        # no NaN in the JSON
    with pytest.raises(BadInput, match="reset to play again"):
        game.start()
    game.reset()
    game.advance(1)
    assert game.frame()["error"] is None


def test_the_history_is_thinned_and_pages_are_told_to_replace_theirs(game, monkeypatch):
    monkeypatch.setattr(pgmod, "KEEP", 8)
    seen = {}
    game.advance(5)
    h = game.history_since(seen)
    assert h["full"] and [r[0] for r in h["rows"]] == [1, 2, 3, 4, 5]
    game.advance(1)
    h = game.history_since(seen)
    assert not h["full"] and [r[0] for r in h["rows"]] == [6]
    game.advance(2)                                         # 8 rows: thinned to 4, stride 2
    h = game.history_since(seen)
    assert h["full"] and [r[0] for r in h["rows"]] == [2, 4, 6, 8] and h["stride"] == 2
    game.advance(2)
    assert [r[0] for r in game.history_since(seen)["rows"]] == [10]


def test_the_thread_plays_while_started_and_pauses_when_nobody_watches(game, monkeypatch):
    game.start()
    time.sleep(1.0)
    game.pause()
    time.sleep(0.1)
    n = game.step
    assert n > 10
    time.sleep(0.3)
    assert game.step == n
    monkeypatch.setattr(pgmod, "IDLE_PAUSE", 0.2)
    game.start()
    game.seen -= 1.0
    time.sleep(0.3)
    assert not game.running


def write_run(d, lines, steps=100):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(f"loss: nonsaturating\nsteps: {steps}\nmodel:\n  name: mlp\n")
    with open(d / "metrics.jsonl", "a") as f:
        f.write(lines)


def row(step, **kw):
    return json.dumps({"step": step, "loss_d": 1.2, "loss_g": 0.8, "d_real": 0.6, "d_fake": 0.4, **kw}) + "\n"


def test_the_watcher_reads_whole_new_lines_and_rereads_a_truncated_log(tmp_path):
    run = tmp_path / "r1"
    write_run(run, row(10) + row(20) + '{"step": 30, "loss')
    w = RunWatcher(run, "/runs/r1")
    u = w.poll()
    assert u["rows"] == 2 and u["step"] == 20 and u["charts"] and "<svg" in u["charts"][0]
    assert w.poll() is None                                  # nothing changed
    with open(run / "metrics.jsonl", "a") as f:
        f.write('_d": 1.0}\n' + row(40, fid=55.5))
    u = w.poll()
    assert u["rows"] == 4 and u["step"] == 40 and "55.5" in u["table"]
    (run / "metrics.jsonl").write_text(row(10))             # a resume truncated the log
    assert w.poll()["rows"] == 1
    (run / "samples").mkdir()
    for s in (10, 20):
        (run / "samples" / f"step-{s}.png").write_bytes(b"png")
    u = w.poll()
    assert u["latest"] == [20, "/runs/r1/samples/step-20.png"] and len(u["samples"]) == 2


def get(url, data=None):
    req = urllib.request.Request(url, data=None if data is None else data.encode(), method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def events(url, wanted, timeout=20):
    """The first ``wanted`` server-sent events of a stream as (event, data)."""
    out, event = [], None
    with urllib.request.urlopen(url, timeout=timeout) as r:
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
                if len(out) == wanted:
                    return out
    return out


def test_the_app_answers_bad_requests_with_a_message_and_escapes_names(tmp_path):
    root = tmp_path / "a<b>"
    write_run(root / "run-1", row(10))
    (root / "run-1" / "samples").mkdir()
    (root / "run-1" / "samples" / "step-10.png").write_bytes(b"\x89PNG")
    (tmp_path / "secret.png").write_bytes(b"x")
    with Server(root) as s:
        code, page = get(s.url + "/")
        assert code == 200 and b"a&lt;b&gt;" in page and b"a<b>" not in page and b'href="/runs/run-1"' in page
        for path, body, want_code, words in [
                ("/api/playground/settings", '{"lr_g": 7}', 400, "lr_g must be between"),
                ("/api/playground/settings", "not json", 400, "must be JSON"),
                ("/api/playground/step", '{"steps": 5000}', 400, "from 1 to 1000"),
                ("/api/playground/points", '{"points": [[9, 9]]}', 400, "must lie in"),
                ("/api/playground/settings", '{"data": "drawn"}', 400, "draw some points"),
                ("/api/playground/jump", "{}", 404, "no command 'jump'"),
                ("/runs/nope", None, 404, "no run named 'nope'"),
                ("/runs/..%2F..%2Fsecret.png", None, 404, ""),
                ("/runs/run-1/samples/..%2F..%2F..%2Fsecret.png", None, 404, ""),
                ("/runs/run-1/samples/config.yaml", None, 404, "no sample")]:
            code, data = get(s.url + path, body)
            assert code == want_code and words in json.loads(data)["error"], (path, code, data)
        code, data = get(s.url + "/runs/run-1/samples/step-10.png")
        assert code == 200 and data == b"\x89PNG"
        assert get(s.url + "/runs/run-1")[0] == 200


def test_commands_reach_the_game_and_frames_stream_with_their_history(tmp_path):
    with Server(tmp_path) as s:
        code, data = get(s.url + "/api/playground/settings", '{"data": "grid", "seed": 4}')
        assert code == 200 and json.loads(data)["settings"]["data"] == "grid"
        assert json.loads(get(s.url + "/api/playground/step", '{"steps": 3}')[1])["step"] == 3
        ((kind, f),) = events(s.url + "/api/playground/stream", 1)
        assert kind == "frame" and f["step"] == 3 and f["modes"]["of"] == 25 and f["history"]["full"]
        assert [r[0] for r in f["history"]["rows"]] == [1, 2, 3]
        get(s.url + "/api/playground/start", "{}")
        time.sleep(0.5)
        get(s.url + "/api/playground/pause", "{}")
        assert s.playground.step > 3
        code, data = get(s.url + "/api/playground/reset", "{}")
        assert json.loads(data)["step"] == 0


def test_the_run_stream_follows_a_growing_log(tmp_path):
    write_run(tmp_path / "live", row(10))
    with Server(tmp_path) as s:
        def grow():
            time.sleep(1.5)
            with open(tmp_path / "live" / "metrics.jsonl", "a") as f:
                f.write(row(20) + row(30))
        import threading
        threading.Thread(target=grow, daemon=True).start()
        ev = events(s.url + "/api/runs/live/stream", 3)
        assert ev[0][0] == "config" and "nonsaturating" in ev[0][1]["config"]
        assert [(e, d["step"], d["rows"]) for e, d in ev[1:]] == [("update", 10, 1), ("update", 30, 3)]


def test_serve_command_starts_stops_and_refuses_mistakes(tmp_path):
    assert exposure_warning("127.0.0.1", tmp_path) is None and exposure_warning("::1", tmp_path) is None
    assert exposure_warning("localhost", tmp_path) is None and "no login" in exposure_warning("0.0.0.0", tmp_path)
    r = run_cli("serve", "--port", "70000")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--port must be from 0 to 65535" in r.stderr
    (tmp_path / "f").write_text("x")
    r = run_cli("serve", "--runs", tmp_path / "f", "--port", "0")
    assert r.returncode == 2 and "is a file" in r.stderr
    proc = subprocess.Popen(ganforge_cmd("serve", "--port", "0", "--runs", tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = proc.stdout.readline()
        url = line.split()[2].rstrip("/")
        assert url.startswith("http://127.0.0.1:") and get(url + "/api/playground")[0] == 200
        port = url.rsplit(":", 1)[1]
        r = run_cli("serve", "--port", port)
        assert r.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in r.stderr and "Traceback" not in r.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0 and "stopped" in proc.stderr.read()
    finally:
        proc.kill()
