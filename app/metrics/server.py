"""A worker's own metrics port (``PASSGATE_WORKER_METRICS_PORT``).

Workers are separate processes, usually on other machines than the API: each is its own
Prometheus target, serving its registry (settlements it saw through, webhook attempts it
made) from a small HTTP server thread. The states (queue depth, watcher lag...) come from the
API's ``/metrics`` only, so they are not counted once per worker.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from app.metrics.exposition import exposition
from app.settings import Settings

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


def metrics_app(settings: Settings) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    token = settings.metrics_token

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found: metrics are at /metrics.\n"]
        if token is not None:
            scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
            presented = value.strip().encode() if scheme.lower() == "bearer" else b""
            if not hmac.compare_digest(presented, token.get_secret_value().encode()):
                start_response("401 Unauthorized", [("Content-Type", "text/plain")])
                return [b"Metrics take Authorization: Bearer <PASSGATE_METRICS_TOKEN>.\n"]
        body = exposition()
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve_metrics(settings: Settings, port: int) -> Callable[[], None]:
    """Serve this process's metrics on ``PASSGATE_HOST:port``; returns the stop function."""
    server: WSGIServer = make_server(settings.host, port, metrics_app(settings),
                                     handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
