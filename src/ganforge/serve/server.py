"""Running the app: a threaded WSGI server (werkzeug's) that can be started in the background and stopped.

``ganforge serve`` runs it in the foreground until Ctrl-C or SIGTERM; tests
start it on a free loopback port in a thread and stop it when they end.
Stopping sets the app's event, so open event streams finish and their
threads return.
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Optional

from werkzeug.serving import WSGIRequestHandler, make_server

from .app import create_app
from .guard import is_loopback


def exposure_warning(host: str, root: Path) -> Optional[str]:
    """The warning for a server other machines can reach, or None on a loopback address."""
    if is_loopback(host):
        return None
    return (f"ganforge: warning: listening on {host}: anyone who can reach this machine can start training on it "
            f"and read the runs under {root}; there is no login")


class _Quiet(WSGIRequestHandler):
    """Logs failed requests only (a page polls and streams; successful requests would flood the terminal).

    A connection that sends nothing, or reads nothing of a stream, for ``timeout`` seconds is closed, so
    slow or stalled clients do not hold a thread each for ever.
    """

    timeout = 30

    def log_request(self, code="-", size="-"):
        if str(code)[:1] in ("4", "5"):
            super().log_request(code, size)


class Server:
    def __init__(self, runs_root: Path = Path("runs"), host: str = "127.0.0.1", port: int = 0):
        # bound here so that a busy port or an unknown host raises OSError (werkzeug would exit the process)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family)
        try:
            port = sock.getsockname()[1]
            self.app = create_app(runs_root, host=host, port=port)
            self.httpd = make_server(host, port, self.app, threaded=True, request_handler=_Quiet, fd=sock.fileno())
        finally:
            sock.close()                 # werkzeug holds a duplicate of the descriptor
        self.host, self.port = host, port
        self.thread = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def playground(self):
        return self.app.extensions["ganforge"]["playground"]

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def start(self) -> "Server":
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="ganforge-serve", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.app.extensions["ganforge"]["stopping"].set()
        self.httpd.shutdown()
        if self.thread is not None:
            self.thread.join(5)
        self._close()

    def _close(self) -> None:
        self.app.extensions["ganforge"]["stopping"].set()
        self.playground.close()
        self.httpd.server_close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
