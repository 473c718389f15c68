"""The daemon's local status endpoint: ``/healthz``, ``/status``, ``/metrics``.

Who calls it: :mod:`reconciler.daemon.running`. A WSGI app on the standard library's server in a
daemon thread, bound to 127.0.0.1 only: it is for the user of this machine, and it never
shows a secret (the status is built from state and outcomes, which hold none).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref import simple_server

from reconciler import errors
from reconciler.daemon import metrics

StartResponse = Callable[..., Any]
LOOPBACK = "127.0.0.1"


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not worth a log line each."""


class StatusServer:
    def __init__(
        self, port: int, status: Callable[[], dict[str, Any]], registry: metrics.Metrics
    ) -> None:
        self._status = status
        self._metrics = registry
        try:
            self._server = simple_server.make_server(
                LOOPBACK, port, self._app, handler_class=_QuietHandler
            )
        except OSError as exc:
            # Most often another daemon (of another checkout) holds the default port.
            raise errors.PermanentError(
                f"status port {port} on {LOOPBACK} cannot be opened: {exc.strerror}",
                hint="choose a free one with LUMINA_STATUS_PORT or status_port in "
                "config/lumina.toml",
            ) from exc
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="status-server", daemon=True
        )

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET":
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"only GET\n"]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/status":
            body = json.dumps(self._status(), indent=2).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
            return [self._metrics.render()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /healthz, /status, /metrics\n"]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
