"""The web app of ``ganforge serve`` (Flask): the playground, the live run view, and their JSON and SSE routes.

Pages are static files (serve/static) that fetch JSON and listen to
server-sent events; the only HTML built here is the index, with every name
escaped. Commands are POSTs of JSON, checked by serve.params: a bad request
gets a 4xx with {"error": one sentence}. Streams end when the server stops.
serve.guard answers first: requests addressed to another host name (DNS
rebinding), from another site, or commands not sent as JSON are refused.
At most STREAMS event streams are open at once (each holds a thread); a
body is at most 1 MB and JSON nested past Python's recursion limit is a 400.
The runs root is made absolute here (send_file would resolve a relative one
against the package folder).
"""
from __future__ import annotations

import json
import os
import threading
import time
from html import escape
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import HTTPException, RequestedRangeNotSatisfiable, RequestEntityTooLarge
from werkzeug.wsgi import wrap_file

from .params import RULES, BadInput, parse_count, parse_points, parse_settings
from .playground import Playground
from .guard import Guard
from .runview import NotFound, RunWatcher, list_runs, open_sample, run_path, quoted

STATIC = Path(__file__).parent / "static"
FPS = 10               # frames per second at most, per page
KEEPALIVE = 15.0       # seconds between comments on a quiet stream
RUN_POLL = 1.0         # seconds between looks at a run folder
STREAMS = 32           # event streams open at once (a browser opens at most 6 to one server)

INDEX = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ganforge serve</title>
<link rel="stylesheet" href="/static/style.css"><link rel="icon" href="data:,"></head><body class="page"><h1>ganforge</h1>
<p><a href="/playground">The 2-D playground</a>: train a GAN on toy data and watch D and G play.</p>
<h2>Runs under {root}</h2>{runs}</body></html>"""


def _sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def create_app(runs_root: Path = Path("runs"), playground: Playground | None = None,
               host: str = "127.0.0.1", port: int | None = None) -> Flask:
    """The app for a server bound to ``host``:``port`` (the Host check's names; port None takes any)."""
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    app.wsgi_app = Guard(app.wsgi_app, host, port)
    root = Path(os.path.abspath(runs_root))
    slots = threading.BoundedSemaphore(STREAMS)
    pg = playground or Playground()
    stopping = threading.Event()
    app.extensions["ganforge"] = {"playground": pg, "stopping": stopping, "root": root, "slots": slots}

    def body():
        """The request's JSON (whatever its Content-Type says), None when empty; raises BadInput."""
        raw = request.get_data(cache=True, parse_form_data=False)
        if request.content_length is None and len(raw) >= app.config["MAX_CONTENT_LENGTH"]:
            raise RequestEntityTooLarge()          # a chunked body is cut at the limit, not refused, by werkzeug
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadInput("the request body must be JSON") from None
        except RecursionError:
            raise BadInput("the request body is JSON nested too deeply") from None

    def stream(gen) -> Response:
        """An event stream holding one of the STREAMS slots until it closes (a HEAD request closes at once)."""
        if not slots.acquire(blocking=False):
            return jsonify(error=f"{STREAMS} streams are open already (pages of this server); close some and "
                                 "reload."), 503
        r = Response(gen, mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
        r.call_on_close(slots.release)
        return r

    @app.errorhandler(BadInput)
    def bad_input(e):
        return jsonify(error=str(e)), 400

    @app.errorhandler(NotFound)
    def not_found(e):
        return jsonify(error=str(e)), 404

    @app.errorhandler(HTTPException)
    def http_error(e):
        if e.code == 413:
            return jsonify(error=f"413 {e.name}: the request body is over {app.config['MAX_CONTENT_LENGTH'] >> 20} MB."), 413
        first = (e.description or "").split(". ")[0].rstrip(".")
        return jsonify(error=f"{e.code} {e.name}: {first}."), e.code

    @app.get("/")
    def index():
        runs = list_runs(root)
        items = "".join(f'<li><a href="/runs/{escape(r["name"])}">{escape(r["name"])}</a> '
                        f'<span class="dim">{time.strftime("%Y-%m-%d %H:%M", time.localtime(r["modified"]))}</span></li>'
                        for r in runs)
        listing = f"<ul>{items}</ul>" if runs else "<p>No run folders here yet (ganforge train writes them).</p>"
        return INDEX.format(root=escape(str(root)), runs=listing)

    @app.get("/playground")
    def playground_page():
        return send_file(STATIC / "playground.html")

    def answer(**extra):
        f = pg.frame()
        return jsonify(settings=f["settings"], running=f["running"], step=f["step"], error=f["error"], **extra)

    @app.get("/api/playground")
    def state():
        return answer(rules={k: {"kind": kind, "allowed": list(allowed)} for k, (kind, allowed) in RULES.items()})

    @app.post("/api/playground/settings")
    def settings():
        pg.reset(parse_settings(body(), pg.settings))
        return answer()

    @app.post("/api/playground/points")
    def points():
        pts = parse_points(body())
        pg.reset(parse_settings({"data": "drawn"}, pg.settings), pts)
        return answer()

    @app.post("/api/playground/<command>")
    def command(command):
        data = body()
        if command == "start":
            pg.start()
        elif command == "pause":
            pg.pause()
        elif command == "reset":
            pg.reset()
        elif command == "step":
            pg.pause()
            pg.advance(parse_count(data, "steps", 1000))
        else:
            raise NotFound(f"no command {quoted(command)}; the commands are start, pause, step, reset, settings, points")
        return answer()

    @app.get("/api/playground/stream")
    def playground_stream():
        def frames():
            seen: dict = {}
            last, quiet = None, time.monotonic()
            while not stopping.is_set():
                pg.watched()
                f = pg.frame()
                key = (f["version"], f["step"], f["running"], f["error"])
                if key != last:
                    last, quiet = key, time.monotonic()
                    yield _sse("frame", {**f, "history": pg.history_since(seen)})
                elif time.monotonic() - quiet > KEEPALIVE:
                    quiet = time.monotonic()
                    yield ": keepalive\n\n"
                stopping.wait(1.0 / FPS)
        return stream(frames())

    @app.get("/runs/<name>")
    def run_page(name):
        run_path(root, name)
        return send_file(STATIC / "run.html")

    @app.get("/runs/<name>/samples/<file>")
    def run_sample(name, file):
        f, st = open_sample(root, name, file)        # a regular file inside the run folder, already open
        r = Response(wrap_file(request.environ, f), mimetype="image/png", direct_passthrough=True)
        r.content_length, r.last_modified = st.st_size, st.st_mtime
        r.set_etag(f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}")
        r.cache_control.no_cache = True
        try:
            return r.make_conditional(request.environ, accept_ranges=True, complete_length=st.st_size)
        except RequestedRangeNotSatisfiable:
            f.close()
            raise

    @app.get("/api/runs")
    def runs():
        return jsonify(runs=list_runs(root))

    @app.get("/api/runs/<name>/stream")
    def run_stream(name):
        watcher = RunWatcher(run_path(root, name), f"/runs/{name}")

        def updates():
            yield _sse("config", {"name": name, "config": watcher.config_text})
            quiet = time.monotonic()
            while not stopping.is_set():
                u = watcher.poll()
                if u is not None:
                    quiet = time.monotonic()
                    yield _sse("update", u)
                elif time.monotonic() - quiet > KEEPALIVE:
                    quiet = time.monotonic()
                    yield ": keepalive\n\n"
                stopping.wait(RUN_POLL)
        return stream(updates())

    return app
