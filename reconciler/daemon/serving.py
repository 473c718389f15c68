"""The daemon's local status page and endpoints: ``/``, ``/healthz``, ``/status``,
``/cycles``, ``/metrics``.

Who calls it: :mod:`reconciler.daemon.running`. A WSGI app on the standard library's server in a
daemon thread, bound to 127.0.0.1 only: it is for the user of this machine, and it never
shows a secret (the status is built from state and outcomes, which hold none). The page
is three static files of this package (``page/``: HTML, CSS, JS, no build step) that
poll ``/status``; its Content-Security-Policy lets it load nothing from anywhere else.
"""

from __future__ import annotations

import importlib.resources
import json
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref import simple_server

from reconciler import errors
from reconciler.cycle import metrics

StartResponse = Callable[..., Any]
LOOPBACK = "127.0.0.1"
#: the page's files: URL path -> (file in ``page/``, content type)
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
}
#: the page may talk to this server only: no CDN, no font, no beacon elsewhere
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _page_file(name: str) -> bytes:
    return importlib.resources.files("reconciler.daemon").joinpath("page", name).read_bytes()


#: seconds a client may take to send its request or read the answer
REQUEST_TIMEOUT = 5.0


class _QuietHandler(simple_server.WSGIRequestHandler):
    # A client that connects and sends nothing is dropped after this, never held on to.
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not worth a log line each."""


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """One thread per request: an idle or slow client blocks neither ``/healthz`` nor
    the daemon's shutdown (its threads are not waited for on close)."""

    daemon_threads = True
    block_on_close = False


class StatusServer:
    def __init__(
        self,
        port: int,
        status: Callable[[], dict[str, Any]],
        registry: metrics.Metrics,
        *,
        cycles: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        self._status = status
        self._cycles = cycles
        self._metrics = registry
        try:
            self._server = simple_server.make_server(
                LOOPBACK,
                port,
                self._app,
                server_class=_ThreadingServer,
                handler_class=_QuietHandler,
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
        if path == "/cycles":
            body = json.dumps({"cycles": self._cycles()}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path in PAGE_FILES:
            name, content_type = PAGE_FILES[path]
            start_response(
                "200 OK",
                [
                    ("Content-Type", content_type),
                    ("Content-Security-Policy", PAGE_POLICY),
                    ("Cache-Control", "no-cache"),
                    ("X-Content-Type-Options", "nosniff"),
                ],
            )
            return [_page_file(name)]
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
            return [self._metrics.render()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /, /healthz, /status, /cycles, /metrics\n"]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
