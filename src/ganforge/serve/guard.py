"""Which requests ``ganforge serve`` answers at all: the Host check (DNS rebinding) and same-origin JSON commands (CSRF).

A WSGI layer in front of every route, static files and streams included,
that answers {"error": one sentence} instead of the app when:

- the Host header is missing (400) or names another server (421). A page on
  evil.example whose DNS name is rebound to 127.0.0.1 reaches this port with
  ``Host: evil.example``; only the names the server is bound to are taken:
  localhost, 127.0.0.1 and [::1] (with this port or none) and the ``--host``
  given. A server bound to an address other machines reach (0.0.0.0, a LAN
  address: ``exposure_warning`` says so at start) is reached by the
  machine's own names and addresses, so it also takes any IP address
  literal (no DNS name, so nothing to rebind) and the machine's host name;
  any other name still gets 421;
- the request comes from another site (403): an ``Origin`` other than this
  server's own, or ``Sec-Fetch-Site: cross-site``/``same-site``; a plain
  link from another site (a GET navigation) still opens a page;
- a command (any method but GET, HEAD, OPTIONS) is not sent as
  ``Content-Type: application/json`` (415), the one type a cross-site form
  cannot send without the browser asking first (and this server answers no
  CORS question).
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket
from typing import Optional
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

SAFE = ("GET", "HEAD", "OPTIONS")
LOOPBACK = ("localhost", "127.0.0.1", "::1")
HOST = re.compile(r"(?:\[([0-9a-f:.]+)\]|([a-z0-9._-]+?))\.?(?::([0-9]{1,5}))?")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def split_host(value: str) -> Optional[tuple[str, Optional[int]]]:
    """A Host header's (name, port) (the name in lower case, an IPv6 one without brackets); None when malformed."""
    m = HOST.fullmatch(value.strip().lower())
    if m is None or (m.group(1) is not None and not _is_ip(m.group(1))):
        return None
    return m.group(1) or m.group(2), int(m.group(3)) if m.group(3) else None


def _fail(status: int, sentence: str):
    body = json.dumps({"error": sentence}).encode()
    return Response(body, status=status, mimetype="application/json")


class Guard:
    """WSGI middleware: ``Guard(app.wsgi_app, host, port)``; ``port`` None takes any port."""

    def __init__(self, app, host: str, port: Optional[int]):
        self.app, self.port = app, port
        bound = split_host(host if ":" not in host else f"[{host}]")
        self.names = set(LOOPBACK) | ({bound[0]} if bound else set())
        self.open = not is_loopback(host)
        if self.open:
            self.names |= {socket.gethostname().lower(), socket.getfqdn().lower()}

    def host_refusal(self, value: str) -> Optional[Response]:
        if not value.strip():
            return _fail(400, "the request has no Host header; ganforge serve answers only requests addressed to it.")
        parsed = split_host(value)
        if parsed is not None:
            name, port = parsed
            if (port is None or self.port is None or port == self.port) and (
                    name in self.names or (self.open and _is_ip(name))):
                return None
        where = "localhost, 127.0.0.1, [::1]" + (", its own names and addresses" if self.open else "")
        on = f" on port {self.port}" if self.port is not None else ""
        return _fail(421, f"ganforge serve answers only to {where}{on}, not to Host {value[:80]!r} "
                          "(a page on another site may be trying to reach it by DNS rebinding).")

    def site_refusal(self, environ: dict, host: str) -> Optional[Response]:
        origin = environ.get("HTTP_ORIGIN")
        site = environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
        navigation = environ["REQUEST_METHOD"] == "GET" and environ.get("HTTP_SEC_FETCH_MODE", "") == "navigate"
        foreign = site in ("cross-site", "same-site") and not navigation
        if origin is not None and not foreign:
            foreign = not self._same_origin(origin, host)
        if not foreign:
            return None
        return _fail(403, f"refused: the request comes from another site (Origin {(origin or '')[:80]!r}, "
                          f"Sec-Fetch-Site {site[:20]!r}); ganforge serve answers only its own pages (a link to one still opens).")

    @staticmethod
    def _same_origin(origin: str, host: str) -> bool:
        try:
            o = urlsplit(origin.strip())
            mine, theirs = split_host(host), (o.hostname, o.port or 80)
        except ValueError:
            return False
        return o.scheme == "http" and mine is not None and (mine[0], mine[1] or 80) == theirs

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST", "")
        refusal = self.host_refusal(host) or self.site_refusal(environ, host)
        if refusal is None and environ["REQUEST_METHOD"] not in SAFE:
            kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
            if kind != "application/json":
                refusal = _fail(415, f"commands must be sent as JSON (Content-Type: application/json), "
                                     f"not {kind[:60] or 'no type'!r}.")
        if refusal is not None:
            return refusal(environ, start_response)
        return self.app(environ, start_response)
