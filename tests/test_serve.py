"""serve/: the playground's checks and game, the run watcher, the app's answers and streams, the serve command."""
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
import torch

from conftest import ganforge_cmd, run_cli
from ganforge.serve import Server
from ganforge.serve import app as appmod
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
    req = urllib.request.Request(url, data=None if data is None else data.encode(), method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"} if data else {})
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
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--port" in r.stderr and "must be from 0 to 65535" in r.stderr
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


# Attacks on the server, sent as an attacker sends them: raw HTTP with the headers written by hand.

def raw(port, method, path, headers=(), body=b"", host=None, timeout=20):
    """One request with every header as given (Host too: None is the server's own, False none); (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not False:
            c.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
        for k, v in headers:
            c.putheader(k, v)
        if (body or method == "POST") and "transfer-encoding" not in {k.lower() for k, _ in headers}:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body or None)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def error(body):
    """The JSON error's sentence (and that it is one short sentence)."""
    e = json.loads(body)["error"]
    assert e.count("\n") == 0 and len(e) < 400, e
    return e


def png_bytes():
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def test_files_that_link_out_of_the_run_folder_are_not_served(tmp_path):
    root, secret = tmp_path / "runs", tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    write_run(root / "r1", row(10))
    samples = root / "r1" / "samples"
    samples.mkdir()
    (samples / "step-1.png").write_bytes(png_bytes())
    (samples / "step-2.png").symlink_to("/etc/passwd")
    (samples / "step-3.png").symlink_to(secret)
    (samples / "step-4.png").symlink_to(samples / "step-1.png")       # a link inside the run folder is fine
    (samples / "step-5.png").mkdir()
    os.mkfifo(samples / "step-6.png")
    write_run(root / "r2", row(10))                                     # its config.yaml links out
    (root / "r2" / "config.yaml").unlink()
    (root / "r2" / "config.yaml").symlink_to(secret)
    write_run(tmp_path / "elsewhere" / "r3", row(10))
    (root / "r3").symlink_to(tmp_path / "elsewhere" / "r3")             # a run folder that links out of the root
    (root / "r4").symlink_to(root / "r1")                               # one that links to a run inside it
    with Server(root) as s:
        for n, want in [(1, 200), (2, 404), (3, 404), (4, 200), (5, 404), (6, 404)]:
            code, _, body = raw(s.port, "GET", f"/runs/r1/samples/step-{n}.png")
            assert code == want, (n, code, body)
            if want == 404:
                assert error(body) == f"no sample 'step-{n}.png' in run 'r1'."
        assert sorted(r["name"] for r in json.loads(raw(s.port, "GET", "/api/runs")[2])["runs"]) == ["r1", "r4"]
        for path in ("/runs/r2", "/runs/r3", "/api/runs/r2/stream", "/api/runs/r3/stream", "/runs/r3/samples/step-1.png"):
            code, _, body = raw(s.port, "GET", path)
            assert code == 404 and b"secret" not in body and error(body).startswith("no run named"), (path, body)
        assert b"r3" not in raw(s.port, "GET", "/")[2]
        ev = events(s.url + "/api/runs/r1/stream", 2)
        listed = [x[0] for x in ev[1][1]["samples"]]
        assert 1 in listed and set(listed) <= {1, 4}, listed       # (runs/ may leave links out of the list)


def test_requests_addressed_to_another_host_name_are_refused(tmp_path):
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 sends Host: evil.example."""
    write_run(tmp_path / "r1", row(10))
    with Server(tmp_path) as s:
        p = s.port
        before = s.playground.settings
        other = p + 1 if p < 65535 else p - 1
        for host in ("evil.example", f"evil.example:{p}", f"127.0.0.1:{other}", f"localhost.evil.example:{p}",
                     f"127.0.0.1.evil.example:{p}", f"127.0.0.1:{p}@evil.example", "[::1]x", f"127.0.0.1:{p}:{p}"):
            for method, path in [("GET", "/"), ("GET", "/api/runs"), ("GET", "/static/run.js"), ("GET", "/runs/r1"),
                                 ("GET", "/api/runs/r1/stream"), ("GET", "/api/playground/stream"), ("GET", "/nope"),
                                 ("POST", "/api/playground/settings"), ("HEAD", "/"), ("OPTIONS", "/api/runs")]:
                code, _, body = raw(p, method, path, [("Content-Type", "application/json")],
                                    b'{"data": "grid"}' if method == "POST" else b"", host=host)
                assert code == 421, (host, path, code, body)
                if method != "HEAD":
                    assert "DNS rebinding" in error(body), body
        for host in (False, ""):
            code, _, body = raw(p, "GET", "/api/runs", host=host)
            assert code == 400 and "Host" in error(body)
        assert s.playground.settings == before
        for host in (f"127.0.0.1:{p}", f"localhost:{p}", f"[::1]:{p}", "localhost", "127.0.0.1", f"LocalHost:{p}"):
            assert raw(p, "GET", "/api/runs", host=host)[0] == 200, host


def test_a_server_open_to_the_network_answers_to_addresses_but_not_to_other_names(tmp_path):
    with Server(tmp_path, host="0.0.0.0") as s:
        p = s.port
        for host in (f"192.0.2.7:{p}", f"[2001:db8::1]:{p}", f"localhost:{p}", f"{socket.gethostname()}:{p}"):
            assert raw(p, "GET", "/api/runs", host=host)[0] == 200, host
        for host in (f"evil.example:{p}", f"192.0.2.7.nip.io:{p}", f"192.0.2.7:{p + 1 if p < 65535 else p - 1}"):
            assert raw(p, "GET", "/api/runs", host=host)[0] == 421, host


def test_cross_site_posts_are_refused(tmp_path):
    """CSRF: a form on another site can POST text/plain with no preflight; a fetch from it carries its Origin."""
    with Server(tmp_path) as s:
        p, before = s.port, s.playground.settings
        body = b'{"data": "grid", "seed": 9}'
        form = [("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "navigate")]
        attacks = [([("Content-Type", "text/plain")] + form, 403, "another site"),
                   ([("Content-Type", "text/plain")], 415, "application/json"),
                   ([("Content-Type", "application/x-www-form-urlencoded")], 415, "application/json"),
                   ([("Content-Type", "multipart/form-data; boundary=x")], 415, "application/json"),
                   ([("Content-Type", "text/plain; x=application/json")], 415, "application/json"),
                   ([], 415, "application/json"),
                   ([("Content-Type", "application/json"), ("Origin", "http://evil.example")], 403, "another site"),
                   ([("Content-Type", "application/json"), ("Origin", "null")], 403, "another site"),
                   ([("Content-Type", "application/json"), ("Origin", f"http://localhost:{p}")], 403, "another site"),
                   ([("Content-Type", "application/json"), ("Origin", f"https://127.0.0.1:{p}")], 403, "another site"),
                   ([("Content-Type", "application/json"), ("Sec-Fetch-Site", "same-site")], 403, "another site"),
                   ([("Content-Type", "application/json"), ("Sec-Fetch-Site", "cross-site")], 403, "another site")]
        for path in ("/api/playground/settings", "/api/playground/start", "/api/playground/step"):
            for headers, want, words in attacks:
                code, _, answer = raw(p, "POST", path, headers, body)
                assert code == want and words in error(answer), (path, headers, code, answer)
        time.sleep(0.2)
        assert s.playground.settings == before and not s.playground.running and s.playground.step == 0
        own = [("Content-Type", "application/json; charset=utf-8"), ("Origin", f"http://127.0.0.1:{p}"),
               ("Sec-Fetch-Site", "same-origin"), ("Sec-Fetch-Mode", "cors")]
        code, _, answer = raw(p, "POST", "/api/playground/settings", own, body)
        assert code == 200 and json.loads(answer)["settings"]["data"] == "grid"
        # another site may link to the app, but not fetch from it or embed its images
        cross = [("Sec-Fetch-Site", "cross-site"), ("Origin", "http://evil.example")]
        for path, mode in [("/api/runs", "cors"), ("/api/playground", "no-cors"), ("/api/playground/stream", "cors")]:
            code, _, answer = raw(p, "GET", path, cross + [("Sec-Fetch-Mode", mode)])
            assert code == 403 and "another site" in error(answer), (path, code)
        assert raw(p, "GET", "/", [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "navigate")])[0] == 200


def test_the_default_runs_folder_serves_sample_images(tmp_path):
    """`ganforge serve` as a user types it, in a folder with runs/: the relative root must not break send_file."""
    run, png = tmp_path / "runs" / "r1", png_bytes()
    write_run(run, row(10))
    (run / "samples").mkdir()
    (run / "samples" / "step-0000010.png").write_bytes(png)
    proc = subprocess.Popen(ganforge_cmd("serve", "--port", "0"), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        url = proc.stdout.readline().split()[2].rstrip("/")
        ev = events(url + "/api/runs/r1/stream", 2)
        code, data = get(url + ev[1][1]["latest"][1])
        assert code == 200 and data == png, (code, data[:200])
        code, data = get(url + "/runs/r1/samples/step-0000010.png")
        assert code == 200 and data == png
    finally:
        proc.kill()
        proc.wait(20)


def test_deep_json_and_bodies_over_the_limit_get_a_sentence(tmp_path):
    deep = 100_000
    with Server(tmp_path) as s:
        for body, want, words in [(b"[" * deep + b"]" * deep, 400, "nested"),
                                  (b'{"a":' * deep + b"1" + b"}" * deep, 400, "nested"),
                                  (b'{"steps": ' + b"9" * 5000 + b"}", 400, "must be JSON"),
                                  (b'{"steps": 2, "x": "\xff"}', 400, "must be JSON"),
                                  (b"{" * 10 + b" " * ((1 << 20) + 1), 413, "1 MB")]:
            for path in ("/api/playground/settings", "/api/playground/step", "/api/playground/points"):
                code, _, answer = raw(s.port, "POST", path, [("Content-Type", "application/json")], body)
                assert code == want and words in error(answer), (path, code, answer[:300])
        assert s.playground.step == 0


def damaged_log():
    return (row(10).encode() + b'{"step": 15, "loss_d": "\xff"}\n' + b'{"step": 1' + b"0" * 5000 + b"}\n"
            + row("20").encode() + b"[1, 2]\n" + b'{"step": 25, "loss_d": 1' + b"0" * 4000 + b"}\n"
            + b'{"step": true, "loss_d": 1.0}\n' + b'"text"\n' + b"\n" + row(30).encode() + b"[" * 100_000 + b"\n"
            + b'{"step": 35, "time": 1e999999}\n' + row(40).encode())


def test_a_damaged_metrics_log_is_skipped_line_by_line_and_counted(tmp_path):
    run = tmp_path / "r1"
    write_run(run, "")
    (run / "metrics.jsonl").write_bytes(damaged_log())
    u = RunWatcher(run, "/runs/r1").poll()
    assert (u["step"], u["rows"], u["skipped"]) == (40, 4, 8) and u["charts"]
    with Server(tmp_path) as s:
        ev = events(s.url + "/api/runs/r1/stream", 2)
        assert (ev[1][1]["step"], ev[1][1]["rows"], ev[1][1]["skipped"]) == (40, 4, 8)
        assert ev[1][1]["time"] is None and json.dumps(ev[1][1], allow_nan=False)   # JSON.parse takes no Infinity


def test_special_files_in_a_run_folder_hold_no_stream(tmp_path):
    run = tmp_path / "r1"
    write_run(run, "")
    (run / "metrics.jsonl").unlink()
    os.mkfifo(run / "metrics.jsonl")                        # open() on it would wait for a writer forever
    (run / "samples").mkdir()
    os.mkfifo(run / "samples" / "step-5.png")
    write_run(tmp_path / "r2", "")
    (tmp_path / "r2" / "config.yaml").unlink()
    os.mkfifo(tmp_path / "r2" / "config.yaml")
    with Server(tmp_path) as s:
        ev = events(s.url + "/api/runs/r1/stream", 2, timeout=10)
        assert ev[1][0] == "update" and ev[1][1]["rows"] == 0 and ev[1][1]["latest"] is None
        code, _, body = raw(s.port, "GET", "/runs/r1/samples/step-5.png", timeout=10)
        assert code == 404
        code, _, body = raw(s.port, "GET", "/api/runs/r2/stream", timeout=10)
        assert code == 404 and "no run named 'r2'" in error(body)


def laughs(levels=6):
    names = "abcdefghij"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{names[i]}: &{names[i]} [" + ", ".join([f"*{names[i - 1]}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\nloss: *{names[levels]}\nsteps: *{names[levels]}\n"


def test_yaml_aliases_in_a_run_config_are_not_expanded(tmp_path):
    write_run(tmp_path / "r1", row(10))
    (tmp_path / "r1" / "config.yaml").write_text(laughs())         # 9**7 x's if expanded: 33 MB of JSON per update
    write_run(tmp_path / "r2", row(10))
    (tmp_path / "r2" / "config.yaml").write_text("loss: [" * 50_000 + "\n")   # too deep for the parser
    write_run(tmp_path / "r3", row(10))                             # 900 KB: seconds of PyYAML per connection
    (tmp_path / "r3" / "config.yaml").write_text("".join(f"key{i}: [1, 2, 3]\n" for i in range(50_000)))
    with Server(tmp_path) as s:
        for name in ("r1", "r2", "r3"):
            t = time.monotonic()
            ev = events(s.url + f"/api/runs/{name}/stream", 2)
            assert time.monotonic() - t < 3, name
            assert ev[0][1]["config"] == (tmp_path / name / "config.yaml").read_text()
            assert ev[1][1]["steps"] is None and len(json.dumps(ev[1][1])) < 100_000 and ev[1][1]["rows"] == 1


def test_odd_requests_get_a_sentence_and_hold_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(appmod, "STREAMS", 3)
    png = png_bytes()
    write_run(tmp_path / "r1", row(10))
    (tmp_path / "r1" / "samples").mkdir()
    (tmp_path / "r1" / "samples" / "step-1.png").write_bytes(png)
    with Server(tmp_path) as s:
        p = s.port
        for path in ("/runs/%2e%2e", "/runs/.%2e/r1", "/runs/r1%2F..%2F..", "/runs/r1%00", "/runs/r%0A1", "/runs/" + "a" * 5000,
                     "/runs/r1/samples/step-1.png%00.txt", "/runs/r1/samples/%2e%2e%2fconfig.yaml",
                     "/runs/r1/samples/step-1.PNG", "/runs/r1/samples/step-%C3%A9.png", "/static/..%2f..%2fapp.py",
                     "/static/%2e%2e/app.py"):
            code, _, body = raw(p, "GET", path)
            assert code == 404 and error(body), (path, code, body)
        code, h, body = raw(p, "GET", "/runs/r1/samples/step-1.png", [("Range", "bytes=0-7")])
        assert code == 206 and body == png[:8] and h["Content-Type"] == "image/png"
        code, h, body = raw(p, "GET", "/runs/r1/samples/step-1.png", [("Range", "bytes=99999-")])
        assert code == 416
        code, h, body = raw(p, "HEAD", "/runs/r1/samples/step-1.png")
        assert code == 200 and body == b"" and h["Content-Length"] == str(len(png))
        code, h, _ = raw(p, "OPTIONS", "/api/playground/settings")
        assert code == 200 and "POST" in h["Allow"] and "Access-Control-Allow-Origin" not in h
        code, _, body = raw(p, "PUT", "/api/playground/settings", [("Content-Type", "application/json")], b"{}")
        assert code == 405 and error(body)
        for _ in range(6):                                   # HEAD answers the headers and holds no stream
            assert raw(p, "HEAD", "/api/runs/r1/stream", timeout=5)[0] == 200
            assert raw(p, "HEAD", "/api/playground/stream", timeout=5)[0] == 200
        held = []
        try:
            for _ in range(3):
                c = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
                c.request("GET", "/api/runs/r1/stream")
                held.append(c.getresponse())                 # the response holds the socket open
                assert held[-1].status == 200 and held[-1].readline() == b"event: config\n"
            code, _, body = raw(p, "GET", "/api/playground/stream")
            assert code == 503 and "streams are open" in error(body)
        finally:
            for c in held:
                c.close()
        code, _, body = raw(p, "GET", "/api/runs", [("X-Big", "x" * 70_000)])
        assert code in (400, 431)
        code, _, body = raw(p, "GET", "/api/runs", [("Host", "evil.example")])     # two Host headers
        assert code == 421
        code, _, body = raw(p, "GET", "/runs/%ff%zz")
        assert code == 404 and error(body)
        big = b'{"seed": 3, "x": "' + b"a" * (1 << 20) + b'"}'                   # chunked: no Content-Length
        code, _, body = raw(p, "POST", "/api/playground/settings", [("Content-Type", "application/json"),
                            ("Transfer-Encoding", "chunked")], b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big))
        assert code == 413 and "over 1 MB" in error(body)


def test_a_client_that_stalls_is_dropped(tmp_path, monkeypatch):
    from ganforge.serve import server as servermod
    monkeypatch.setattr(servermod._Quiet, "timeout", 1)
    with Server(tmp_path) as s:
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(b"GET /api/ru")                          # and nothing more
        t = time.monotonic()
        assert c.recv(100) == b"" and time.monotonic() - t < 5
        c.close()


def test_the_watcher_reads_a_big_log_in_bounded_pieces(tmp_path, monkeypatch):
    from ganforge.serve import runview
    monkeypatch.setattr(runview, "CHUNK", 4096)
    monkeypatch.setattr(runview, "LINE", 1000)
    run = tmp_path / "r1"
    write_run(run, "".join(row(s) for s in range(1, 101)) + "x" * 10_000 + "\n" + row(101) + "y" * 1500)
    (run / "config.yaml").write_text("loss: hinge\nsteps: 5\n" + "# padding\n" * 200_000)     # 2 MB
    w = RunWatcher(run, "/runs/r1")
    assert w.config_text.startswith("(config.yaml is over 1 MB") and w.steps is None
    size, polls, u = (run / "metrics.jsonl").stat().st_size, 0, None
    while polls < 20:
        got = w.poll()
        if got is None:
            break
        u, polls = got, polls + 1
        assert w.offset <= polls * 4096
    assert u["step"] == 101 and u["rows"] == 101 and u["skipped"] == 2 and w.offset == size and polls > 3
