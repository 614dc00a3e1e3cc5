"""``ganforge serve``: the live lab in the browser (the 2-D playground and the run folders in progress)."""
from __future__ import annotations

import errno
import signal
import socket
import sys
from pathlib import Path

from ..errors import UserError
from .common import count


def add_parser(sub):
    s = sub.add_parser("serve", help="a local web app: the 2-D GAN playground and live views of run folders")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    s.add_argument("--port", type=count(0, 65535), default=8765, help="port (default 8765; 0 picks a free one)")
    s.add_argument("--runs", default="runs", help="the folder whose run folders are listed (default: runs)")
    s.add_argument("--threads", type=count(1, 1024), default=1, help="torch threads for the playground (default 1)")
    return s


def run(a) -> int:
    import torch
    from ..serve.server import Server, exposure_warning
    if not 0 <= a.port <= 65535:
        raise UserError(f"--port must be from 0 to 65535, got {a.port}")
    root = Path(a.runs)
    if root.exists() and not root.is_dir():
        raise UserError(f"--runs {root} is a file; give the folder that holds run folders")
    if (root / "config.yaml").is_file():           # a run folder itself: list it among its siblings
        print(f"ganforge serve: {root} is a run folder; listing the runs under {root.resolve().parent}")
        root = root.resolve().parent
    torch.set_num_threads(max(1, a.threads))     # a 2-D game is fastest on one thread, and leaves a core free
    try:
        server = Server(root, a.host, a.port)
    except socket.gaierror as e:
        raise UserError(f"--host {a.host!r} is not an address of this machine ({e.strerror})") from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {a.port} on {a.host} is in use; choose another with --port") from None
        if e.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise UserError(f"cannot listen on {a.host}:{a.port} ({e.strerror})") from None
        raise
    warning = exposure_warning(a.host, root)
    if warning:
        print(warning, file=sys.stderr)
    print(f"ganforge serve: {server.url}/  (playground: {server.url}/playground; runs under {root}); "
          "Ctrl-C stops", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()           # returns on Ctrl-C (werkzeug's loop ends on KeyboardInterrupt)
    except KeyboardInterrupt:
        pass
    print("ganforge serve: stopped", file=sys.stderr)
    return 0
