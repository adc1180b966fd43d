"""What our small servers share (`pgrpo serve`, `pgrpo rm serve`): the JSON-over-HTTP handler, the
serving loop, and one-line errors for a port that cannot be bound, checked before a model loads."""

from __future__ import annotations

import errno
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pgrpo.options import UsageError


class JsonHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1, JSON replies, request logging only when the server is `verbose`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def run_server(server: ThreadingHTTPServer, what: str, path: str, verbose: bool = False) -> None:
    """Announce where `what` is served, serve until Ctrl-C, then close the socket."""
    server.verbose = verbose  # type: ignore[attr-defined]
    host, port = server.server_address[:2]
    print(f"serving {what} at http://{host}:{port}{path}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken before the model is loaded (a minute, for a GGUF on CPU)."""
    probe = ThreadingHTTPServer.address_family
    with socket.socket(probe, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ThreadingHTTPServer binds
        try:
            s.bind((host, port))
        except OSError as e:
            raise bind_error(e, host, port) from None


def bind_error(e: OSError, host: str, port: int) -> Exception:
    if e.errno == errno.EADDRINUSE:
        return UsageError(
            f"port {port} on {host} is in use: stop what listens there or choose another --port"
        )
    if e.errno == errno.EACCES:
        return UsageError(f"--port {port}: not allowed to bind it on {host} (ports below 1024 need root)")
    return UsageError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})")
